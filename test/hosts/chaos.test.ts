// Chaos on the real local cluster: each scenario breaks it under a steady write load through
// :5000 and checks afterwards that every acknowledged row is on every node, that no two nodes
// were ever writable at once, and that the cluster healed. Write gaps are printed, not asserted
// (figures belong to bench/failover).
import { strict as assert } from "assert";
import { requireHosts, localCluster } from "../support/hostsLayer";
import { SCENARIOS, type ScenarioResult } from "../../local/chaos";
import type { LocalCluster } from "../../local/cluster";

describe("hosts layer: chaos (faults under write load)", function () {
  this.timeout(15 * 60_000);
  let c: LocalCluster;
  const results: ScenarioResult[] = [];

  before(async function () {
    requireHosts(this);
    c = await localCluster();
  });

  after(() => {
    if (!results.length) return;
    console.log("\n      scenario             write gap   acked  lost  split-brain  leader");
    for (const r of results)
      console.log(`      ${r.scenario.padEnd(20)} ${r.gap.toFixed(1).padStart(7)} s ${String(r.acked).padStart(7)} ${String(r.lost).padStart(5)}  ${r.splitBrain ? "SEEN" : "none"}         ${r.leaderBefore} -> ${r.leaderAfter}`);
  });

  const check = (r: ScenarioResult) => {
    results.push(r);
    for (const n of r.notes) console.log(`      · ${n}`);
    assert.equal(r.lost, 0, `${r.lost} acknowledged rows missing`);
    assert.equal(r.splitBrain, false, "two writable primaries seen");
    assert.ok(r.acked > 20, `load ran (${r.acked} acked)`);
  };

  it("1+7: power cut on the primary's host: a replica takes over, nothing acknowledged is lost, the old primary rejoins", async () => {
    const r = await SCENARIOS["kill-primary-host"](c);
    check(r);
    assert.notEqual(r.leaderAfter, r.leaderBefore, "a replica was promoted");
    assert.ok(r.notes.some((n) => n.startsWith(`${r.leaderBefore} rejoined as`)), r.notes.join("; "));
  });

  it("2: PostgreSQL killed on the primary: Patroni restarts it, nothing acknowledged is lost", async () => {
    check(await SCENARIOS["kill-postgres"](c));
  });

  it("3+7: the primary's link cut: it demotes itself, never two writable nodes, it rejoins when the link returns", async () => {
    const r = await SCENARIOS["partition-primary"](c);
    check(r);
    assert.notEqual(r.leaderAfter, r.leaderBefore);
    assert.ok(r.notes.some((n) => n.startsWith(`isolated ${r.leaderBefore}:`)), r.notes.join("; "));
    assert.ok(r.notes.some((n) => n.startsWith(`${r.leaderBefore} rejoined as`)), r.notes.join("; "));
  });

  it("4: planned switchover moves the leader without losing acknowledged writes", async () => {
    const r = await SCENARIOS["switchover"](c);
    check(r);
    assert.notEqual(r.leaderAfter, r.leaderBefore);
  });

  it("5: losing one etcd member, then quorum: failsafe_mode keeps the primary serving, no split brain", async () => {
    const r = await SCENARIOS["etcd-quorum-loss"](c);
    check(r);
    assert.equal(r.leaderAfter, r.leaderBefore, "the primary was not demoted while every member could still see it");
  });

  it("a pgcluster upgrade that changes the Patroni launcher restarts Patroni node by node: planned switchovers only, nothing lost", async () => {
    const r = await SCENARIOS["patroni-upgrade"](c);
    check(r);
    assert.ok(r.notes.includes("Patroni restarted on pg1, pg2, pg3"), r.notes.join("; "));
    // A failover would leave the writers without a primary for a ttl (~10 s); the leader's
    // switchover costs about as much as the switchover scenario.
    assert.ok(r.gap < 6, `writer gap ${r.gap.toFixed(1)} s: more than a switchover`);
  });

  it("6: full restart of every database host: same data, a leader, writes resume", async () => {
    check(await SCENARIOS["full-restart"](c));
  });
});
