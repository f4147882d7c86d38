// pgbackrest: pgBackRest on every database node while backup.enabled. PostgreSQL's
// archive_command pushes WAL with it to the repository: static, the backup host's (TLS, this
// node's certificate), whose backups come through this node's TLS server; gcp, the cluster's
// Cloud Storage bucket, with the instance's service account. The archiving
// settings themselves are Patroni's (the patroni role's dcsConfig), so every node has them.
import { PG_DATA, PGBACKREST_CONFIG, ports, tlsDir, users } from "../../model/identities";
import { backupBucketName, type ClusterSpec } from "../../model/config";
import { render } from "../render";
import { restart, StepBuilder } from "../step";
import { stepId, type Host, type RoleContext } from "../types";
import type { RoleUnit } from "../role";
import { withRole } from "../hosts";
import { ROLE as POSTGRESQL } from "../postgresql";
import { ROLE as FIREWALL } from "../firewall";
import { hostsBlock, pgbackrestTls, ROLE as BACKUP, SERVER_UNIT, stanza } from "../backup";
import { primaryRepository } from "../standby";

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


/**
 * Patroni's replica method that restores the newest backup from the repository (static: through
 * the backup host; gcp: from the bucket) into the new replica's data directory. --type=standby:
 * pgBackRest's recovery settings, which Patroni replaces with its own when it starts the replica.
 */
export function replicaFromRepositoryCommand(spec: ClusterSpec): string {
  return `/usr/bin/pgbackrest --stanza=${stanza(spec)} --log-level-console=warn --delta --type=standby restore`;
}

/** The repository's prefix in the cluster's bucket (provider gcp): the bucket is the cluster's own. */
export const GCS_REPOSITORY_PATH = "/pgbackrest";

/** The Cloud Storage bucket of the cluster's repository (provider gcp; infra/backupBucket.ts makes it). */
export function clusterBucket(spec: ClusterSpec): string {
  if (spec.provider !== "gcp" || !spec.gcp) throw new Error(`only a GCP cluster keeps its repository in a bucket`);
  return backupBucketName(spec.gcp.project, spec.clusterName);
}

export const pgbackrest: RoleUnit = {
  name: ROLE,
  // Its own repository (backup.enabled), or, on a standby cluster, the primary's (WAL only).
  hosts: (spec) => (spec.backup.enabled || primaryRepository(spec) ? withRole(spec, "postgres") : []),
  // The repository serving first: a replica asks it first whenever it starts.
  after: (spec, host) => [stepId(host.name, POSTGRESQL), stepId(host.name, FIREWALL), ...withRole(spec, "backup").map((b) => stepId(b.name, BACKUP))],
  step(ctx, host) {
    if (!ctx.spec.backup.enabled) return primaryRepositoryStep(ctx, host);
    return ctx.spec.provider === "gcp" ? gcsRepositoryStep(ctx, host) : repositoryHostStep(ctx, host);
  },
};

/**
 * A standby cluster (spec.standby.repository): WAL from the primary's repository, read with the
 * primary's replication certificate (ctx.pki.replication is the primary's on a standby).
 */
function primaryRepositoryStep(ctx: RoleContext, host: Host): StepBuilder {
  const repo = primaryRepository(ctx.spec)!;
  const s = new StepBuilder();
  s.packages("pgbackrest");
  // pgBackRest checks the server certificate against the name it dials, never an address.
  hostsBlock(s, [{ name: repo.name, address: repo.host } as Host]);
  s.dir("/etc/pgbackrest", "root", "postgres", "0750");
  s.dir(tlsDir.pgbackrest, "postgres", "postgres", "0750");
  const own = { owner: "postgres", group: "postgres" };
  s.file({ path: `${tlsDir.pgbackrest}/ca.crt`, content: ctx.pki.caBundle, ...own });
  s.file({ path: `${tlsDir.pgbackrest}/replication.crt`, content: ctx.pki.replication.cert, ...own });
  s.file({ path: `${tlsDir.pgbackrest}/replication.key`, content: ctx.pki.replication.key, ...own, mode: "0600", secret: true });
  s.file({
    path: PGBACKREST_CONFIG,
    owner: "root",
    group: "postgres",
    mode: "0640",
    content: render(ROLE, "pgbackrest-standby.conf", {
      name: host.name, cluster: ctx.spec.clusterName, stanza: repo.stanza, repoHost: repo.name, port: repo.port, tls: tlsDir.pgbackrest,
      dataDir: PG_DATA, pgPort: ports.postgres, superuser: users.superuser,
    }),
  });
  s.stopped(SERVER_UNIT);
  return s;
}

/** static: the repository on the backup host, over TLS; this node serves the backup host too. */
function repositoryHostStep(ctx: RoleContext, host: Host): StepBuilder {
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
}

/**
 * gcp: the repository is the cluster's bucket and there is no backup host: every node pushes
 * WAL (when primary), reads it back (as a replica) and backs up (when primary, roles/stanza)
 * itself, so every node holds the cipher passphrase, in this file only (0640 root:postgres,
 * secret: no diff in check mode). Nobody dials this node's pgBackRest: its TLS server stays off.
 */
function gcsRepositoryStep(ctx: RoleContext, host: Host): StepBuilder {
  const spec = ctx.spec;
  const s = new StepBuilder();
  s.packages("pgbackrest");
  s.dir("/etc/pgbackrest", "root", "postgres", "0750");
  s.file({
    path: PGBACKREST_CONFIG,
    owner: "root",
    group: "postgres",
    mode: "0640",
    secret: true,
    content: render(ROLE, "pgbackrest-gcs.conf", {
      name: host.name, stanza: stanza(spec), bucket: clusterBucket(spec), repoPath: GCS_REPOSITORY_PATH,
      cipherPass: ctx.secrets.backupCipherPassphrase, retentionFull: spec.backup.retention.full, retentionDiff: spec.backup.retention.diff,
      dataDir: PG_DATA, pgPort: ports.postgres, superuser: users.superuser,
    }),
  });
  s.stopped(SERVER_UNIT);
  return s;
}
