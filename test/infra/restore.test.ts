// Point-in-time restore through the Pulumi CLI (mocks): pgcluster:restore = { to, id, confirm }
// registers the restore's Commands (prepare, the stops, the DCS reset, data, lead, clones) before
// the plan's, keyed on the restore alone; the plan's Commands wait for them and carry the restore's
// key in their triggers (they run again after it); the restore's last step waits for the plan.
import { strict as assert } from "assert";
import * as pulumi from "@pulumi/pulumi";
import { withMocks, stackConfig, reveal, isSecretValue, runProgram, STACK_PROGRAM, type Registered } from "../support/pulumiMocks";
import { ConfigError } from "../../model/config";
import { planGraph } from "../../roles/compile";
import { loadSpec } from "../../infra/pulumiConfig";

const KEY = { "pgcluster:sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\ntest\n-----END OPENSSH PRIVATE KEY-----\n" };
const RESTORE = { to: "2026-11-28T03:17:28.25Z", id: "r-2026-11-28", confirm: "pglocal" };

async function deploy(restore: Record<string, unknown> | undefined): Promise<Registered[]> {
  const extra: Record<string, string> = { ...KEY, ...(restore ? { "pgcluster:restore": JSON.stringify(restore) } : {}) };
  const registered = await withMocks("local", stackConfig("local", extra), ["pgcluster:sshPrivateKey"]);
  const out = runProgram(STACK_PROGRAM) as typeof import("../../infra/index");
  await (pulumi.all([out.DATABASE_URL_PRIMARY, out.nodes, out.steps]) as any).promise();
  await new Promise((r) => setTimeout(r, 300));
  return registered;
}

const commands = (rs: Registered[]) => rs.filter((r) => r.type === "command:remote:Command");
const named = (rs: Registered[], suffix: string) => {
  const c = commands(rs).find((x) => x.name === `pglocal-${suffix}`);
  assert.ok(c, `no Command pglocal-${suffix}`);
  return c;
};
/** The Commands `c` depends on, by name (without the cluster prefix). */
const deps = (rs: Registered[], c: Registered) => commands(rs).filter((x) => c.dependencies.includes(x.urn!)).map((x) => x.name.replace(/^pglocal-/, "")).sort();

describe("point-in-time restore through the Pulumi CLI (mocks): pgcluster:restore", function () {
  this.timeout(120000);
  let rs: Registered[];
  before(async () => { rs = await deploy(RESTORE); });

  it("registers the restore's Commands in order: prepare, every node but the leader, every node, DCS reset, data, lead, the clones", () => {
    assert.deepEqual(deps(rs, named(rs, "pg1-restore-prepare")), []);
    for (const n of ["pg1", "pg2", "pg3"]) {
      assert.deepEqual(deps(rs, named(rs, `${n}-restore-stop-replica`)), ["pg1-restore-prepare"], n);
      assert.deepEqual(deps(rs, named(rs, `${n}-restore-stop`)), ["pg1-restore-stop-replica", "pg2-restore-stop-replica", "pg3-restore-stop-replica"], n);
    }
    assert.deepEqual(deps(rs, named(rs, "pg1-restore-dcs-reset")), ["pg1-restore-stop", "pg2-restore-stop", "pg3-restore-stop"]);
    assert.deepEqual(deps(rs, named(rs, "pg1-restore-data")), ["pg1-restore-dcs-reset"]);
    assert.deepEqual(deps(rs, named(rs, "pg1-restore-lead")), ["pg1-restore-data"]);
    for (const n of ["pg2", "pg3"]) assert.deepEqual(deps(rs, named(rs, `${n}-restore-follow`)), ["pg1-restore-lead"], n);
  });

  it("keys each restore Command on the restore alone: triggers the id and target, stdin and connection changes ignored, the script a secret", () => {
    const restoreCmds = commands(rs).filter((c) => c.name.includes("-restore-"));
    assert.equal(restoreCmds.length, 1 + 3 + 3 + 1 + 1 + 1 + 2 + 1);
    for (const c of restoreCmds) {
      assert.deepEqual(reveal(c.inputs.triggers), [`restore ${RESTORE.id} to ${RESTORE.to}`], c.name);
      assert.deepEqual([...(c.ignoreChanges ?? [])].sort(), ["connection", "stdin"], c.name);
      assert.ok(isSecretValue(c.inputs.stdin), c.name);
    }
    const prepare = reveal(named(rs, "pg1-restore-prepare").inputs.stdin) as string;
    assert.ok(prepare.includes(`PGC_RS_ID='${RESTORE.id}'`) && prepare.includes(`PGC_RS_TIME='${RESTORE.to}'`), "the prepare step carries the id and target");
    assert.match(prepare, /\npgc_restore_prepare\n/);
  });

  it("the plan's Commands wait for the restore's clones and run again after it (its key in their triggers); its last step waits for the whole plan", () => {
    const spec = loadSpec();
    const planNames = planGraph(spec).map((s) => s.id.replace("/", "-"));
    for (const n of planNames) {
      const c = named(rs, n);
      const d = deps(rs, c);
      assert.ok(d.includes("pg2-restore-follow") && d.includes("pg3-restore-follow"), `${n} waits for ${d.join(", ")}`);
      assert.equal(reveal(c.inputs.triggers)[1], `restore ${RESTORE.id} to ${RESTORE.to}`, n);
    }
    assert.deepEqual(deps(rs, named(rs, "pg1-restore-done")), planNames.sort());
  });

  it("without pgcluster:restore: no restore Command, and the plan's triggers are their digests alone", async () => {
    const plain = await deploy(undefined);
    assert.deepEqual(commands(plain).filter((c) => c.name.includes("-restore-")).map((c) => c.name), []);
    for (const c of commands(plain)) assert.equal(reveal(c.inputs.triggers).length, 1, c.name);
  });

  it("refuses, before anything is registered, a restore not confirmed with the cluster's name, a malformed target or id", async () => {
    for (const [bad, why] of [
      [{ ...RESTORE, confirm: "yes" }, /restore\.confirm: must be this cluster's name \("pglocal"\)/],
      [{ ...RESTORE, to: "yesterday" }, /restore\.to: must be "latest" or an ISO 8601 time/],
      [{ ...RESTORE, to: "2026-11-28 03:17:28" }, /restore\.to: must be "latest" or an ISO 8601 time/],
      [{ ...RESTORE, id: "r1; rm -rf /" }, /restore\.id: must be a short token/],
      [{ ...RESTORE, extra: true }, /restore\.extra/],
    ] as const) {
      const e = await deploy(bad).then(() => undefined, (x) => x);
      assert.ok(e instanceof ConfigError || /Invalid stack config/.test(String(e)), `${JSON.stringify(bad)}: ${e}`);
      assert.match(String((e as Error).message), why);
    }
  });
});
