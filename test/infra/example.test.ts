// examples/two-clusters, a user's own program, previewed under mocks as its user would run it:
// it imports "pgcluster", which Node resolves through package.json exports to the built library
// (dist/, built by the package test's `npm pack`, shared). So this runs what a user installs.
import { strict as assert } from "assert";
import { execFile } from "child_process";
import { createRequire } from "module";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { withMocks, settle, reveal, isSecretValue, runProgram, ancestors, byUrn, fakeHostKey, mockInstanceName, type Registered } from "../support/pulumiMocks";
import { packLibrary } from "../support/library";
import { PROJECT_ROOT } from "../../model/stackFile";

const EXAMPLE = path.join(PROJECT_ROOT, "examples", "two-clusters");
const CONFIG = {
  "two-clusters:gcpProject": "orders-project",
  "two-clusters:sshSourceRanges": JSON.stringify(["203.0.113.0/28"]),
  "two-clusters:sshPublicKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ7f3Wv2ZpWm9sQh0Y1m5o0b2Xc4G8m3q1oQdKk1x0aB ops@example",
  "two-clusters:sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\ntest\n-----END OPENSSH PRIVATE KEY-----\n",
};

describe("examples/two-clusters: a user's program with two PgClusters (mocks, the built library)", function () {
  this.timeout(300_000);
  let registered: Registered[];
  let out: Record<string, any>;
  const clusters = () => registered.filter((r) => r.type === "pgcluster:index:PgCluster");
  const clusterOf = (r: Registered) => ancestors(registered, r).filter((a) => a.type === "pgcluster:index:PgCluster");

  before(async () => {
    await packLibrary();
    registered = await withMocks("demo", CONFIG, ["two-clusters:sshPrivateKey"], "two-clusters");
    out = runProgram(path.join(EXAMPLE, "index.ts"));
    await settle(pulumi.all([out.devDatabaseUrl, out.stagingDatabaseUrl, out.nodes, out.caCerts]));
    await new Promise((r) => setTimeout(r, 500));
  });

  it("imports pgcluster as a user would: its own name, through package.json exports, to the built library", () => {
    const resolved = createRequire(path.join(EXAMPLE, "index.ts")).resolve("pgcluster");
    assert.equal(resolved, path.join(PROJECT_ROOT, "dist", "infra", "lib.js"));
    // What the example's module itself required: the built entry, not the TypeScript sources.
    const required = require.cache[path.join(EXAMPLE, "index.ts")]!.children.map((m) => m.filename);
    assert.ok(required.includes(path.join(PROJECT_ROOT, "dist", "infra", "lib.js")), required.join(", "));
    assert.ok(!required.some((f) => f.endsWith(".ts")), required.join(", "));
  });

  it("typechecks against the package's declarations (its own tsconfig, node16 resolution)", async () => {
    const tsc = path.join(PROJECT_ROOT, "node_modules", ".bin", "tsc");
    const result = await new Promise<{ code: number; text: string }>((resolve) =>
      execFile(tsc, ["-p", path.join(EXAMPLE, "tsconfig.json"), "--noEmit"], { cwd: EXAMPLE }, (err, stdout, stderr) => resolve({ code: err ? 1 : 0, text: stdout + stderr })));
    assert.equal(result.code, 0, result.text);
  });

  it("two PgCluster components at the stack root, and every resource under exactly one of them", () => {
    assert.deepEqual(clusters().map((c) => [c.name, c.parent]).sort(), [["orders-dev", ""], ["orders-staging", ""]]);
    const rest = registered.filter((r) => r.type !== "pgcluster:index:PgCluster");
    assert.ok(rest.length > 100);
    for (const r of rest) {
      const owners = clusterOf(r);
      assert.equal(owners.length, 1, `${r.type} ${r.name}`);
      assert.ok(r.name.startsWith(`${owners[0].name}-`), `${r.type} ${r.name}: not named after ${owners[0].name}`);
    }
  });

  it("no collisions: every resource name, URN and GCP service account id once; no aliases (a new program adopts nothing)", () => {
    const names = registered.map((r) => `${r.type} ${r.name}`);
    assert.equal(new Set(names).size, names.length, "a resource name twice");
    const urns = registered.map((r) => r.urn);
    assert.equal(new Set(urns).size, urns.length);
    const accounts = registered.filter((r) => r.type === "gcp:serviceaccount/account:Account").map((r) => r.inputs.accountId).sort();
    assert.deepEqual(accounts, ["orders-dev-nodes", "orders-staging-nodes"]);
    assert.deepEqual(registered.filter((r) => r.aliases.some((a) => a.name || a.urn)).map((r) => r.name), []);
    // Each cluster's subnets and firewall rules are in its own VPC.
    for (const c of clusters()) {
      const vpc = registered.find((r) => r.type === "gcp:compute/network:Network" && clusterOf(r)[0] === c)!;
      for (const r of registered.filter((x) => ["gcp:compute/firewall:Firewall", "gcp:compute/subnetwork:Subnetwork", "gcp:compute/router:Router"].includes(x.type) && clusterOf(x)[0] === c))
        assert.equal(r.inputs.network, `${vpc.name}-id`, `${r.name}: not in ${c.name}'s VPC`);
    }
  });

  it("each cluster's Commands reach its own instances, through its own bastion, verifying their keys", () => {
    for (const c of clusters()) {
      const mine = (r: Registered) => clusterOf(r)[0] === c;
      const vms = registered.filter((r) => r.type === "gcp:compute/instance:Instance" && mine(r));
      const bastion = vms.find((v) => v.name === `${c.name}-bastion`)!;
      const byAddress = new Map(vms.filter((v) => v !== bastion).map((v) => [v.state.networkInterfaces[0].networkIp as string, v]));
      const cmds = registered.filter((r) => r.type === "command:remote:Command" && mine(r));
      assert.ok(cmds.length >= 10, c.name);
      const reached = new Set<string>();
      for (const cmd of cmds) {
        const conn = reveal(cmd.inputs.connection);
        const vm = byAddress.get(conn.host);
        assert.ok(vm, `${cmd.name}: ${conn.host} is not an instance of ${c.name}`);
        // Its Host component names the instance it runs on.
        assert.equal(byUrn(registered, cmd.parent)!.name, vm!.name, cmd.name);
        assert.equal(conn.hostKey, fakeHostKey(`guest ${mockInstanceName(vm!.name)}`), `${cmd.name}: host key`);
        assert.equal(conn.proxy.hostKey, fakeHostKey(`guest ${mockInstanceName(bastion.name)}`), `${cmd.name}: bastion key`);
        assert.match(reveal(cmd.inputs.stdin), /^#!\/bin\/bash\nset -euo pipefail\n/);
        reached.add(vm!.name);
      }
      assert.equal(reached.size, vms.length - 1, `${c.name}: every node configured`);
    }
  });

  it("exports the clusters' URLs as secrets, distinct per cluster", async () => {
    for (const k of ["devDatabaseUrl", "stagingDatabaseUrl", "stagingReplicaUrl"]) assert.equal(await out[k].isSecret, true, k);
    const [dev, staging]: string[] = [await settle(out.devDatabaseUrl), await settle(out.stagingDatabaseUrl)];
    assert.match(dev, /^postgresql:\/\/app:pw-orders-dev-appPassword@10\.9\.0\.\d+:5000\/app\?/);
    assert.match(staging, /^postgresql:\/\/app:pw-orders-staging-appPassword@10\.9\.0\.\d+:5000\/app\?/);
    const outputs = clusters().map((c) => c.outputs!);
    for (const o of outputs) assert.ok(isSecretValue(o.primaryUrl));
  });
});
