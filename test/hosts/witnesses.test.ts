// etcd membership changes on the real local cluster (issue 13 item 2), under the write load
// through :5000, the split-brain probe and the etcd quorum watch: an etcd-only witness (w1 .21)
// and a database node that is also an etcd member (pg5 .15) join (3 -> 5), one member at a time,
// without any running member restarting; then both leave the inventory again (5 -> 3) and are
// decommissioned one at a time (pg5: Patroni first, then etcd, in one step), their hosts removed.
// Named to run last of the hosts suites (they run in file-name order), as the most disruptive.
// The suite leaves the cluster as Pulumi.local.yaml says (in-memory inventories; after hook).
import { strict as assert } from "assert";
import * as https from "https";
import { failedSteps, onNode, requireHosts, settledCluster } from "../support/hostsLayer";
import { EtcdWatch } from "../support/etcdWatch";
import { loadCluster, patroniCluster, type LocalCluster } from "../../local/cluster";
import { apply, bringUpHosts, type ApplyReport } from "../../local/up";
import { ensureChaosTable, healthy, leader, lostRows, WriteLoad } from "../../local/chaos";
import { SplitBrainProbe } from "../../local/splitBrainProbe";
import { nodeExists, removeNode } from "../../local/hosts";
import { readAppliedHosts } from "../../local/scaleIn";
import { ssh } from "../../local/ssh";
import { stepScript } from "../../roles/script";
import { remoteCommand } from "../../roles/transport";

/** The members that join and leave: a witness (etcd only) and a database node that is an etcd member too. */
const JOINERS = [
  { name: "w1", address: "10.213.0.21", roles: ["etcd"] },
  { name: "pg5", address: "10.213.0.15", roles: ["etcd", "postgres"] },
];
const ETCD = ["pg1", "pg2", "pg3"];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (l: string) => console.log(`      ${l}`);

const on = onNode;

const failed = failedSteps;

interface Member { name: string; started: boolean }

/** etcd's member list, through its gRPC gateway on pg1 with pg1's client certificate. */
function memberList(c: LocalCluster, address = "10.213.0.11"): Promise<Member[]> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: address, port: 2379, path: "/v3/cluster/member/list", method: "POST", ca: c.pki.caBundle, ...c.pki.nodes.pg1, timeout: 2000 }, (res) => {
      let text = "";
      res.on("data", (d) => (text += d));
      res.on("end", () => {
        try {
          const members = (JSON.parse(text).members ?? []) as { name?: string; peerURLs?: string[]; clientURLs?: string[] }[];
          resolve(members.map((m) => ({ name: m.name || (m.peerURLs ?? []).join(","), started: (m.clientURLs ?? []).length > 0 })));
        } catch (e) { reject(new Error(`member list: ${res.statusCode} ${text.slice(0, 100)}`)); }
      });
    });
    req.on("timeout", () => req.destroy(new Error("member list: no answer within 2 s")));
    req.on("error", reject);
    req.end("{}");
  });
}

/** Polls the member list while a change runs: the most members seen unstarted at once, and how many polls got no answer. */
class MembershipWatch {
  maxUnstarted = 0;
  sizes = new Set<number>();
  answered = 0;
  unanswered = 0;
  private stopped = false;
  private loop?: Promise<void>;
  constructor(private readonly c: LocalCluster) {}
  start(): this {
    this.loop = (async () => {
      while (!this.stopped) {
        const t = Date.now();
        try {
          const m = await memberList(this.c);
          this.answered++;
          this.sizes.add(m.length);
          this.maxUnstarted = Math.max(this.maxUnstarted, m.filter((x) => !x.started).length);
        } catch { this.unanswered++; }
        await sleep(Math.max(0, 250 - (Date.now() - t)));
      }
    })();
    return this;
  }
  async stop(): Promise<void> { this.stopped = true; await this.loop; }
}

/** etcd's and Patroni's main PIDs with their start times on the running members: unchanged = not restarted. */
async function daemons(c: LocalCluster): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const n of ETCD) out[n] = await on(c, n, "systemctl show -p MainPID,ExecMainStartTimestampMonotonic --value etcd patroni | tr '\\n' ' '");
  return out;
}

/** Seconds after `from` at which the longest gap between acknowledged writes began. */
function gapStart(load: WriteLoad, from: number): number {
  const times = [from, ...load.acked.filter((a) => a.at >= from).map((a) => a.at)];
  let best = 0, at = from;
  for (let i = 1; i < times.length; i++) if (times[i] - times[i - 1] > best) { best = times[i] - times[i - 1]; at = times[i - 1]; }
  return (at - from) / 1000;
}

interface Change { apply: ApplyReport; gap: number; gapAt: number; stallMs: number; acked: number; failures: number; lost: number; twoWritable: number; leaderBefore: string; leaderAfter: string; etcd: EtcdWatch; members: MembershipWatch; restarted: string[]; lines: string[] }

