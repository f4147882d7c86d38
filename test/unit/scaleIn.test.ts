// Scale in (issue 13 item 1): which hosts leave, what is refused before any change, and the
// decommission step the leaving database node runs.
import { strict as assert } from "assert";
import { spawnSync } from "child_process";
import { loadSpec } from "../../local/cluster";
import { appliedFromSpec, scaleInPlan, slotName, type AppliedHost } from "../../local/scaleIn";
import { decommissionStep, memberKey } from "../../roles/decommission";
import { stepScript } from "../../roles/script";
import { ConfigError } from "../../model/config";
import { hostsOf, testPki, TEST_SECRETS } from "../support/fixtures";

const pg4 = { name: "pg4", address: "10.213.0.14", roles: ["postgres"] } as const;
const withPg4 = () => loadSpec("local", { hosts: [...loadSpec("local").hosts.map(({ name, address, roles }) => ({ name, address, roles })), pg4] });

describe("scale in: the inventory that left", () => {
  it("a database node missing from the new inventory is decommissioned; nothing else", () => {
    const plan = scaleInPlan(appliedFromSpec(withPg4()), loadSpec("local"));
    assert.deepEqual(plan.decommission.map((h) => [h.name, h.address]), [["pg4", "10.213.0.14"]]);
    assert.deepEqual(plan.dropped, []);
  });

  it("the same inventory, or no recorded one (a state from before scale-in existed), leaves nothing to do", () => {
    const spec = loadSpec("local");
    for (const previous of [appliedFromSpec(spec), undefined]) assert.deepEqual(scaleInPlan(previous, spec), { decommission: [], dropped: [] });
  });

  it("a balancer that left needs no decommission (the remaining plan drops it)", () => {
    const previous: AppliedHost[] = [...appliedFromSpec(loadSpec("local")), { name: "lb3", address: "10.213.0.8", roles: ["balancer"], sshUser: "root", sshPort: 22 }];
    const plan = scaleInPlan(previous, loadSpec("local"));
    assert.deepEqual(plan.dropped.map((h) => h.name), ["lb3"]);
    assert.deepEqual(plan.decommission, []);
  });

  it("a database node that is an etcd member leaving is decommissioned (one step: Patroni, then etcd; etcd-only members: test/unit/etcdMembership.test.ts)", () => {
    const previous: AppliedHost[] = [...appliedFromSpec(loadSpec("local")), { name: "pg4", address: "10.213.0.14", roles: ["etcd", "postgres"], sshUser: "root", sshPort: 22 }];
    const plan = scaleInPlan(previous, loadSpec("local"));
    assert.deepEqual(plan.decommission.map((h) => h.name), ["pg4"]);
    assert.deepEqual(plan.dropped, []);
  });

  describe("an inventory below what the config requires is refused when the stack is read (before any host is contacted)", () => {
    // Three etcd members stay (witnesses), so only the database count is at issue.
    const hosts = (dbRoles: string[]) => [
      { name: "lb1", address: "10.213.0.10", roles: ["balancer"] },
      { name: "pg1", address: "10.213.0.11", roles: dbRoles },
      { name: "w1", address: "10.213.0.21", roles: ["etcd"] },
      { name: "w2", address: "10.213.0.22", roles: ["etcd"] },
    ];
    const refused = (over: Record<string, unknown>, key: string, why: RegExp) =>
      assert.throws(() => loadSpec("local", over), (e: Error) => e instanceof ConfigError && e.message.includes(key) && why.test(e.message), `expected a refusal naming ${key}`);

    it("synchronous mode needs a standby: one database node left", () => refused({ hosts: hosts(["etcd", "postgres"]) }, "patroni.synchronousMode", /needs at least 2 database nodes/));
    it("prod needs two database nodes", () => refused({ environment: "prod", hosts: hosts(["etcd", "postgres"]), patroni: { synchronousMode: false } }, "hosts", /prod needs at least 2/));
    it("the last database node", () => refused({ hosts: hosts(["etcd"]), patroni: { synchronousMode: false } }, "hosts", /gives no database node/));
  });
});

