// Backups on GCP under Pulumi mocks (issue #11 item 1): the stack program with backup.enabled
// makes the repository's bucket, grants the nodes' service account objects on that bucket only,
// keeps the cipher passphrase a secret everywhere, and runs no pgBackRest step before the bucket
// and the grant exist.
import { strict as assert } from "assert";
import * as pulumi from "@pulumi/pulumi";
import { withMocks, stackConfig, settle, isSecretValue, runProgram, STACK_PROGRAM, type Registered } from "../support/pulumiMocks";
import { BACKUP_BUCKET_ROLE } from "../../infra/backupBucket";

const KEY = { "pgcluster:sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\ntest\n-----END OPENSSH PRIVATE KEY-----\n" };
const PASSPHRASE = "given-passphrase-0123456789-ABCxyz";
const BUCKET = "gcp:storage/bucket:Bucket";
const BINDING = "gcp:storage/bucketIAMMember:BucketIAMMember";

async function run(extra: Record<string, string>, secretKeys: string[]) {
  const registered = await withMocks("dev", stackConfig("dev", { ...KEY, ...extra }), ["pgcluster:sshPrivateKey", ...secretKeys]);
  const out = runProgram(STACK_PROGRAM) as typeof import("../../infra/index");
  await settle(pulumi.all([out.DATABASE_URL_PRIMARY, out.nodes, out.caCert]));
  await new Promise((r) => setTimeout(r, 200)); // last registrations' callbacks
  return registered;
}

const ofType = (rs: Registered[], t: string) => rs.filter((r) => r.type === t);

/** Every plain string in a value, outside secret envelopes (what state would show in clear). */
function plainStrings(v: unknown, out: string[] = []): string[] {
  if (isSecretValue(v)) return out;
  if (typeof v === "string") out.push(v);
  else if (Array.isArray(v)) for (const x of v) plainStrings(x, out);
  else if (v && typeof v === "object") for (const x of Object.values(v)) plainStrings(x, out);
  return out;
}