/** `next` applied under the write load, the split-brain probe, the etcd watch and the member-list poll. */
async function change(c: LocalCluster, next: LocalCluster, name: string): Promise<Change> {
  await ensureChaosTable(c);
  const run = `${name}-${Date.now()}`;
  const before = await daemons(c);
  const leaderBefore = await leader(c);
  const addresses = [...ETCD.map((n) => c.hosts.find((h) => h.name === n)!.address), ...JOINERS.map((j) => j.address)];
  const etcd = new EtcdWatch(addresses, { ca: c.pki.caBundle, ...c.pki.nodes.pg1 }).start();
  const members = new MembershipWatch(c).start();
  const probe = new SplitBrainProbe(["pg1", "pg2", "pg3"]).start();
  const load = new WriteLoad(c, run).start();
  const lines: string[] = [];
  // The test's own event loop (the write load runs on it): its longest stall, to tell a client-side gap from the cluster's.
  let stallMs = 0, tick = Date.now();
  const stall = setInterval(() => { stallMs = Math.max(stallMs, Date.now() - tick - 100); tick = Date.now(); }, 100);
  let r: ApplyReport, t0: number;
  try {
    const end = Date.now() + 30_000;
    while (!load.flowing() && Date.now() < end) await sleep(200);
    assert.ok(load.flowing(), "writes flowing before the change");
    await sleep(1000);
    t0 = Date.now();
    r = await apply(next, (l) => lines.push(`${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s | ${l}`));
    await sleep(2000);
  } finally {
    clearInterval(stall);
    await load.stop();
    await members.stop();
    await etcd.finish();
  }
  const report = await probe.stop();
  for (const [n, g] of Object.entries(report.longestUnobserved)) assert.ok(g.ms <= report.unobservedBoundMs, `${n} unobserved for ${g.ms} ms (bound ${report.unobservedBoundMs} ms)`);
  const after = await daemons(c);
  const acked = load.acked.map((a) => a.id);
  return {
    apply: r!, gap: load.gapSince(t0!), gapAt: gapStart(load, t0!), stallMs, acked: acked.length, failures: load.failures, lost: await lostRows(c, run, acked),
    twoWritable: probe.seen.length, leaderBefore, leaderAfter: await leader(c), etcd, members,
    restarted: ETCD.filter((n) => before[n] !== after[n]).map((n) => `${n}: ${before[n]} -> ${after[n]}`), lines,
  };
}

function report(name: string, x: Change): void {
  const w = x.etcd.windows();
  log(`${name}: apply ${x.apply.seconds.toFixed(1)} s (${x.apply.changed} changed); writer gap ${x.gap.toFixed(1)} s (from ${x.gapAt.toFixed(1)} s into the apply; the test's event loop stalled at most ${x.stallMs} ms), ${x.acked} acknowledged, ${x.failures} failed attempts, ${x.lost} lost, two writable: ${x.twoWritable ? "SEEN" : "never"}, leader ${x.leaderBefore} -> ${x.leaderAfter}`);
  log(`  etcd: ${x.etcd.samples} rounds (every ${x.etcd.intervalMs} ms, longest ${x.etcd.maxIntervalMs} ms apart), ${x.etcd.withoutMajority} without a healthy majority (${x.etcd.undetermined} undetermined), ${w.length} windows; member list: ${x.members.answered} polls answered, ${x.members.unanswered} not, sizes seen ${[...x.members.sizes].sort().join(",")}, at most ${x.members.maxUnstarted} unstarted at once`);
  for (const e of x.etcd.describe()) log(`    ${e}`);
  for (const l of x.lines.filter((l) => /etcd|decommission|w1\b|pg5\b|finished/.test(l) && !/ ok {2,}/.test(l))) log(`  ${l}`);
}

function assertSafe(x: Change): void {
  assert.equal(x.apply.code, 0, `apply: ${failed(x.apply)}\n${x.lines.join("\n")}`);
  assert.equal(x.lost, 0, `${x.lost} acknowledged rows missing`);
  assert.equal(x.twoWritable, 0, "two writable nodes seen");
  assert.ok(x.acked > 20, `the load ran (${x.acked} acknowledged)`);
  assert.equal(x.leaderAfter, x.leaderBefore, "the Patroni leader did not change");
  assert.deepEqual(x.restarted, [], "no running etcd member and no Patroni restarted");
  assert.ok(x.etcd.samples > 20, "etcd was watched");
  // Rounds at most 1 s apart (not the rotation test's 2 intervals): two new hosts installing
  // packages starve this 2-core machine (rounds seen up to 730 ms apart). What a membership change
  // could cost lasts longer than that: a restart takes over a second, an election at least the 1 s
  // election timeout, and two unstarted members at once the member-list poll sees.
  assert.ok(x.etcd.maxIntervalMs <= 1000, `etcd watched every ${x.etcd.intervalMs} ms (longest ${x.etcd.maxIntervalMs} ms apart)`);
  assert.equal(x.etcd.withoutMajority, 0, `rounds without a healthy majority (or undetermined):\n${x.etcd.describe().join("\n")}`);
  // The member list was seen through the change (a poll without an answer is not counted as a pass).
  assert.ok(x.members.answered > 20 && x.members.unanswered <= x.members.answered / 20, `member list polls: ${x.members.answered} answered, ${x.members.unanswered} not`);
  assert.ok(x.members.maxUnstarted <= 1, `${x.members.maxUnstarted} members unstarted at once`);
}

