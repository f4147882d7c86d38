// GCP: the Cloud Storage bucket that holds the cluster's pgBackRest repository (backup.enabled).
// Private (uniform bucket-level access, public access prevention enforced), versioned, with a
// soft delete policy, so that a compromised node, whose account may delete objects, cannot erase
// the history: a deleted or overwritten object stays a noncurrent version for
// backup.bucket.noncurrentVersionDays, and anything deleted (by it, or by the lifecycle rule)
// stays soft-deleted for backup.bucket.softDeleteDays, which only an account allowed to change
// the bucket (not the nodes') can shorten. No retention policy (bucket lock): pgBackRest
// rewrites its info files at every backup and expires old backups, which a retention policy
// refuses. The repository's content is encrypted by pgBackRest itself (repo1-cipher-pass).
import * as pulumi from "@pulumi/pulumi";
import * as gcp from "@pulumi/gcp";
import type { ClusterSpec } from "../model/config";
import { clusterBucket } from "../roles/pgbackrest";
import { DUMP } from "../model/identities";
import type { Children } from "./children";

/**
 * The nodes' rights on the bucket (and nowhere else): read, list, write and delete objects,
 * which pgBackRest needs (archive-push/get, backup, expire). Not objectAdmin: no object IAM or
 * retention changes; and no bucket rights at all, so no change to versioning, soft delete or
 * the lifecycle.
 */
export const BACKUP_BUCKET_ROLE = "roles/storage.objectUser";

const DAY = 86400;

export interface BackupBucket {
  bucket: gcp.storage.Bucket;
  /** What a node's first use of the repository waits for: the bucket and the nodes' access to it. */
  ready: pulumi.Resource[];
}

export function backupBucket(spec: ClusterSpec, c: Children, provider: gcp.Provider, nodesAccount: gcp.serviceaccount.Account): BackupBucket {
  const g = spec.gcp!;
  const b = spec.backup.bucket;
  // Both new with the backup feature: never adopted from a stack-root name.
  const opts = { ...c.optsNew(), provider };
  const bucket = new gcp.storage.Bucket(c.name("backup"), {
    name: clusterBucket(spec),
    project: g.project,
    location: g.region.toUpperCase(),
    storageClass: "STANDARD",
    uniformBucketLevelAccess: true,
    publicAccessPrevention: "enforced",
    versioning: { enabled: true },
    softDeletePolicy: { retentionDurationSeconds: b.softDeleteDays * DAY },
    lifecycleRules: [{
      action: { type: "Delete" },
      condition: { daysSinceNoncurrentTime: b.noncurrentVersionDays, withState: "ARCHIVED" },
    }, {
      // The logical dumps (roles/dump) are kept backup.retention.dumpDays, then become
      // noncurrent versions like any deleted object (the rule above, and soft delete, follow).
      action: { type: "Delete" },
      condition: { age: spec.backup.retention.dumpDays, matchesPrefixes: [DUMP.bucketPrefix], withState: "LIVE" },
    }],
    // `pulumi destroy` stops at a bucket that holds backups instead of deleting them.
    forceDestroy: false,
    labels: { "pgcluster-cluster": spec.clusterName, "pgcluster-purpose": "backup" },
  }, opts);
  const access = new gcp.storage.BucketIAMMember(c.name("backup-nodes"), {
    bucket: bucket.name,
    role: BACKUP_BUCKET_ROLE,
    member: pulumi.interpolate`serviceAccount:${nodesAccount.email}`,
  }, opts);
  return { bucket, ready: [bucket, access] };
}
