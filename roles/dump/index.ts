// dump: the daily logical dump on the backup host (the seed's "daily pg_dump"). A systemd timer,
// or `npm run backup:dump`, runs pg_dump of the application database and pg_dumpall of the
// roles against a standby (the primary when none answers), as a read-only role that logs in by
// the backup host's certificate only; the files are encrypted with the repository's passphrase
// and kept backup.retention.dumpDays. Static inventories (GCP has no backup host).
import { DUMP, PG_VERSION, PGBACKREST_CONFIG, ports, TEXTFILE_DIR, tlsDir, users } from "../../model/identities";
import { render } from "../render";
import { daemonReload, restart, StepBuilder } from "../step";
import { stepId } from "../types";
import type { RoleUnit } from "../role";
import { withRole } from "../hosts";
import { ROLE as DRILL } from "../drill";
import { ROLE as DATABASE } from "../database";

export const ROLE = "dump";

export const dump: RoleUnit = {
  name: ROLE,
  hosts: (spec) => (spec.backup.enabled && spec.provider === "static" ? withRole(spec, "backup") : []),
  // The client binaries come with the drill's packages; the role it logs in as, with the database step.
  after: (spec, host) => [stepId(host.name, DRILL), ...withRole(spec, "postgres").map((h) => stepId(h.name, DATABASE))],
  step(ctx, host) {
    const spec = ctx.spec;
    const s = new StepBuilder();
    s.packages(`postgresql-client-${PG_VERSION}`);
    s.dir("/usr/local/lib/pgcluster", "root", "root", "0755");
    s.file({
      path: DUMP.script, mode: "0755",
      content: render(ROLE, "pgcluster-dump.sh", {
        cluster: spec.clusterName, database: spec.postgresql.database, dir: DUMP.dir, result: DUMP.result, textfileDir: TEXTFILE_DIR,
        keepDays: spec.backup.retention.dumpDays, config: PGBACKREST_CONFIG, hosts: withRole(ctx, "postgres").map((h) => h.address).join(","),
        port: ports.postgres, user: users.dump, tls: tlsDir.pgbackrest, unit: DUMP.unit,
      }),
    });
    s.file({ path: `/etc/systemd/system/${DUMP.unit}`, content: render(ROLE, "pgcluster-dump.service", { cluster: spec.clusterName, script: DUMP.script }), notify: [daemonReload] });
    s.file({ path: `/etc/systemd/system/${DUMP.timer}`, content: render(ROLE, "pgcluster-dump.timer", { cluster: spec.clusterName, calendar: spec.backup.schedule.dump, unit: DUMP.unit }), notify: [daemonReload, restart(DUMP.timer)] });
    s.handlers();
    s.service(DUMP.timer);
    return s;
  },
};