describe("hosts layer: etcd membership 3 -> 5 -> 3 (a witness and a database node join and leave)", function () {
  this.timeout(30 * 60_000);
  let c: LocalCluster;

  before(async function () {
    requireHosts(this);
    c = await settledCluster("membership");
  });

  // Whatever happened, the joiners leave: the shared cluster keeps its three members.
  after(async function () {
    if (!c) return;
    const listed = (await memberList(c).catch(() => [] as Member[])).filter((m) => !ETCD.includes(m.name));
    if (!listed.length && !JOINERS.some((j) => nodeExists(j.name))) return;
    log(`clean-up: ${listed.map((m) => m.name).join(", ") || "joiners' hosts"} still present`);
    // Joiners still listed leave the member list first (through pg1), while every firewall still admits them.
    for (const m of listed) {
      log(`clean-up: etcd member ${m.name} removed through pg1`);
      const etcdctl = "env ETCDCTL_API=3 etcdctl --cacert=/etc/etcd/pki/ca.crt --cert=/etc/etcd/pki/node.crt --key=/etc/etcd/pki/node.key --endpoints=https://127.0.0.1:2379";
      const address = JOINERS.find((j) => j.name === m.name || m.name.includes(`${j.address}:`))?.address;
      if (!address) continue;
      await on(c, "pg1", `${etcdctl} member list | awk -F', ' '$4 ~ /${address.replace(/\./g, "\\.")}:2380/ {print $1}' | xargs -r -n1 ${etcdctl} member remove`);
    }
    const r = await apply(c, log);
    for (const j of JOINERS) if (nodeExists(j.name)) await removeNode(j.name, log);
    assert.equal(r.code, 0, `clean-up apply: ${failed(r)}`);
  });

  it("grows to 5: the witness and the database node join one member at a time, nothing running restarts, quorum in every round; then shrinks back to 3 the same way (pg5 hands nothing over: it leaves Patroni, then etcd), their hosts gone, a re-apply changes nothing", async () => {
    const c5 = await loadCluster("local", { hosts: [...c.spec.hosts.map(({ name, address, roles }) => ({ name, address, roles })), ...JOINERS] });
    const t = Date.now();
    await bringUpHosts(c5, log);
    log(`joiners' hosts up in ${((Date.now() - t) / 1000).toFixed(1)} s`);

    const grow = await change(c, c5, "etcd-grow");
    report("grow 3 -> 5", grow);
    assertSafe(grow);
    for (const j of JOINERS) assert.equal(grow.apply.outcomes.find((o) => o.step.id === `${j.name}/etcd`)?.outcome, "changed");
    assert.ok(grow.lines.some((l) => /etcd:member w1 added to the running cluster as existing/.test(l)) || grow.apply.outcomes.find((o) => o.step.id === "w1/etcd")?.result?.changed.some((x) => /added to the running cluster as existing/.test(x)), "w1 joined as existing");
    const five = await memberList(c);
    assert.deepEqual(five.map((m) => `${m.name}:${m.started}`).sort(), ["pg1:true", "pg2:true", "pg3:true", "pg5:true", "w1:true"]);
    assert.deepEqual([...grow.members.sizes].sort(), [3, 4, 5], "the cluster went 3, 4, 5: one member added at a time");
    const patroniHosts = await on(c, "pg1", "grep '^  hosts:' /etc/patroni/config.yml");
    for (const j of JOINERS) assert.ok(patroniHosts.includes(`${j.address}:2379`), `Patroni's etcd hosts follow: ${patroniHosts}`);
    // The grown cluster's health: four database nodes now.
    await healthy(c5, 60);
    const pg5 = (await patroniCluster(c)).find((m) => m.name === "pg5");
    assert.ok(pg5 && pg5.role !== "leader" && ["running", "streaming"].includes(pg5.state), `pg5 replicates: ${JSON.stringify(pg5)}`);

    // Removed in one apply through Pulumi, the remaining hosts' firewalls would drop the joiners
    // before their decommission (a delete) could run: the firewall step refuses, naming them,
    // before it changes anything. (The 3-member plan's step, run on pg1 while both are members.)
    const table = () => on(c, "pg1", "nft list table inet pgcluster | sha256sum");
    const tableBefore = await table();
    const refused = await ssh(c.ssh, c.targets.pg1, remoteCommand("root"), stepScript(c.plan.steps.find((x) => x.id === "pg1/firewall")!), 120_000);
    assert.notEqual(refused.code, 0, refused.out);
    assert.match(refused.out, /the cluster still counts members that are not in the inventory: etcd member (w1|pg5) .*etcd member (w1|pg5) .*Patroni member pg5/);
    assert.equal(await table(), tableBefore, "pg1's rules unchanged");

    // Shrink, first apply: both marked leaving; the plan decommissions them first, one at a time,
    // while every host still admits them (the Pulumi path's steps, run by the local driver).
    const cLeaving = await loadCluster("local", { hosts: [...c.spec.hosts.map(({ name, address, roles }) => ({ name, address, roles })), ...JOINERS.map((x) => ({ ...x, leaving: true }))] });
    const shrink = await change(c, cLeaving, "etcd-shrink");
    report("shrink 5 -> 3 (marked leaving)", shrink);
    assertSafe(shrink);
    for (const j of JOINERS) {
      const o = shrink.apply.outcomes.find((x) => x.step.id === `${j.name}/decommission`);
      assert.equal(o?.outcome, "changed", shrink.lines.join("\n"));
      const changed = o?.result?.changed ?? [];
      assert.ok(changed.some((x) => x.startsWith(`etcd:member ${j.name} (`)), `${j.name} removed from etcd: ${changed.join(", ")}`);
      if (j.roles.includes("postgres")) {
        // Patroni left before etcd did: the DCS had every member while Patroni handed over and left.
        const patroniGone = changed.findIndex((x) => x.startsWith("service:patroni stopped"));
        const etcdGone = changed.findIndex((x) => x.startsWith(`etcd:member ${j.name} (`));
        assert.ok(patroniGone >= 0 && patroniGone < etcdGone, `${j.name}: Patroni stopped before its etcd member left: ${changed.join(", ")}`);
      }
      assert.ok(nodeExists(j.name), `${j.name}'s host stays until it leaves the inventory`);
    }
    assert.ok(!(await patroniCluster(c)).some((m) => m.name === "pg5"), "pg5 is no Patroni member any more");
    assert.deepEqual([...shrink.members.sizes].sort(), [3, 4, 5], "the cluster went 5, 4, 3: one member removed at a time");
    assert.deepEqual((await memberList(c)).map((m) => `${m.name}:${m.started}`).sort(), ["pg1:true", "pg2:true", "pg3:true"]);
    const stillAdmits = await on(c, "pg1", "nft list table inet pgcluster");
    for (const j of JOINERS) assert.match(stillAdmits, new RegExp(`${j.address.replace(/\./g, "\\.")}([^0-9]|$)`), `pg1 still admits ${j.name} while it leaves`);
    const marked = await apply(cLeaving, () => {});
    assert.equal(marked.code, 0, failed(marked));
    assert.equal(marked.changed, 0, `re-apply while leaving: ${marked.outcomes.filter((o) => o.outcome === "changed").map((o) => `${o.step.id}: ${o.result?.changed.join(", ")}`).join("; ")}`);

    // Second apply: removed from the inventory. Their decommission is found done (no change), the
    // firewalls drop them, their hosts go.
    const removed = await apply(c, () => {});
    log(`shrink, second apply (removed from the inventory): ${removed.seconds.toFixed(1)} s, ${removed.changed} changed`);
    assert.equal(removed.code, 0, failed(removed));
    for (const j of JOINERS) {
      assert.equal(removed.outcomes.find((x) => x.step.id === `${j.name}/decommission`)?.outcome, "ok", `${j.name}: decommissioned already`);
      assert.ok(!nodeExists(j.name), `${j.name}'s host is removed`);
    }
    assert.deepEqual(readAppliedHosts(c.stateDir)?.map((h) => h.name), c.spec.hosts.map((h) => h.name), "the state records the applied inventory");
    for (const n of ["pg1", "lb1"]) assert.equal(await on(c, n, "nft list table inet pgcluster | grep -cE '10\\.213\\.0\\.(15|21)([^0-9]|$)' || true"), "0", `${n}'s firewall no longer admits the joiners`);
    await healthy(c, 60);
    const again = await apply(c, () => {});
    assert.equal(again.code, 0, failed(again));
    assert.equal(again.changed, 0, `re-apply changed: ${again.outcomes.filter((o) => o.outcome === "changed").map((o) => `${o.step.id}: ${o.result?.changed.join(", ")}`).join("; ")}`);
  });
});
