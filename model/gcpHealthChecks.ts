// Where Google Cloud's health checkers come from: every probe of a load balancer's health check
// (internal passthrough Network Load Balancer included) has one of these IPv4 source ranges.
// From https://cloud.google.com/load-balancing/docs/health-check-concepts#ip-ranges and
// https://cloud.google.com/load-balancing/docs/firewall-rules (taken 2026-11-27). Both the VPC
// firewall (infra/gcp.ts) and the balancers' host firewall (roles/firewall) admit them, to the
// health port only.
export const GCP_HEALTH_CHECK_RANGES = ["35.191.0.0/16", "130.211.0.0/22"] as const;
