// Scale in on the Pulumi path (mocks): a database node that is not an etcd member gets a
// decommission Command whose delete runs the decommission step, ordered so that Pulumi deletes
// it before what the host's connection depends on (its key record; on GCP, the instance).
import { strict as assert } from "assert";
import * as pulumi from "@pulumi/pulumi";
import { withMocks, stackConfig, settle, isSecretValue, reveal, runProgram, STACK_PROGRAM, byUrn, type Registered } from "../support/pulumiMocks";
import { planGraph } from "../../roles/compile";
import { loadSpec } from "../../local/cluster";
import { decommissionHosts } from "../../infra/decommission";

const KEY = { "pgcluster:sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\ntest\n-----END OPENSSH PRIVATE KEY-----\n" };
const PG4 = { name: "pg4", address: "10.213.0.14", roles: ["postgres"] };

/** The stack program of the local stack with `hosts` as its inventory, run with mocks: what it registered. */
async function programWith(hosts: unknown[]): Promise<Registered[]> {
  const registered = await withMocks("local", stackConfig("local", { ...KEY, "pgcluster:hosts": JSON.stringify(hosts) }), ["pgcluster:sshPrivateKey"]);
  const out = runProgram(STACK_PROGRAM) as typeof import("../../infra/index");
  await settle(pulumi.all([out.DATABASE_URL_PRIMARY, out.nodes, out.caCert]));
  await new Promise((r) => setTimeout(r, 200));
  return registered;
}

describe("Pulumi program: scale in (mocks)", function () {
  this.timeout(60000);
  let registered: Registered[];
  const hosts = () => [...loadSpec("local").hosts.map(({ name, address, roles }) => ({ name, address, roles })), PG4];

  before(async () => { registered = await programWith(hosts()); });

  const cmds = () => registered.filter((r) => r.type === "command:remote:Command");

  it("only database nodes outside etcd get one (the stacks' own nodes are all etcd members: none there)", () => {
    assert.deepEqual(cmds().filter((c) => c.name.endsWith("-decommission")).map((c) => c.name), ["pglocal-pg4-decommission"]);
    for (const stack of ["local"]) assert.deepEqual(decommissionHosts(loadSpec(stack)), []);
  });

  it("its create only consumes stdin; its delete runs the decommission step on stdin (a secret)", () => {
    const d = cmds().find((c) => c.name === "pglocal-pg4-decommission")!;
    assert.equal(d.inputs.create, "cat >/dev/null");
    assert.equal(d.inputs.delete, "bash -s");
    assert.ok(isSecretValue(d.inputs.stdin), "stdin is secret (the REST API password is in it)");
    const script = reveal(d.inputs.stdin) as string;
    assert.match(script, /^#!\/bin\/bash\nset -euo pipefail\n/);
    assert.ok(script.includes("PGC_STEP='pg4/decommission'"));
    assert.ok(script.includes("PGC_MEMBER_KEY='/pgcluster/pglocal/members/pg4'"));
    assert.ok(script.includes("\npgc_decommission\n"), "the step calls pgc_decommission");
    // The remaining etcd members; pg4's own address is not among them.
    assert.match(script, /PGC_ETCD_ENDPOINTS='https:\/\/10\.213\.0\.11:2379,https:\/\/10\.213\.0\.12:2379,https:\/\/10\.213\.0\.13:2379'/);
    const triggers = reveal(d.inputs.triggers) as unknown[];
    assert.ok(Array.isArray(triggers) && triggers.length === 1 && /^[0-9a-f]{64}$/.test(String(reveal(triggers[0]))), `a changed script is stored again: ${JSON.stringify(d.inputs.triggers)}`);
  });

  it("depends on every step of its host and on the host's key record: deleted before them", () => {
    const d = cmds().find((c) => c.name === "pglocal-pg4-decommission")!;
    const deps = d.dependencies.map((u) => byUrn(registered, u)?.name).filter(Boolean).sort();
    const steps = planGraph(loadSpec("local", { hosts: hosts() })).filter((s) => s.host === "pg4").map((s) => `pglocal-pg4-${s.role}`);
    for (const s of steps) assert.ok(deps.includes(s), `${s} in ${deps.join(", ")}`);
    assert.ok(deps.includes("pglocal-pg4-hostkey"), `the host key record in ${deps.join(", ")}`);
    assert.equal(byUrn(registered, d.parent)?.name, "pglocal-pg4", "a child of pg4's Host component");
  });
});

describe("Pulumi program: scale in on two applies, hosts marked leaving (mocks)", function () {
  this.timeout(60000);
  let registered: Registered[];
  const LEAVING = [
    { name: "w1", address: "10.213.0.21", roles: ["etcd"], leaving: true },
    { name: "pg5", address: "10.213.0.15", roles: ["etcd", "postgres"], leaving: true },
  ];
  const hosts = () => [...loadSpec("local").hosts.map(({ name, address, roles }) => ({ name, address, roles })), ...LEAVING];

  before(async () => { registered = await programWith(hosts()); });

  const cmds = () => registered.filter((r) => r.type === "command:remote:Command");

  it("a leaving host's one Command is its decommission, run by its create (Patroni, then etcd, then the marker); no delete script", () => {
    for (const h of LEAVING) assert.deepEqual(cmds().filter((c) => c.name.startsWith(`pglocal-${h.name}-`)).map((c) => c.name), [`pglocal-${h.name}-decommission`]);
    const d = cmds().find((c) => c.name === "pglocal-pg5-decommission")!;
    assert.equal(d.inputs.create, "bash -s");
    assert.equal(d.inputs.delete, undefined);
    const script = reveal(d.inputs.stdin) as string;
    const at = ["\npgc_decommission\n", "\npgc_etcd_leave\n", "\npgc_decom_mark\n"].map((c) => script.lastIndexOf(c));
    assert.ok(at.every((i) => i > 0) && at[0] < at[1] && at[1] < at[2], "Patroni, etcd, marker");
  });

  it("every other step waits for the decommissions; the remaining hosts' firewalls still admit the leaving hosts", () => {
    const decom = LEAVING.map((h) => cmds().find((c) => c.name === `pglocal-${h.name}-decommission`)!.urn as string);
    for (const c of cmds().filter((x) => /^pglocal-(pg[123]|lb[12]|backup1)-/.test(x.name))) {
      for (const u of decom) assert.ok(c.dependencies.includes(u), `${c.name} waits for ${byUrn(registered, u)?.name}`);
    }
    const fw = reveal(cmds().find((c) => c.name === "pglocal-pg1-firewall")!.inputs.stdin) as string;
    for (const h of LEAVING) assert.ok(fw.includes(h.address), `pg1's firewall admits ${h.name}`);
    const haproxy = reveal(cmds().find((c) => c.name === "pglocal-lb1-haproxy")!.inputs.stdin) as string;
    assert.ok(!haproxy.includes("10.213.0.15"), "HAProxy no longer routes to pg5");
  });
});
