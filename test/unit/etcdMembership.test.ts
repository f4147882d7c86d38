// etcd membership changes (issue 13 item 2): growing 3 -> 5 adds the new members as "existing"
// one at a time without restarting the running ones; shrinking 5 -> 3 decommissions the
// etcd-only members one at a time; an even or smaller cluster is refused before any change.
import { strict as assert } from "assert";
import { spawnSync } from "child_process";
import { loadSpec } from "../../local/cluster";
import { ensurePki, toPki } from "../../local/pki";
import { appliedFromSpec, scaleInPlan } from "../../local/scaleIn";
import { compile } from "../../roles/compile";
import { decommissionStep, shell as decomShell } from "../../roles/decommission";
import { ETCD_INITIAL_FILE, ETCD_MEMBERSHIP_LOCK, shell as etcdShell } from "../../roles/etcd";
import { stepScript } from "../../roles/script";
import type { FileAction } from "../../roles/step";
import type { ClusterSpec } from "../../model/config";
import { ConfigError } from "../../model/config";
import { fileOf, hostsOf, TEST_SECRETS } from "../support/fixtures";

const WITNESSES = [
  { name: "w1", address: "10.213.0.21", roles: ["etcd"] },
  { name: "w2", address: "10.213.0.22", roles: ["etcd"] },
];
const stackHosts = () => loadSpec("local").hosts.map(({ name, address, roles }) => ({ name, address, roles }));
const five = () => loadSpec("local", { hosts: [...stackHosts(), ...WITNESSES] });

async function plan(spec: ClusterSpec) {
  const hosts = hostsOf(spec);
  const pki = toPki(spec, await ensurePki(spec, Object.fromEntries(hosts.map((h) => [h.name, h.address])), undefined));
  return { spec, hosts, pki, steps: compile(spec, hosts, pki, TEST_SECRETS, undefined).steps };
}

