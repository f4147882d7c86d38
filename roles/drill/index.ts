// drill: the restore drill on the backup host (gcp: on one database node at a time; the seed's monthly recovery test). A systemd
// timer, or `npm run backup:verify`, restores the latest backup into a scratch directory there,
// starts PostgreSQL on it privately, checks it and records the result where people
// (last.json) and monitoring (a node-exporter textfile) read it. The drill's pgBackRest config
// reads the local repository only: it never reaches the database nodes and never archives.
import { BACKUP_REPOSITORY, DRILL, PG_VERSION, PGBACKREST_CONFIG, TEXTFILE_DIR } from "../../model/identities";
import { render } from "../render";
import { daemonReload, restart, shellFn, StepBuilder } from "../step";
import { stepId } from "../types";
import type { RoleUnit } from "../role";
import { withRole } from "../hosts";
import { stanza } from "../backup";
import { GCS_TURN_SCRIPT, ROLE as STANZA } from "../stanza";

export const ROLE = "drill";
/** The drill's node-exporter textfile: its result, or before the first drill when it became due. */
export const DRILL_TEXTFILE = `${TEXTFILE_DIR}/pgcluster-restore-drill.prom`;

export const shell = {
  expectedSince: shellFn(`${ROLE}/drill.sh`, "pgc_drill_expected_since"),
};

export const drill: RoleUnit = {
  name: ROLE,
  // Static: the backup host. GCP (the repository is the bucket): every database node has the
  // timer and one acts (pgcluster-turn), with the node's own pgBackRest configuration.
  hosts: (spec) => (!spec.backup.enabled ? [] : spec.provider === "gcp" ? withRole(spec, "postgres") : withRole(spec, "backup")),
  after: (_spec, host) => [stepId(host.name, STANZA)],
  step(ctx, host) {
    const spec = ctx.spec;
    const gcp = spec.provider === "gcp";
    const s = new StepBuilder();
    if (!gcp) {
      // The server binaries only: Debian must not create and start a cluster of its own here.
      s.file({ path: "/etc/postgresql-common/createcluster.conf", content: render("postgresql", "createcluster.conf", {}) });
      s.packages(`postgresql-${PG_VERSION}`, `postgresql-client-${PG_VERSION}`);
      s.file({
        path: DRILL.config, owner: "root", group: "postgres", mode: "0640", secret: true,
        content: render(ROLE, "drill.conf", { name: host.name, stanza: stanza(spec), repoPath: BACKUP_REPOSITORY, cipherPass: ctx.secrets.backupCipherPassphrase, port: DRILL.port }),
      });
    }
    s.dir("/usr/local/lib/pgcluster", "root", "root", "0755");
    s.file({
      path: DRILL.script, mode: "0755",
      content: render(ROLE, "restore-drill.sh", {
        stanza: stanza(spec), pgVersion: PG_VERSION, result: DRILL.result, textfileDir: TEXTFILE_DIR, port: DRILL.port, unit: DRILL.unit,
        // gcp: the scratch copy on the data disk, restored with the node's own configuration
        // (the bucket; pg1-path and archive-mode=off given on the drill's command line).
        ...(gcp ? { dir: DRILL.nodeDir, config: PGBACKREST_CONFIG, turnScript: GCS_TURN_SCRIPT } : { dir: DRILL.dir, config: DRILL.config, turnScript: "" }),
      }),
    });
    s.file({ path: `/etc/systemd/system/${DRILL.unit}`, content: render(ROLE, "pgcluster-restore-drill.service", { stanza: stanza(spec), script: DRILL.script }), notify: [daemonReload] });
    s.file({ path: `/etc/systemd/system/${DRILL.timer}`, content: render(ROLE, "pgcluster-restore-drill.timer", { stanza: stanza(spec), calendar: spec.backup.schedule.drill, unit: DRILL.unit }), notify: [daemonReload, restart(DRILL.timer)] });
    s.handlers();
    s.service(DRILL.timer);
    s.shell(ROLE, "drill.sh", { textfile: DRILL_TEXTFILE, stanza: stanza(spec) });
    s.call(shell.expectedSince);
    return s;
  },
};
