// exporters: what Prometheus reads on every host (monitoring.enabled). Debian 12's node exporter
// everywhere, its postgres_exporter on the database nodes, both over TLS with the node certificate
// and basic auth (the metrics login, as a bcrypt hash). pgcluster's textfile writer adds what no
// exporter reports: certificate expiry (every host), pgBouncer's pools (database nodes; Debian's
// pgbouncer-exporter 1.7 fails against pgBouncer 1.18) and the newest backups (backup host).
// HAProxy's own exporter is configured by the haproxy role; Patroni and etcd serve /metrics.
import { EXPORTERS, PGBACKREST_CONFIG, ports, TEXTFILE_DIR, tlsDir, users } from "../../model/identities";
import type { ClusterSpec, HostSpec } from "../../model/config";
import { render } from "../render";
import { daemonReload, restart, shellFn, StepBuilder } from "../step";
import { stepId } from "../types";
import type { RoleUnit } from "../role";
import { nodeTlsFiles } from "../tls";
import { ROLE as COMMON } from "../common";
import { ROLE as FIREWALL } from "../firewall";
import { ROLE as PATRONI } from "../patroni";
import { ROLE as PGBOUNCER } from "../pgbouncer";
import { stanza } from "../backup";
import { metricsPasswordHash, renderExporterWebConfig } from "./webConfig";

export const ROLE = "exporters";
export const NODE_EXPORTER = "prometheus-node-exporter";
export const POSTGRES_EXPORTER = "prometheus-postgres-exporter";

export const shell = {
  answers: shellFn(`${ROLE}/exporters.sh`, "pgc_exporters_answer"),
};

/** The directories that hold the certificate files pgcluster installs on `host`. */
export function certificateDirs(spec: ClusterSpec, host: HostSpec): string[] {
  const has = (r: string) => host.roles.includes(r as never);
  return [
    ...(has("etcd") ? [tlsDir.etcd] : []),
    ...(has("postgres") ? [tlsDir.patroni, tlsDir.pgbouncer] : []),
    ...(has("balancer") ? [tlsDir.haproxy] : []),
    ...(spec.backup.enabled && (has("postgres") || has("backup")) ? [tlsDir.pgbackrest] : []),
    EXPORTERS.tlsDir,
  ];
}

const isDb = (h: HostSpec) => h.roles.includes("postgres");
// Who reports the newest backups: the backup host; on GCP (the repository is a bucket, no backup
// host) every database node, each reading the same bucket (the rules take the newest of them).
const isBackup = (spec: ClusterSpec, h: HostSpec) => spec.backup.enabled && (spec.provider === "gcp" ? isDb(h) : h.roles.includes("backup"));

export const exporters: RoleUnit = {
  name: ROLE,
  hosts: (spec) => (spec.monitoring.enabled ? spec.hosts : []),
  // On a database node, after Patroni (pg_hba admits the exporter's login) and pgBouncer (whose
  // pools the textfile writer reads).
  after: (_spec, host) => [stepId(host.name, COMMON), stepId(host.name, FIREWALL), ...(isDb(host) ? [stepId(host.name, PATRONI), stepId(host.name, PGBOUNCER)] : [])],
  step(ctx, host) {
    const spec = ctx.spec;
    const db = isDb(host);
    const s = new StepBuilder();
    // The packages start at once with Debian's defaults (plain HTTP on every address, behind the
    // host firewall, which admits only the monitoring host and operators); the files below
    // restart them with TLS and the login.
    s.packages(NODE_EXPORTER, "openssl", ...(db ? [POSTGRES_EXPORTER] : []));
    const units = [NODE_EXPORTER, ...(db ? [POSTGRES_EXPORTER] : [])];
    const restartAll = units.map(restart);
    nodeTlsFiles(s, ctx, host, { dir: EXPORTERS.tlsDir, owner: "prometheus", notify: restartAll });
    s.file({
      path: EXPORTERS.webConfig, owner: "root", group: "prometheus", mode: "0640", notify: restartAll,
      content: renderExporterWebConfig({ certFile: `${EXPORTERS.tlsDir}/node.crt`, keyFile: `${EXPORTERS.tlsDir}/node.key`, passwordHash: metricsPasswordHash(ctx.secrets.metricsPassword) }),
    });
    s.file({
      path: `/etc/default/${NODE_EXPORTER}`, notify: [restart(NODE_EXPORTER)],
      content: render(ROLE, "node-exporter.default", { address: host.address, port: ports.nodeExporter, webConfig: EXPORTERS.webConfig, textfileDir: TEXTFILE_DIR }),
    });
    if (db) {
      s.file({
        path: `/etc/default/${POSTGRES_EXPORTER}`, notify: [restart(POSTGRES_EXPORTER)],
        content: render(ROLE, "postgres-exporter.default", { address: host.address, port: ports.postgresExporter, webConfig: EXPORTERS.webConfig, user: users.monitor, pgPort: ports.postgres }),
      });
    }
    s.dir(TEXTFILE_DIR, "root", "root", "0755");
    s.dir("/usr/local/lib/pgcluster", "root", "root", "0755");
    s.file({
      path: EXPORTERS.textfileScript, mode: "0755",
      content: render(ROLE, "textfile-metrics.py", {
        textfileDir: TEXTFILE_DIR, certificateDirs: certificateDirs(spec, host),
        pgbouncerPort: db ? ports.pgbouncer : 0,
        ...(isBackup(spec, host) ? { backups: { stanza: stanza(spec), config: PGBACKREST_CONFIG } } : { backups: false }),
      }),
    });
    s.file({ path: `/etc/systemd/system/${EXPORTERS.textfileUnit}`, content: render(ROLE, "pgcluster-textfile-metrics.service", { script: EXPORTERS.textfileScript }), notify: [daemonReload] });
    s.file({ path: `/etc/systemd/system/${EXPORTERS.textfileTimer}`, content: render(ROLE, "pgcluster-textfile-metrics.timer", { unit: EXPORTERS.textfileUnit }), notify: [daemonReload, restart(EXPORTERS.textfileTimer)] });
    s.handlers();
    for (const u of units) s.service(u);
    s.service(EXPORTERS.textfileTimer);
    s.shell(ROLE, "exporters.sh", {
      ca: `${EXPORTERS.tlsDir}/ca.crt`,
      urls: [`https://${host.address}:${ports.nodeExporter}/metrics`, ...(db ? [`https://${host.address}:${ports.postgresExporter}/metrics`] : [])],
    });
    s.wait(30, `the exporters on ${host.name} answering over TLS and asking for the login`, shell.answers);
    return s;
  },
};
