// The monitoring host's Prometheus, as the operator's machine reads it: its HTTP API over TLS
// (verified against the cluster CA) with the metrics login in a header, never in argv. Used by
// `npm run status` (the alerts that fire) and the hosts tests.
import * as https from "https";
import { ports } from "../model/identities";
import { METRICS_USER } from "../roles/exporters/webConfig";
import { writeCurlLogin, type LocalCluster } from "./cluster";

export interface Alert { name: string; state: "pending" | "firing"; severity: string; instance?: string; summary: string; activeAt: string }

/** The monitoring host's Prometheus base URL, or undefined when monitoring is off. */
export function prometheusUrl(c: Pick<LocalCluster, "spec" | "hosts">): string | undefined {
  const mon = c.hosts.find((h) => h.roles.includes("monitoring"));
  return c.spec.monitoring.enabled && mon ? `https://${mon.address}:${ports.prometheus}` : undefined;
}

/** GET `apiPath` of Prometheus's API; its `data` on success, else an error naming the host and what it said. */
export function prometheusApi<T>(c: Pick<LocalCluster, "spec" | "hosts" | "pki" | "secrets">, apiPath: string, timeoutMs = 5000): Promise<T> {
  const base = prometheusUrl(c);
  if (!base) return Promise.reject(new Error("monitoring.enabled is false: there is no Prometheus"));
  const u = new URL(apiPath, base);
  const auth = `Basic ${Buffer.from(`${METRICS_USER}:${c.secrets.metricsPassword}`).toString("base64")}`;
  return new Promise<T>((resolve, reject) => {
    const req = https.get({ host: u.hostname, port: u.port, path: u.pathname + u.search, ca: c.pki.ca, headers: { authorization: auth }, timeout: timeoutMs }, (res) => {
      let b = "";
      res.on("data", (d) => (b += d));
      res.on("end", () => {
        let doc: { status?: string; data?: T; error?: string } = {};
        try { doc = JSON.parse(b); } catch { /* reported below */ }
        if (res.statusCode === 200 && doc.status === "success") resolve(doc.data as T);
        else reject(new Error(`Prometheus at ${u.host}: HTTP ${res.statusCode}${doc.error ? `: ${doc.error}` : ""}`));
      });
    });
    req.on("timeout", () => req.destroy(new Error(`Prometheus at ${u.host}: no answer in ${timeoutMs} ms`)));
    req.on("error", reject);
  });
}

/** An instant query's samples: labels and value. */
export async function promQuery(c: Parameters<typeof prometheusApi>[0], promql: string): Promise<{ metric: Record<string, string>; value: number }[]> {
  const data = await prometheusApi<{ result: { metric: Record<string, string>; value: [number, string] }[] }>(c, `/api/v1/query?query=${encodeURIComponent(promql)}`);
  return data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
}

/** The alerts Prometheus holds now (pending and firing). */
export async function activeAlerts(c: Parameters<typeof prometheusApi>[0]): Promise<Alert[]> {
  const data = await prometheusApi<{ alerts: { labels: Record<string, string>; annotations: Record<string, string>; state: Alert["state"]; activeAt: string }[] }>(c, "/api/v1/alerts");
  return data.alerts.map((a) => ({
    name: a.labels.alertname, state: a.state, severity: a.labels.severity ?? "none",
    ...(a.labels.instance ? { instance: a.labels.instance } : {}), summary: a.annotations.summary ?? "", activeAt: a.activeAt,
  }));
}

/** `npm run status`'s lines: the firing alerts first (critical first), then the pending ones. */
export function describeAlerts(alerts: Alert[]): string[] {
  const rank = (a: Alert) => (a.state === "firing" ? 0 : 2) + (a.severity === "critical" ? 0 : 1);
  const sorted = [...alerts].sort((a, b) => rank(a) - rank(b) || a.name.localeCompare(b.name));
  const firing = alerts.filter((a) => a.state === "firing").length;
  return [
    `alerts: ${firing} firing, ${alerts.length - firing} pending`,
    ...sorted.map((a) => `  ${a.state.toUpperCase().padEnd(8)} ${a.severity.padEnd(8)} ${a.name}${a.instance ? ` (${a.instance})` : ""}: ${a.summary}`),
  ];
}

/**
 * Writes <state>/prometheus.curl (0600): the metrics login as a curl config file, for
 * `curl -K <file> --cacert <ca> <url>`, like the stats page's (local/cluster.ts).
 */
export function writePrometheusCurlConfig(c: Pick<LocalCluster, "secrets" | "stateDir">): string {
  return writeCurlLogin(c, "prometheus.curl", METRICS_USER, c.secrets.metricsPassword, "the metrics password");
}