describe("backups on GCP: the bucket, the nodes' access, the passphrase (mocks, stack dev)", function () {
  this.timeout(90000);
  let rs: Registered[];
  before(async () => {
    rs = await run({ "pgcluster:backup": JSON.stringify({ enabled: true, bucket: { softDeleteDays: 21, noncurrentVersionDays: 45 }, retention: { dumpDays: 9 } }), "pgcluster:backupCipherPassphrase": PASSPHRASE }, ["pgcluster:backupCipherPassphrase"]);
  });

  it("one bucket, private, versioned, soft delete and a lifecycle for old versions, in the stack's region, not deleted with its backups", () => {
    const buckets = ofType(rs, BUCKET);
    assert.equal(buckets.length, 1);
    const b = buckets[0].inputs;
    assert.equal(b.name, "pgcluster-dev-pgdev-backup");
    assert.equal(b.project, "pgcluster-dev");
    assert.equal(b.location, "EUROPE-WEST1");
    assert.equal(b.uniformBucketLevelAccess, true);
    assert.equal(b.publicAccessPrevention, "enforced");
    assert.deepEqual(b.versioning, { enabled: true });
    assert.deepEqual(b.softDeletePolicy, { retentionDurationSeconds: 21 * 86400 });
    assert.deepEqual(b.lifecycleRules, [
      { action: { type: "Delete" }, condition: { daysSinceNoncurrentTime: 45, withState: "ARCHIVED" } },
      // The logical dumps: backup.retention.dumpDays, then noncurrent like any deleted object.
      { action: { type: "Delete" }, condition: { age: 9, matchesPrefixes: ["dumps/"], withState: "LIVE" } },
    ]);
    assert.equal(b.forceDestroy, false);
    // No retention policy (bucket lock): pgBackRest rewrites its info files and expires backups.
    assert.equal(b.retentionPolicy, undefined);
    assert.equal(b.website, undefined);
  });

  it("the nodes' service account gets objectUser on that bucket only: no project-wide storage right, no other binding", () => {
    const bindings = ofType(rs, BINDING);
    assert.equal(bindings.length, 1);
    const bucket = ofType(rs, BUCKET)[0];
    assert.equal(bindings[0].inputs.bucket, bucket.state.name);
    assert.equal(bindings[0].inputs.role, BACKUP_BUCKET_ROLE);
    assert.equal(BACKUP_BUCKET_ROLE, "roles/storage.objectUser");
    assert.equal(bindings[0].inputs.member, "serviceAccount:pgdev-nodes@example.iam.gserviceaccount.com");
    assert.ok(bindings[0].dependencies.includes(bucket.urn!), "bound after the bucket exists");
    const projectRoles = ofType(rs, "gcp:projects/iAMMember:IAMMember").map((m) => m.inputs.role).sort();
    assert.deepEqual(projectRoles, ["roles/logging.logWriter", "roles/monitoring.metricWriter"]);
    for (const t of ["gcp:projects/iAMBinding:IAMBinding", "gcp:projects/iAMPolicy:IAMPolicy", "gcp:storage/bucketIAMBinding:BucketIAMBinding", "gcp:storage/bucketIAMPolicy:BucketIAMPolicy"])
      assert.deepEqual(ofType(rs, t), [], t);
  });

  it("every node's pgBackRest and stanza Command waits for the bucket and the binding (archiving starts with them)", () => {
    const need = [ofType(rs, BUCKET)[0].urn!, ofType(rs, BINDING)[0].urn!];
    const cmds = ofType(rs, "command:remote:Command");
    const users = cmds.filter((c) => /-db-\d-(pgbackrest|stanza)$/.test(c.name));
    assert.deepEqual(users.map((c) => c.name).sort(), ["pgdev-db-1-pgbackrest", "pgdev-db-1-stanza", "pgdev-db-2-pgbackrest", "pgdev-db-2-stanza", "pgdev-db-3-pgbackrest", "pgdev-db-3-stanza"]);
    for (const c of users) for (const u of need) assert.ok(c.dependencies.includes(u), `${c.name} does not wait for ${u}`);
    // And the Patroni step that starts archiving comes after the node's pgbackrest step.
    const byName = new Map(cmds.map((c) => [c.name, c]));
    for (const n of [1, 2, 3]) assert.ok(byName.get(`pgdev-db-${n}-patroni`)!.dependencies.includes(byName.get(`pgdev-db-${n}-pgbackrest`)!.urn!), `db-${n}`);
  });

  it("the passphrase is never in clear: not in any resource's inputs or state, not in the component's outputs", () => {
    for (const r of rs) {
      for (const [what, v] of [["inputs", r.inputs], ["state", r.state], ["outputs", r.outputs]] as const)
        assert.ok(!plainStrings(v).some((s) => s.includes(PASSPHRASE)), `${r.type} ${r.name}: ${what} holds the passphrase in clear`);
    }
    // It does reach the nodes: inside the (secret) scripts of the pgbackrest steps.
    const pgbr = ofType(rs, "command:remote:Command").filter((c) => c.name.endsWith("-pgbackrest"));
    assert.equal(pgbr.length, 3);
    for (const c of pgbr) {
      assert.ok(isSecretValue(c.inputs.stdin), c.name);
      assert.ok(c.inputs.stdin.value.includes(`repo1-cipher-pass=${PASSPHRASE}`), c.name);
    }
  });
});

describe("backups on GCP: a generated passphrase, and backup off (mocks, stack dev)", function () {
  this.timeout(90000);

  it("generated: a RandomPassword child, secret, on the nodes' files", async () => {
    const rs = await run({ "pgcluster:backup": JSON.stringify({ enabled: true }) }, []);
    const pw = ofType(rs, "random:index/randomPassword:RandomPassword").filter((r) => r.name.endsWith("backupCipherPassphrase"));
    assert.equal(pw.length, 1);
    assert.ok(isSecretValue(pw[0].state.result));
    const value = pw[0].state.result.value as string;
    for (const r of rs) assert.ok(!plainStrings(r.inputs).some((s) => s.includes(value)), `${r.type} ${r.name}`);
    const stdin = ofType(rs, "command:remote:Command").find((c) => c.name === "pgdev-db-1-pgbackrest")!.inputs.stdin;
    assert.ok(isSecretValue(stdin) && stdin.value.includes(`repo1-cipher-pass=${value}`));
    assert.deepEqual(ofType(rs, BUCKET)[0].inputs.softDeletePolicy, { retentionDurationSeconds: 14 * 86400 });
  });

  it("backup off: no bucket, no binding, no pgBackRest step (existing GCP stacks unchanged)", async () => {
    const rs = await run({}, []);
    assert.deepEqual(ofType(rs, BUCKET), []);
    assert.deepEqual(ofType(rs, BINDING), []);
    assert.deepEqual(ofType(rs, "command:remote:Command").filter((c) => /pgbackrest|stanza/.test(c.name)), []);
  });
});
