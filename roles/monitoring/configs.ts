// The monitoring host's configuration files: Prometheus's scrape configuration (every target of
// the cluster, by host name, over TLS) and Alertmanager's. Pure renders (roles/monitoring installs them).
import type { ClusterSpec } from "../../model/config";
import { EXPORTERS, ports } from "../../model/identities";
import { render } from "../render";
import type { Host } from "../types";
import { METRICS_USER } from "../exporters/webConfig";

/** Where the monitoring host keeps what Prometheus reads (paths on the host). */
export const MONITORING_PATHS = {
  rules: "/etc/prometheus/pgcluster-alerts.yml",
  /** The exporters role's TLS files on this host: Prometheus's client certificate too. */
  ca: `${EXPORTERS.tlsDir}/ca.crt`,
  clientCert: `${EXPORTERS.tlsDir}/node.crt`,
  clientKey: `${EXPORTERS.tlsDir}/node.key`,
  /** The metrics login's password (secret metricsPassword), 0640 root:prometheus. */
  metricsPassword: "/etc/prometheus/pgcluster/metrics-password",
};
export type MonitoringPaths = typeof MONITORING_PATHS;

interface Job { name: string; metricsPath: string; basicAuthUser?: string; passwordFile?: string; targets: { host: string; address: string; port: number }[] }

/** Every target of the cluster, one job per kind of exporter. */
export function scrapeJobs(hosts: Host[], paths: MonitoringPaths = MONITORING_PATHS): Job[] {
  const withRole = (r: Host["roles"][number]) => hosts.filter((h) => h.roles.includes(r));
  const targets = (hs: Host[], port: number) => hs.map((h) => ({ host: h.name, address: h.address, port }));
  const login = { basicAuthUser: METRICS_USER, passwordFile: paths.metricsPassword, metricsPath: "/metrics" };
  return [
    { name: "prometheus", ...login, targets: targets(withRole("monitoring"), ports.prometheus) },
    // Node exporter also carries pgcluster's textfile metrics (pgBouncer, certificates, backups).
    { name: "node", ...login, targets: targets(hosts, ports.nodeExporter) },
    { name: "postgres", ...login, targets: targets(withRole("postgres"), ports.postgresExporter) },
    // Patroni's /metrics is a safe GET on its REST API (TLS); etcd asks for a client certificate.
    { name: "patroni", metricsPath: "/metrics", targets: targets(withRole("postgres"), ports.patroni) },
    { name: "etcd", metricsPath: "/metrics", targets: targets(withRole("etcd"), ports.etcdClient) },
    // HAProxy 2.6's built-in exporter (USE_PROMEX), on its own TLS port (roles/haproxy).
    { name: "haproxy", ...login, targets: targets(withRole("balancer"), ports.haproxyExporter) },
  ];
}

export function renderPrometheusConfig(spec: ClusterSpec, hosts: Host[], paths: MonitoringPaths = MONITORING_PATHS): string {
  return render("monitoring", "prometheus.yml", {
    cluster: spec.clusterName,
    scrapeIntervalSeconds: spec.monitoring.scrapeIntervalSeconds,
    rulesFile: paths.rules,
    caFile: paths.ca, clientCertFile: paths.clientCert, clientKeyFile: paths.clientKey,
    alertmanagerPort: ports.alertmanager,
    jobs: scrapeJobs(hosts, paths),
  });
}

export function renderAlertmanagerConfig(spec: ClusterSpec): string {
  return render("monitoring", "alertmanager.yml", { webhookUrl: spec.monitoring.alertmanager.webhookUrl ?? null });
}
