// backup: the backup repository host (static inventories). pgBackRest keeps the cluster's
// encrypted posix repository here and serves it over TLS (client certificates from the cluster
// CA: the database nodes push WAL to it and read it back). Serving before any node archives or
// restores: a replica asks the repository first when it starts, so an unreachable one would
// delay every start. The stanza role (roles/stanza) then creates the stanza, checks archiving and
// schedules the backups.
import { STANDBY_REPOSITORY_CLIENT } from "../standby";
import { BACKUP_REPOSITORY, PG_DATA, PGBACKREST_CONFIG, ports, tlsDir } from "../../model/identities";
import type { ClusterSpec } from "../../model/config";
import { render } from "../render";
import { restart, shellFn, StepBuilder } from "../step";
import { stepId } from "../types";
import type { Host, RoleContext } from "../types";
import type { RoleUnit } from "../role";
import { nodeTlsFiles } from "../tls";
import { withRole } from "../hosts";
import { ROLE as COMMON } from "../common";
import { ROLE as FIREWALL } from "../firewall";

export const ROLE = "backup";
/** Debian's unit: `pgbackrest server` as postgres, reading PGBACKREST_CONFIG (here and on the database nodes). */
export const SERVER_UNIT = "pgbackrest";

export const shell = {
  hostsBlock: shellFn(`${ROLE}/hosts.sh`, "pgc_hosts_block"),
};

/** The stanza: one per cluster, named after it. */
export function stanza(spec: ClusterSpec): string {
  return spec.clusterName;
}

/** pgBackRest's directory and TLS files, owned by postgres (the Debian unit runs as postgres). */
export function pgbackrestTls(s: StepBuilder, ctx: RoleContext, host: Host): void {
  s.dir("/etc/pgbackrest", "root", "postgres", "0750");
  nodeTlsFiles(s, ctx, host, { dir: tlsDir.pgbackrest, owner: "postgres", notify: [restart(SERVER_UNIT)] });
}

/** /etc/hosts entries for `hosts`, so pgBackRest can dial them by name. */
export function hostsBlock(s: StepBuilder, hosts: Host[]): void {
  s.shell(ROLE, "hosts.sh", { entries: hosts.map((h) => ({ address: h.address, name: h.name })) });
  s.call(shell.hostsBlock);
}
export const backup: RoleUnit = {
  name: ROLE,
  hosts: (spec) => (spec.backup.enabled ? withRole(spec, "backup") : []),
  after: (_spec, host) => [stepId(host.name, COMMON), stepId(host.name, FIREWALL)],
  step(ctx, host) {
    const spec = ctx.spec;
    const b = spec.backup;
    const nodes = withRole(ctx, "postgres");
    const s = new StepBuilder();
    s.packages("pgbackrest");
    hostsBlock(s, nodes);
    pgbackrestTls(s, ctx, host);
    s.dir(BACKUP_REPOSITORY, "postgres", "postgres", "0750");
    s.file({
      path: PGBACKREST_CONFIG,
      owner: "root",
      group: "postgres",
      mode: "0640",
      secret: true,
      notify: [restart(SERVER_UNIT)],
      content: render(ROLE, "pgbackrest.conf", {
        name: host.name, stanza: stanza(spec), repoPath: BACKUP_REPOSITORY, cipherPass: ctx.secrets.backupCipherPassphrase,
        retentionFull: b.retention.full, retentionDiff: b.retention.diff, backupStandby: nodes.length >= 2,
        address: host.address, port: ports.pgbackrest, tls: tlsDir.pgbackrest, dataDir: PG_DATA, pgPort: ports.postgres,
        nodes: nodes.map((n, i) => ({ name: n.name, index: i + 1 })),
        standbyClient: spec.standbyClusters.length ? STANDBY_REPOSITORY_CLIENT : "",
      }),
    });
    s.handlers();
    s.service(SERVER_UNIT);
    return s;
  },
};
