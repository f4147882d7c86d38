// pgcluster installed from its tarball into a user's project: a program there previews under
// mocks, and the dynamic providers it registers (HostDrift, HostKeyScan) load in a process of
// their own the way Pulumi's dynamic provider host loads them (require-from-string, from the
// project's directory). Pulumi serializes a module an installed package's function reaches as
// require("pgcluster/<path>"), which only resolves if package.json exports it.
import { strict as assert } from "assert";
import { execFile } from "child_process";
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { withMocks, runProgram, settle, ancestors, type Registered } from "../support/pulumiMocks";
import { installLibrary } from "../support/library";

const PROGRAM = `
import { PgCluster, parseClusterSpec } from "pgcluster";
const spec = parseClusterSpec({
  clusterName: "orders",
  provider: "static",
  hosts: [
    { name: "lb1", address: "10.213.0.10", roles: ["balancer"] },
    { name: "pg1", address: "10.213.0.11", roles: ["etcd", "postgres"] },
    { name: "pg2", address: "10.213.0.12", roles: ["etcd", "postgres"] },
    { name: "pg3", address: "10.213.0.13", roles: ["etcd", "postgres"] },
  ],
  network: { cidr: "10.213.0.0/24", clientCidrs: ["10.213.0.1/32"], adminCidrs: ["10.213.0.1/32"] },
  ssh: { hostKeys: "trust-on-first-use" },
});
const cluster = new PgCluster("orders", { spec, sshPrivateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\\ntest\\n-----END OPENSSH PRIVATE KEY-----\\n" });
export const url = cluster.primaryUrl;
`;

/** Loads a serialized provider as Pulumi's dynamic provider host does, in a process started in `cwd`. */
function loadProvider(cwd: string, serialized: string): Promise<{ ok: boolean; text: string }> {
  const file = path.join(cwd, `provider-${Math.random().toString(36).slice(2)}.js`);
  fs.writeFileSync(file, serialized);
  const script = `
    const requireFromString = require(require.resolve("require-from-string", { paths: [require.resolve("@pulumi/pulumi")] }));
    const p = requireFromString(require("fs").readFileSync(${JSON.stringify(file)}, "utf8")).handler();
    if (typeof p.create !== "function" || typeof p.diff !== "function") throw new Error("no provider");
    console.log("loaded:", Object.keys(p).sort().join(","));`;
  return new Promise((resolve) => execFile(process.execPath, ["-e", script], { cwd }, (err, stdout, stderr) => resolve({ ok: !err, text: stdout + stderr })));
}

describe("pgcluster installed from its tarball into a user's project (mocks)", function () {
  this.timeout(300_000);
  let dir: string;
  let registered: Registered[];

  before(async () => {
    dir = await installLibrary();
    fs.writeFileSync(path.join(dir, "index.ts"), PROGRAM);
    registered = await withMocks("demo", {}, [], "a-user-program");
    const out = runProgram(path.join(dir, "index.ts"));
    await settle(pulumi.all([out.url]));
    await new Promise((r) => setTimeout(r, 500));
  });

  it("runs the installed package, not this checkout", () => {
    assert.ok(require.cache[fs.realpathSync(path.join(dir, "node_modules", "pgcluster", "dist", "infra", "pgCluster.js"))]);
    const cluster = registered.find((r) => r.type === "pgcluster:index:PgCluster")!;
    assert.equal(cluster.name, "orders");
    assert.ok(registered.filter((r) => r !== cluster).every((r) => ancestors(registered, r).includes(cluster)));
  });

  it("its dynamic providers (HostDrift, HostKeyScan) load in a process of their own, every require resolved from the user's project", async () => {
    const dynamic = registered.filter((r) => r.type === "pulumi-nodejs:dynamic:Resource");
    assert.deepEqual(dynamic.map((d) => d.name).sort(), ["lb1", "pg1", "pg2", "pg3"].flatMap((h) => [`orders-${h}-drift`, `orders-${h}-hostkey`]).sort());
    const distinct = [...new Set(dynamic.map((d) => String(d.inputs.__provider)))];
    assert.equal(distinct.length, 2, "one serialized provider per kind");
    for (const serialized of distinct) {
      const loaded = await loadProvider(dir, serialized);
      const requires = [...new Set(serialized.match(/require\("[^"]+"\)/g) ?? [])];
      assert.ok(loaded.ok, `the provider did not load (it requires ${requires.join(", ")}): ${loaded.text}`);
    }
  });
});
