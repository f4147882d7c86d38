// dump: the daily logical dump on the backup host (the seed's "daily pg_dump"). A systemd timer,
// or `npm run backup:dump`, runs pg_dump of the application database and pg_dumpall of the
// roles against a standby (the primary when none answers), as a read-only role that logs in by
// the backup host's certificate only; the files are encrypted with the repository's passphrase
// and kept backup.retention.dumpDays. GCP (no backup host): on one database node at a time, the
// files kept in the cluster's bucket.
import { DUMP, PG_VERSION, PGBACKREST_CONFIG, ports, TEXTFILE_DIR, tlsDir, users } from "../../model/identities";
import { render } from "../render";
import { daemonReload, restart, StepBuilder } from "../step";
import { stepId } from "../types";
import type { RoleUnit } from "../role";
import { withRole } from "../hosts";
import { ROLE as DRILL } from "../drill";
import { ROLE as DATABASE } from "../database";
import { GCS_TURN_SCRIPT } from "../stanza";
import { clusterBucket } from "../pgbackrest";

export const ROLE = "dump";

export const dump: RoleUnit = {
  name: ROLE,
  // Static: the backup host. GCP: every database node has the timer and one acts (pgcluster-turn).
  hosts: (spec) => (!spec.backup.enabled ? [] : spec.provider === "gcp" ? withRole(spec, "postgres") : withRole(spec, "backup")),
  // The client binaries come with the drill's packages; the role it logs in as, with the database step.
  after: (spec, host) => [stepId(host.name, DRILL), ...withRole(spec, "postgres").map((h) => stepId(h.name, DATABASE))],
  step(ctx, host) {
    const spec = ctx.spec;
    const gcp = spec.provider === "gcp";
    const s = new StepBuilder();
    s.packages(`postgresql-client-${PG_VERSION}`);
    s.dir("/usr/local/lib/pgcluster", "root", "root", "0755");
    s.file({
      path: DUMP.script, mode: "0755",
      content: render(ROLE, "pgcluster-dump.sh", {
        cluster: spec.clusterName, database: spec.postgresql.database, result: DUMP.result, textfileDir: TEXTFILE_DIR,
        keepDays: spec.backup.retention.dumpDays, config: PGBACKREST_CONFIG, port: ports.postgres, unit: DUMP.unit,
        ...(gcp
          ? { dir: DUMP.nodeDir, bucket: clusterBucket(spec), prefix: DUMP.bucketPrefix, turnScript: GCS_TURN_SCRIPT }
          : { dir: DUMP.dir, bucket: "", hosts: withRole(ctx, "postgres").map((h) => h.address).join(","), user: users.dump, tls: tlsDir.pgbackrest }),
      }),
    });
    s.file({ path: `/etc/systemd/system/${DUMP.unit}`, content: render(ROLE, "pgcluster-dump.service", { cluster: spec.clusterName, script: DUMP.script }), notify: [daemonReload] });
    s.file({ path: `/etc/systemd/system/${DUMP.timer}`, content: render(ROLE, "pgcluster-dump.timer", { cluster: spec.clusterName, calendar: spec.backup.schedule.dump, unit: DUMP.unit }), notify: [daemonReload, restart(DUMP.timer)] });
    s.handlers();
    s.service(DUMP.timer);
    return s;
  },
};