describe("scale in: the decommission step", () => {
  const remaining = loadSpec("local");
  const ctx = async () => {
    const hosts = hostsOf(withPg4());
    return { spec: remaining, hosts: hostsOf(remaining), pki: await testPki(withPg4(), hosts), secrets: TEST_SECRETS };
  };
  const host = { ...pg4, roles: [...pg4.roles], sshUser: "root", sshPort: 22, kind: "static" as const };

  it("hands over, stops and disables Patroni, removes the member key; its shell parses", async () => {
    const step = decommissionStep(await ctx(), host);
    assert.equal(step.id, "pg4/decommission");
    const script = stepScript(step);
    assert.ok(script.includes(`PGC_MEMBER_KEY='${memberKey("pglocal", "pg4")}'`), "the member key of this cluster's scope");
    assert.equal(memberKey("pglocal", "pg4"), "/pgcluster/pglocal/members/pg4");
    for (const piece of ["pgc_patroni_switchover_away", "systemctl disable -q --now patroni", "pgc_with_etcd_lock pgcluster/patroni-restart pgc_decom_now", "nofailover|nosync|noloadbalance", "del \"$PGC_MEMBER_KEY\""])
      assert.ok(script.includes(piece), `the script has ${piece}`);
    // The etcd endpoints are the remaining members'.
    assert.match(script, /PGC_ETCD_ENDPOINTS='https:\/\/10\.213\.0\.11:2379,https:\/\/10\.213\.0\.12:2379,https:\/\/10\.213\.0\.13:2379'/);
    const r = spawnSync("bash", ["-n"], { input: script });
    assert.equal(r.status, 0, r.stderr.toString());
  });

  it("the leader refuses before it changes anything when nobody can take over", async () => {
    const script = stepScript(decommissionStep(await ctx(), host));
    const body = script.slice(script.indexOf("pgc_decom_now() {"));
    assert.ok(body.indexOf("cannot hand over") < body.indexOf("sed -i"), "the refusal comes before the first change (the tags)");
  });

  it("a database node that is also an etcd member: Patroni leaves first (the DCS keeps every member meanwhile), then etcd, in one step", async () => {
    const step = decommissionStep(await ctx(), { ...host, roles: ["etcd", "postgres"] });
    const calls = step.actions.filter((a) => a.kind === "call").map((a) => (a as { fn: { name: string } }).fn.name);
    assert.deepEqual(calls, ["pgc_decommission", "pgc_etcd_leave", "pgc_decom_mark"]);
    const script = stepScript(step);
    assert.ok(script.includes("PGC_LEAVING_PEER='https://10.213.0.14:2380'"), "the member it removes is its own");
    assert.match(script, /PGC_ETCD_ENDPOINTS='https:\/\/10\.213\.0\.11:2379,https:\/\/10\.213\.0\.12:2379,https:\/\/10\.213\.0\.13:2379'/, "through the remaining members only");
    assert.match(script, /\[\[ \$healthy == 3\/3 \]\] \|\| \{/, "all three remaining members healthy before the removal");
    assert.equal(spawnSync("bash", ["-n"], { input: script }).status, 0);
  });

  it("is refused for a host still in the inventory, and for a host that is neither a database node nor an etcd member", async () => {
    const c = await ctx();
    assert.throws(() => decommissionStep(c, { ...host, name: "pg3", address: "10.213.0.13" }), /still in the inventory/);
    assert.throws(() => decommissionStep(c, { ...host, roles: ["balancer"] }), /neither a database node nor an etcd member/);
  });

  it("Patroni's slot name for a member", () => {
    assert.equal(slotName("pg4"), "pg4");
    assert.equal(slotName("DB-node.4"), "db_node_4");
  });
});
