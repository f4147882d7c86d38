// pgbackrest: pgBackRest on every database node while backup.enabled. PostgreSQL's
// archive_command pushes WAL with it to the backup host's repository (TLS, this node's
// certificate); its TLS server lets the backup host take backups from this node. The archiving
// settings themselves are Patroni's (the patroni role's dcsConfig), so every node has them.
import { PG_DATA, PGBACKREST_CONFIG, ports, tlsDir, users } from "../../model/identities";
import type { ClusterSpec } from "../../model/config";
import { render } from "../render";
import { restart, StepBuilder } from "../step";
import { stepId } from "../types";
import type { RoleUnit } from "../role";
import { withRole } from "../hosts";
import { ROLE as POSTGRESQL } from "../postgresql";
import { ROLE as FIREWALL } from "../firewall";
import { hostsBlock, pgbackrestTls, ROLE as BACKUP, SERVER_UNIT, stanza } from "../backup";

export const ROLE = "pgbackrest";

/** PostgreSQL's archiving settings while backup.enabled (Patroni's DCS parameters). */
export function archiveParameters(spec: ClusterSpec): Record<string, string | number> {
  return {
    archive_mode: "on",
    archive_command: `pgbackrest --stanza=${stanza(spec)} archive-push %p`,
    archive_timeout: spec.backup.archiveTimeout,
  };
}

/** How a replica (or a restore) reads WAL from the repository (Patroni's recovery_conf). */
export function restoreCommand(spec: ClusterSpec): string {
  return `pgbackrest --stanza=${stanza(spec)} archive-get %f "%p"`;
}


export const pgbackrest: RoleUnit = {
  name: ROLE,
  hosts: (spec) => (spec.backup.enabled ? withRole(spec, "postgres") : []),
  // The repository serving first: a replica asks it first whenever it starts.
  after: (spec, host) => [stepId(host.name, POSTGRESQL), stepId(host.name, FIREWALL), ...withRole(spec, "backup").map((b) => stepId(b.name, BACKUP))],
  step(ctx, host) {
    const repo = withRole(ctx, "backup")[0];
    if (!repo) throw new Error(`backup.enabled without a backup host (the config refuses it)`);
    const s = new StepBuilder();
    s.packages("pgbackrest");
    hostsBlock(s, [repo]);
    pgbackrestTls(s, ctx, host);
    s.file({
      path: PGBACKREST_CONFIG,
      owner: "root",
      group: "postgres",
      mode: "0640",
      notify: [restart(SERVER_UNIT)],
      content: render(ROLE, "pgbackrest.conf", {
        name: host.name, stanza: stanza(ctx.spec), repoHost: repo.name, port: ports.pgbackrest, tls: tlsDir.pgbackrest,
        address: host.address, dataDir: PG_DATA, pgPort: ports.postgres, superuser: users.superuser,
      }),
    });
    s.handlers();
    s.service(SERVER_UNIT);
    return s;
  },
};
