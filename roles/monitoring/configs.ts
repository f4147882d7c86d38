// The monitoring configuration files: the exporters' web configuration (TLS + basic auth),
// Prometheus's scrape configuration and Alertmanager's. Pure renders; the steps that install
// them (and the host-side bcrypt hash) are still to come (ARCHITECTURE.md: Monitoring).
import type { ClusterSpec } from "../../model/config";
import { ports, users } from "../../model/identities";
import { render } from "../render";
import type { Host } from "../types";

/** The user Prometheus authenticates as at every exporter. */
export const METRICS_USER = "prometheus";

/** Where the monitoring host keeps what Prometheus reads (paths on the host). */
export const MONITORING_PATHS = {
  rules: "/etc/prometheus/pgcluster-alerts.yml",
  ca: "/etc/prometheus/pki/ca.crt",
  clientCert: "/etc/prometheus/pki/node.crt",
  clientKey: "/etc/prometheus/pki/node.key",
  /** The exporters' basic-auth password (secret metricsPassword), 0640 root:prometheus. */
  metricsPassword: "/etc/prometheus/pgcluster/metrics-password",
  /** HAProxy's stats password (its /metrics is on the stats port, user users.haproxyStats). */
  statsPassword: "/etc/prometheus/pgcluster/stats-password",
};
export type MonitoringPaths = typeof MONITORING_PATHS;

/**
 * A bcrypt hash as exporter-toolkit reads it ($2a$/$2b$/$2y$, cost 10-14). It is computed on the
 * host (Debian 12's python3 crypt, libxcrypt) from the password sent in the step's script.
 */
export const BCRYPT_HASH = /^\$2[aby]\$1[0-4]\$[./A-Za-z0-9]{53}$/;

export function renderExporterWebConfig(o: { certFile: string; keyFile: string; passwordHash: string }): string {
  if (!BCRYPT_HASH.test(o.passwordHash)) throw new Error("exporter web config: the metrics password hash is not a bcrypt hash ($2b$<cost 10-14>$…)");
  return render("monitoring", "web-config.yml", { ...o, username: METRICS_USER });
}

interface Job { name: string; metricsPath: string; basicAuthUser?: string; passwordFile?: string; targets: { host: string; address: string; port: number }[] }

/** Every target of the cluster, one job per kind of exporter. */
export function scrapeJobs(hosts: Host[], paths: MonitoringPaths = MONITORING_PATHS): Job[] {
  const withRole = (r: Host["roles"][number]) => hosts.filter((h) => h.roles.includes(r));
  const targets = (hs: Host[], port: number) => hs.map((h) => ({ host: h.name, address: h.address, port }));
  const exporter = { basicAuthUser: METRICS_USER, passwordFile: paths.metricsPassword, metricsPath: "/metrics" };
  return [
    { name: "node", ...exporter, targets: targets(hosts, ports.nodeExporter) },
    { name: "postgres", ...exporter, targets: targets(withRole("postgres"), ports.postgresExporter) },
    { name: "pgbouncer", ...exporter, targets: targets(withRole("postgres"), ports.pgbouncerExporter) },
    // Patroni's /metrics is a safe GET on its REST API (TLS); etcd asks for a client certificate.
    { name: "patroni", metricsPath: "/metrics", targets: targets(withRole("postgres"), ports.patroni) },
    { name: "etcd", metricsPath: "/metrics", targets: targets(withRole("etcd"), ports.etcdClient) },
    // HAProxy 2.6's built-in exporter (USE_PROMEX), on the authenticated stats port.
    { name: "haproxy", metricsPath: "/metrics", basicAuthUser: users.haproxyStats, passwordFile: paths.statsPassword, targets: targets(withRole("balancer"), ports.stats) },
  ];
}

export function renderPrometheusConfig(spec: ClusterSpec, hosts: Host[], monitoringHost: string, paths: MonitoringPaths = MONITORING_PATHS): string {
  return render("monitoring", "prometheus.yml", {
    cluster: spec.clusterName,
    scrapeIntervalSeconds: spec.monitoring.scrapeIntervalSeconds,
    rulesFile: paths.rules,
    caFile: paths.ca, clientCertFile: paths.clientCert, clientKeyFile: paths.clientKey,
    alertmanagerPort: ports.alertmanager, prometheusPort: ports.prometheus,
    monitoringHost,
    jobs: scrapeJobs(hosts, paths),
  });
}

export function renderAlertmanagerConfig(spec: ClusterSpec): string {
  return render("monitoring", "alertmanager.yml", { webhookUrl: spec.monitoring.alertmanager.webhookUrl ?? null });
}
