// backup: the backup repository host (static inventories). pgBackRest keeps the cluster's
// encrypted posix repository here and serves it over TLS (client certificates from the cluster
// CA: the database nodes push WAL to it). Its step creates the stanza once every node runs under
// Patroni, checks archiving end to end, and schedules backups with systemd timers: full and
// differential, taken from a standby, expired by retention.
import { BACKUP_REPOSITORY, PG_DATA, PGBACKREST_CONFIG, ports, tlsDir } from "../../model/identities";
import { render } from "../render";
import { daemonReload, restart, shellFn, StepBuilder } from "../step";
import { stepId } from "../types";
import type { RoleUnit } from "../role";
import { withRole } from "../hosts";
import { ROLE as COMMON } from "../common";
import { ROLE as FIREWALL } from "../firewall";
import { ROLE as RESTART } from "../restart";
import { hostsBlock, pgbackrestTls, ROLE as PGBACKREST, SERVER_UNIT, stanza } from "../pgbackrest";

export const ROLE = "backup";
export const BACKUP_TYPES = ["full", "diff"] as const;
export const backupUnit = (type: string) => `pgcluster-backup@${type}.service`;
export const timerUnit = (type: string) => `pgcluster-backup-${type}.timer`;

export const shell = {
  stanza: shellFn(`${ROLE}/backup.sh`, "pgc_backup_stanza"),
  check: shellFn(`${ROLE}/backup.sh`, "pgc_backup_check"),
};

export const backup: RoleUnit = {
  name: ROLE,
  hosts: (spec) => (spec.backup.enabled ? withRole(spec, "backup") : []),
  // The stanza needs a running primary; `check` needs archive_mode on, which takes a restart:
  // after every node's restart step (which comes after its patroni step) and its pgBackRest.
  after: (spec, host) => [
    stepId(host.name, COMMON), stepId(host.name, FIREWALL),
    ...withRole(spec, "postgres").flatMap((h) => [stepId(h.name, PGBACKREST), stepId(h.name, RESTART)]),
  ],
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
      }),
    });
    s.file({ path: `/etc/systemd/system/${backupUnit("")}`, content: render(ROLE, "pgcluster-backup@.service", { stanza: stanza(spec) }), notify: [daemonReload] });
    for (const type of BACKUP_TYPES)
      s.file({ path: `/etc/systemd/system/${timerUnit(type)}`, content: render(ROLE, "pgcluster-backup.timer", { stanza: stanza(spec), type, calendar: b.schedule[type] }), notify: [daemonReload, restart(timerUnit(type))] });
    s.handlers();
    s.service(SERVER_UNIT);
    s.shell(ROLE, "backup.sh", { stanza: stanza(spec) });
    s.call(shell.stanza);
    s.wait(180, `the primary archiving WAL into the repository (pgbackrest check)`, shell.check);
    for (const type of BACKUP_TYPES) s.service(timerUnit(type));
    return s;
  },
};
