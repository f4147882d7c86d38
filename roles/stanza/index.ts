// stanza: on the backup host, once every database node archives (archive_mode takes a restart:
// after every node's restart step). Creates the cluster's stanza in the repository once,
// checks archiving end to end, and schedules the backups with systemd timers (full and
// differential, taken from a standby, expired by retention). pgBackRest runs `backup` on the
// repository host only, so exactly one actor backs up, whichever node is primary.
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
};

export const stanzaRole: RoleUnit = {
  name: ROLE,
  hosts: (spec) => (spec.backup.enabled ? withRole(spec, "backup") : []),
  // stanza-create needs a running primary; `check` needs archive_mode on, which takes a restart.
  after: (spec, host) => [
    stepId(host.name, BACKUP),
    ...withRole(spec, "postgres").flatMap((h) => [stepId(h.name, PGBACKREST), stepId(h.name, RESTART)]),
  ],
  step(ctx) {
    const spec = ctx.spec;
    const s = new StepBuilder();
    s.file({ path: `/etc/systemd/system/${backupUnit("")}`, content: render(ROLE, "pgcluster-backup@.service", { stanza: stanza(spec) }), notify: [daemonReload] });
    for (const type of BACKUP_TYPES)
      s.file({ path: `/etc/systemd/system/${timerUnit(type)}`, content: render(ROLE, "pgcluster-backup.timer", { stanza: stanza(spec), type, calendar: spec.backup.schedule[type] }), notify: [daemonReload, restart(timerUnit(type))] });
    s.shell(ROLE, "stanza.sh", { stanza: stanza(spec) });
    s.call(shell.stanza);
    s.wait(180, `the primary archiving WAL into the repository (pgbackrest check)`, shell.check);
    s.handlers();
    for (const type of BACKUP_TYPES) s.service(timerUnit(type));
    return s;
  },
};
