// stanza: on the backup host, once every database node archives (archive_mode takes a restart:
// after every node's restart step). Creates the cluster's stanza in the repository once,
// checks archiving end to end, and schedules the backups with systemd timers (full and
// differential, taken from a standby, expired by retention). pgBackRest runs `backup` on the
// repository host only, so exactly one actor backs up, whichever node is primary.
// gcp (no backup host): on every database node; the primary creates the stanza, the others
// read it back, and each node's timer backs up only while that node is the primary.
import type { ClusterSpec } from "../../model/config";
import { ports, tlsDir } from "../../model/identities";
import { render } from "../render";
import { daemonReload, restart, shellFn, StepBuilder } from "../step";
import { stepId } from "../types";
import type { RoleUnit } from "../role";
import { withRole } from "../hosts";
import { ROLE as BACKUP, stanza } from "../backup";
import { ROLE as PGBACKREST } from "../pgbackrest";
import { ROLE as RESTART } from "../restart";

export const ROLE = "stanza";
export const BACKUP_TYPES = ["full", "diff"] as const;
export const backupUnit = (type: string) => `pgcluster-backup@${type}.service`;
export const timerUnit = (type: string) => `pgcluster-backup-${type}.timer`;

export const shell = {
  stanza: shellFn(`${ROLE}/stanza.sh`, "pgc_backup_stanza"),
  check: shellFn(`${ROLE}/stanza.sh`, "pgc_backup_check"),
  sameCluster: shellFn(`${ROLE}/stanza.sh`, "pgc_backup_same_cluster"),
  first: shellFn(`${ROLE}/stanza.sh`, "pgc_backup_first"),
  stanzaGcs: shellFn(`${ROLE}/stanza-gcs.sh`, "pgc_backup_stanza_gcs"),
  checkGcs: shellFn(`${ROLE}/stanza-gcs.sh`, "pgc_backup_check_gcs"),
  firstGcs: shellFn(`${ROLE}/stanza-gcs.sh`, "pgc_backup_first_gcs"),
};

/** gcp: the script the backup unit runs on every database node; it backs up only on the primary. */
export const GCS_BACKUP_SCRIPT = "/usr/local/lib/pgcluster/pgcluster-backup";
/** gcp: whose turn the restore drill and the logical dump are (one node acts; see the script). */
export const GCS_TURN_SCRIPT = "/usr/local/lib/pgcluster/pgcluster-turn";

/** Where the stanza is kept and the backups run: the backup host (static), every database node (gcp). */
function actors(spec: ClusterSpec) {
  if (!spec.backup.enabled) return [];
  return spec.provider === "gcp" ? withRole(spec, "postgres") : withRole(spec, "backup");
}

export const stanzaRole: RoleUnit = {
  name: ROLE,
  hosts: actors,
  // stanza-create needs a running primary; `check` needs archive_mode on, which takes a restart.
  after: (spec, host) => [
    ...(spec.provider === "gcp" ? [] : [stepId(host.name, BACKUP)]),
    ...withRole(spec, "postgres").flatMap((h) => [stepId(h.name, PGBACKREST), stepId(h.name, RESTART)]),
  ],
  step(ctx, host) {
    const spec = ctx.spec;
    const gcp = spec.provider === "gcp";
    const s = new StepBuilder();
    if (gcp) {
      s.file({ path: GCS_BACKUP_SCRIPT, mode: "0755", content: render(ROLE, "pgcluster-backup-gcs.sh", { stanza: stanza(spec), patroniTls: tlsDir.patroni, patroniPort: ports.patroni }) });
      s.file({ path: GCS_TURN_SCRIPT, mode: "0755", content: render(ROLE, "pgcluster-turn", { name: host.name, patroniTls: tlsDir.patroni, patroniPort: ports.patroni }) });
    }
    s.file({ path: `/etc/systemd/system/${backupUnit("")}`, content: render(ROLE, "pgcluster-backup@.service", { stanza: stanza(spec), ...(gcp ? { script: GCS_BACKUP_SCRIPT } : {}) }), notify: [daemonReload] });
    for (const type of BACKUP_TYPES)
      s.file({ path: `/etc/systemd/system/${timerUnit(type)}`, content: render(ROLE, "pgcluster-backup.timer", { stanza: stanza(spec), type, calendar: spec.backup.schedule[type] }), notify: [daemonReload, restart(timerUnit(type))] });
    s.shell(ROLE, "stanza.sh", { stanza: stanza(spec), stack: spec.stack, firstBackupUnit: backupUnit("full") });
    if (gcp) {
      s.shell(ROLE, "stanza-gcs.sh", { stanza: stanza(spec), patroniTls: tlsDir.patroni, patroniPort: ports.patroni });
      s.call(shell.stanzaGcs);
      s.wait(180, `the repository in the bucket (pgbackrest check on the primary, info elsewhere)`, shell.checkGcs);
    } else {
      s.call(shell.stanza);
      s.call(shell.sameCluster);
      s.wait(180, `the primary archiving WAL into the repository (pgbackrest check)`, shell.check);
    }
    s.handlers();
    for (const type of BACKUP_TYPES) s.service(timerUnit(type));
    // After the handlers: the backup unit is loaded (daemon-reload) and archiving was checked.
    s.call(gcp ? shell.firstGcs : shell.first);
    return s;
  },
};