describe("etcd membership: grow 3 -> 5", function () {
  this.timeout(60_000);
  let three: Awaited<ReturnType<typeof plan>>, grown: Awaited<ReturnType<typeof plan>>;
  before(async () => { three = await plan(loadSpec("local")); grown = await plan(five()); });
  const step = (p: typeof three, id: string) => p.steps.find((s) => s.id === id)!;
  const file = (p: typeof three, id: string, path: string) => step(p, id).actions.find((a): a is FileAction => a.kind === "file" && a.path === path)!;

  it("a running member's /etc/default/etcd (which restarts it) is the same at 3 and at 5 members; only the bootstrap file differs, and it restarts nothing", () => {
    for (const n of ["pg1", "pg2", "pg3"]) {
      assert.equal(fileOf(step(grown, `${n}/etcd`), "/etc/default/etcd"), fileOf(step(three, `${n}/etcd`), "/etc/default/etcd"), `${n}'s etcd env`);
      assert.doesNotMatch(fileOf(step(grown, `${n}/etcd`), "/etc/default/etcd"), /INITIAL_CLUSTER=/);
      assert.notEqual(fileOf(step(grown, `${n}/etcd`), ETCD_INITIAL_FILE), fileOf(step(three, `${n}/etcd`), ETCD_INITIAL_FILE));
      assert.deepEqual(file(grown, `${n}/etcd`, ETCD_INITIAL_FILE).notify, [], "the bootstrap file notifies no handler");
    }
    assert.match(fileOf(step(grown, "w2/etcd"), ETCD_INITIAL_FILE), /^ETCD_INITIAL_CLUSTER=pg1=https:\/\/10\.213\.0\.11:2380,pg2=https:\/\/10\.213\.0\.12:2380,pg3=https:\/\/10\.213\.0\.13:2380,w1=https:\/\/10\.213\.0\.21:2380,w2=https:\/\/10\.213\.0\.22:2380\nETCD_INITIAL_CLUSTER_STATE=new$/m);
  });

  it("the unit reads the bootstrap file, then the join file (which wins)", () => {
    const dropIn = fileOf(step(grown, "w1/etcd"), "/etc/systemd/system/etcd.service.d/pgcluster-join.conf");
    assert.deepEqual(dropIn.split("\n").filter((l) => l.startsWith("EnvironmentFile=")), [`EnvironmentFile=-${ETCD_INITIAL_FILE}`, "EnvironmentFile=-/var/lib/pgcluster/etcd-join.env"]);
  });

  it("Patroni's etcd hosts follow by reload, not by restart", () => {
    const cfg = file(grown, "pg1/patroni", "/etc/patroni/config.yml");
    assert.match(cfg.content, /hosts: 10\.213\.0\.11:2379,10\.213\.0\.12:2379,10\.213\.0\.13:2379,10\.213\.0\.21:2379,10\.213\.0\.22:2379/);
    assert.deepEqual(cfg.notify, [{ kind: "reload", unit: "patroni" }]);
  });

  // The join, as the host runs it: under the members' lock, decided again, refused when another
  // member is added but unstarted, started and healthy before the lock is released.
  it("a new member joins under the members' lock and holds it until it answers healthy", () => {
    const script = stepScript(step(grown, "w1/etcd"));
    assert.ok(script.includes(`pgc_with_etcd_lock '${ETCD_MEMBERSHIP_LOCK}' pgc_etcd_join_now`), "the join takes the lock");
    assert.ok(script.includes("local PGC_ETCD_ENDPOINTS=$PGC_ETCD_OTHERS"), "the lock through the other members");
    const body = script.slice(script.indexOf("pgc_etcd_join_now() {"), script.indexOf("pgc_etcd_join_existing() {"));
    const order = ["pgc_etcd_membership)", "*unstarted:*) pgc_fail", "member add 'w1' --peer-urls='https://10.213.0.21:2380'", "systemctl start --no-block etcd", "pgc_wait 120 \"etcd member w1 started and healthy\" pgc_etcd_self_healthy"];
    const at = order.map((p) => body.indexOf(p));
    assert.ok(at.every((i) => i >= 0), `every piece in the join: ${order.filter((_, i) => at[i] < 0).join(", ")}`);
    assert.deepEqual([...at].sort((a, b) => a - b), at, "decided, refused, added, started, then waited for, in that order");
    // etcd refuses an add for 5 s after the previous join ("unhealthy cluster"): retried, bounded; any other error fails.
    assert.match(body, /until out=\$\(pgc_etcdctl_at "\$PGC_ETCD_OTHERS" member add[\s\S]*etcdserver: \(unhealthy cluster\|[\s\S]*\(\(SECONDS - start < 60\)\)[\s\S]*\|\| pgc_fail "etcd member add w1 failed/);
    // The handlers for etcd are dropped after the start: no restart right after the join.
    assert.ok(body.indexOf("[[ $h == *:etcd ]]") > body.indexOf("systemctl start --no-block etcd"));
    const call = step(grown, "w1/etcd").actions.findIndex((a) => a.kind === "call" && a.fn === etcdShell.joinExisting);
    assert.ok(call >= 0);
    assert.equal(spawnSync("bash", ["-n"], { input: script }).status, 0);
  });

  const decide = (members: unknown[]) => {
    const script = stepScript(step(grown, "w2/etcd"));
    const py = /pgc_etcd_membership\(\) \{[\s\S]*?python3 -c '([\s\S]*?)' "\$list"/.exec(script)![1];
    const r = spawnSync("python3", ["-c", py, JSON.stringify({ members }), "w2", "https://10.213.0.22:2380"]);
    assert.equal(r.status, 0, r.stderr.toString());
    return r.stdout.toString().trim();
  };
  const started = (n: string, id: number, addr: string) => ({ ID: id, name: n, peerURLs: [`https://${addr}:2380`], clientURLs: [`https://${addr}:2379`] });
  const running = [started("pg1", 1, "10.213.0.11"), started("pg2", 2, "10.213.0.12"), started("pg3", 3, "10.213.0.13")];

  it("the membership as the joining member reads it: absent, another member added but unstarted, started, forming", () => {
    assert.equal(decide(running), "absent");
    // w1 added (member add gives a name-less, client-URL-less entry) but not started yet: w2 must not be added.
    assert.equal(decide([...running, { ID: 0x21, name: "", peerURLs: ["https://10.213.0.21:2380"] }]), "absent unstarted:https://10.213.0.21:2380");
    assert.equal(decide([...running, started("w1", 0x21, "10.213.0.21")]), "absent");
    assert.equal(decide([...running, started("w2", 0xabc, "10.213.0.22")]), "started abc");
    assert.equal(decide([...running.map(({ clientURLs: _c, ...m }) => m), { ID: 0xabc, name: "w2", peerURLs: ["https://10.213.0.22:2380"] }]), "forming unstarted:pg1,pg2,pg3");
  });
});

describe("etcd membership: shrink 5 -> 3 (etcd-only members leave)", function () {
  this.timeout(60_000);
  const remaining = loadSpec("local");
  const ctx = async () => {
    const p = await plan(five());
    return { spec: remaining, hosts: hostsOf(remaining), pki: p.pki, secrets: TEST_SECRETS };
  };
  const w1 = { ...WITNESSES[0], roles: ["etcd" as const], sshUser: "root", sshPort: 22, kind: "static" as const };

  it("the witnesses that left are decommissioned, in inventory order, one at a time; nothing is dropped", () => {
    const p = scaleInPlan(appliedFromSpec(five()), remaining);
    assert.deepEqual(p.decommission.map((h) => h.name), ["w1", "w2"]);
    assert.deepEqual(p.dropped, []);
  });

  it("a database node that is also an etcd member leaving is decommissioned like a witness, after its Patroni (test/unit/scaleIn.test.ts)", () => {
    const previous = [...appliedFromSpec(remaining), { name: "pg4", address: "10.213.0.14", roles: ["etcd", "postgres"] as ("etcd" | "postgres")[], sshUser: "root", sshPort: 22 }];
    assert.deepEqual(scaleInPlan(previous, remaining).decommission.map((h) => h.name), ["pg4"]);
  });

  it("an even etcd count, or fewer than 3, is refused when the stack is read (before any host is contacted)", () => {
    const refused = (hosts: unknown[]) => assert.throws(() => loadSpec("local", { hosts }), (e: Error) => e instanceof ConfigError && /gives \d etcd member\(s\); etcd needs an odd number, at least 3/.test(e.message));
    refused([...stackHosts(), WITNESSES[0]]); // 4
    refused(stackHosts().map((h) => (h.name === "pg3" ? { ...h, roles: ["postgres"] } : h))); // 2
    refused([...stackHosts().map((h) => (h.name === "pg3" ? { ...h, roles: ["postgres"] } : h)), ...WITNESSES]); // 4
  });

  it("the step waits for the remaining members, hands leadership over, removes the member through them, then stops it and removes its data", async () => {
    const step = decommissionStep(await ctx(), w1);
    assert.equal(step.id, "w1/decommission");
    assert.ok(step.actions.some((a) => a.kind === "call" && a.fn === decomShell.etcdLeave));
    const script = stepScript(step);
    assert.match(script, /PGC_ETCD_ENDPOINTS='https:\/\/10\.213\.0\.11:2379,https:\/\/10\.213\.0\.12:2379,https:\/\/10\.213\.0\.13:2379'/, "talks to the remaining members only");
    // The member's name reaches the shell quoted (the host-name grammar refuses anything else anyway).
    assert.ok(script.includes("PGC_LEAVING_NAME='w1'") && script.includes("PGC_LEAVING_PEER='https://10.213.0.21:2380'"));
    assert.ok(script.includes(`pgc_with_etcd_lock '${ETCD_MEMBERSHIP_LOCK}' pgc_etcd_leave_now`));
    const body = script.slice(script.indexOf("pgc_etcd_leave_now() {"), script.indexOf("pgc_etcd_leave() {"));
    const order = ["pgc_wait 120 \"every remaining etcd member healthy", "move-leader", "member remove \"$id\"", "systemctl disable -q --now etcd", "rm -rf '/var/lib/etcd/pgcluster' '/var/lib/pgcluster/etcd-join.env'"];
    const at = order.map((p) => body.indexOf(p));
    assert.ok(at.every((i) => i >= 0), `every piece: ${order.filter((_, i) => at[i] < 0).join(", ")}`);
    assert.deepEqual([...at].sort((a, b) => a - b), at, "in that order");
    assert.match(script, /\[\[ \$healthy == 3\/3 \]\] \|\| \{/, "all three remaining members healthy");
    assert.equal(spawnSync("bash", ["-n"], { input: script }).status, 0);
  });

  it("the member's ID and the cluster's size, as the step reads etcd's member list", async () => {
    const script = stepScript(decommissionStep(await ctx(), w1));
    const py = /pgc_etcd_leaving_member\(\) \{[\s\S]*?python3 -c '([\s\S]*?)' "\$list"/.exec(script)![1];
    const run = (members: unknown[]) => spawnSync("python3", ["-c", py, JSON.stringify({ members }), "w1", "https://10.213.0.21:2380"]).stdout.toString().trim();
    const m = (n: string, id: number, a: string) => ({ ID: id, name: n, peerURLs: [`https://${a}:2380`], clientURLs: [`https://${a}:2379`] });
    const base = [m("pg1", 1, "10.213.0.11"), m("pg2", 2, "10.213.0.12"), m("pg3", 3, "10.213.0.13")];
    const urls = "https://10.213.0.11:2379,https://10.213.0.12:2379,https://10.213.0.13:2379";
    assert.equal(run([...base, m("w1", 0x2a, "10.213.0.21"), m("w2", 0x2b, "10.213.0.22")]), `2a 5 ${urls},https://10.213.0.22:2379`, "the other leaving member is checked too");
    assert.equal(run([...base, m("w2", 0x2b, "10.213.0.22")]), `- 4 ${urls},https://10.213.0.22:2379`, "already removed: not listed");
    assert.equal(run([...base, m("w1", 0x2a, "10.213.0.21"), { ID: 0x2b, name: "", peerURLs: ["https://10.213.0.22:2380"] }]), `2a 5 ${urls},unstarted`, "a member added but never started shows (and is refused)");
  });

  it("a witness's step is etcd's alone (no Patroni); refused for a host without etcd or postgres, a host still in the inventory", async () => {
    const c = await ctx();
    const calls = decommissionStep(c, w1).actions.filter((a) => a.kind === "call").map((a) => (a as { fn: { name: string } }).fn.name);
    assert.deepEqual(calls, ["pgc_etcd_leave", "pgc_decom_mark"]);
    assert.throws(() => decommissionStep(c, { ...w1, roles: ["balancer"] }), /neither a database node nor an etcd member/);
    assert.throws(() => decommissionStep(c, { ...w1, name: "pg3", address: "10.213.0.13" }), /still in the inventory/);
  });

  it("a hostile host name never reaches the step: the host-name grammar refuses it", () => {
    for (const name of ["w1;reboot", "w1 w2", "$(id)", "w1'"])
      assert.throws(() => loadSpec("local", { hosts: [...stackHosts(), { ...WITNESSES[0], name }, WITNESSES[1]] }), ConfigError, name);
  });
});
