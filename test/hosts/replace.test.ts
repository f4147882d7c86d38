// Replace a dead node on the real local cluster (issue 13 item 5): pg3's host is destroyed
// (container and disk gone) under a write load through :5000, rebuilt empty under the same name
// (new SSH host keys, which the local stack generates and pins), and a plain re-apply brings it
// back: its etcd member is replaced (member remove + add, joined as existing), Patroni clones it
// as a replica; nothing acknowledged is lost, never two writable nodes, a re-apply changes nothing.
import { strict as assert } from "assert";
import { failedSteps, onNode, requireHosts, settledCluster } from "../support/hostsLayer";
import { patroniCluster, type LocalCluster } from "../../local/cluster";
import { apply, bringUpHosts, type ApplyReport } from "../../local/up";
import { ensureChaosTable, healthy, leader, lostRows, WriteLoad } from "../../local/chaos";
import { SplitBrainProbe } from "../../local/splitBrainProbe";
import { hostKey, nodeExists, removeNode } from "../../local/hosts";
import { ssh } from "../../local/ssh";
import { tlsDir } from "../../model/identities";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (l: string) => console.log(`      ${l}`);

const on = onNode;

interface EtcdMember { ID: number; name: string; peerURLs: string[]; clientURLs?: string[] }
async function etcdMembers(c: LocalCluster, via: string): Promise<EtcdMember[]> {
  const t = tlsDir.etcd;
  const out = await on(c, via, `ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 --cacert=${t}/ca.crt --cert=${t}/node.crt --key=${t}/node.key member list -w json`);
  return JSON.parse(out).members as EtcdMember[];
}
async function etcdHealthy(c: LocalCluster, via: string): Promise<number> {
  const t = tlsDir.etcd;
  const eps = c.hosts.filter((h) => h.roles.includes("etcd")).map((h) => `https://${h.address}:2379`).join(",");
  const r = await ssh(c.ssh, c.targets[via], `ETCDCTL_API=3 etcdctl --endpoints=${eps} --cacert=${t}/ca.crt --cert=${t}/node.crt --key=${t}/node.key endpoint health 2>&1`, "", 60_000);
  return (r.out.match(/is healthy/g) ?? []).length;
}

const failed = failedSteps;

describe("hosts layer: replace a dead node (rebuilt empty under the same name)", function () {
  this.timeout(30 * 60_000);
  let c: LocalCluster;

  before(async function () {
    requireHosts(this);
    c = await settledCluster("replace");
  });

  it("pg3 destroyed and rebuilt: a plain re-apply replaces its etcd member and it rejoins as a replica; nothing lost", async () => {
    const node = "pg3";
    const oldKey = hostKey(node);
    const oldMember = (await etcdMembers(c, "pg1")).find((m) => m.name === node)!;
    assert.ok(oldMember, "pg3 is an etcd member before");
    await ensureChaosTable(c);
    const run = `replace-${Date.now()}`;
    const leaderBefore = await leader(c);
    // pg3 is probed too (never a second writable node); it is unobservable while it has no host.
    const probe = new SplitBrainProbe(["pg1", "pg2", "pg3"]).start();
    const load = new WriteLoad(c, run).start();
    let r: ApplyReport | undefined;
    const lines: string[] = [];
    const t0 = Date.now();
    let destroyedAt = 0, rebuiltAt = 0;
    try {
      for (let i = 0; i < 60 && !load.flowing(); i++) await sleep(500);
      assert.ok(load.flowing(), "writes flowing before the fault");
      await removeNode(node, log);
      destroyedAt = Date.now();
      assert.ok(!nodeExists(node));
      // Dead for a while: the cluster runs on two members, the member key expires.
      await sleep(15_000);
      await bringUpHosts(c, log);
      rebuiltAt = Date.now();
      r = await apply(c, (l) => lines.push(l));
      await sleep(2000);
    } finally {
      await load.stop();
    }
    const report = await probe.stop();
    assert.ok(r, "the apply ran");
    assert.equal(r.code, 0, `re-apply after the rebuild: ${failed(r)}\n${lines.join("\n")}`);
    const acked = load.acked.map((a) => a.id);
    const members = await healthy(c, 300);
    const lost = await lostRows(c, run, acked);
    const newKey = hostKey(node);
    const etcd = await etcdMembers(c, "pg1");
    const newMember = etcd.find((m) => m.name === node);
    const changedEtcd = r.outcomes.find((o) => o.step.id === `${node}/etcd`)?.result?.changed ?? [];
    log(`destroyed pg3 (leader before: ${leaderBefore}, after: ${await leader(c)}); writer gap ${load.gapSince(t0).toFixed(1)} s, ${acked.length} acknowledged, ${load.failures} failed attempts, ${lost} lost; re-apply ${r.seconds.toFixed(1)} s (rebuild ${((rebuiltAt - destroyedAt) / 1000 - 15).toFixed(1)} s)`);
    log(`pg3 etcd step: ${changedEtcd.filter((x) => x.startsWith("etcd:")).join("; ")}`);
    log(`etcd member pg3: ${oldMember.ID.toString(16)} -> ${newMember?.ID.toString(16)}; host key changed: ${oldKey !== newKey}`);
    assert.equal(lost, 0, `${lost} acknowledged rows missing`);
    assert.equal(probe.seen.length, 0, "two writable nodes seen");
    for (const [n, g] of Object.entries(report.longestUnobserved)) if (n !== node) assert.ok(g.ms <= report.unobservedBoundMs, `${n} unobserved for ${g.ms} ms`);
    assert.notEqual(newKey, oldKey, "the rebuilt host has new SSH host keys (generated and pinned by the local stack)");
    assert.ok(changedEtcd.some((x) => x.startsWith("etcd:member pg3 replaced")), `pg3/etcd changed: ${changedEtcd.join(", ")}`);
    assert.equal(etcd.length, 3, JSON.stringify(etcd));
    assert.ok(newMember && newMember.ID !== oldMember.ID && (newMember.clientURLs ?? []).length > 0, `pg3 a started etcd member under a new ID: ${JSON.stringify(newMember)}`);
    assert.equal(await etcdHealthy(c, "pg1"), 3, "every etcd member healthy");
    const m = members.find((x) => x.name === node);
    assert.ok(m && m.role !== "leader", `pg3 rejoined as a replica: ${JSON.stringify(m)}`);
    assert.ok((await patroniCluster(c)).length === 3);
    const again = await apply(c, () => {});
    assert.equal(again.code, 0, failed(again));
    assert.equal(again.changed, 0, `re-apply changed: ${again.outcomes.filter((o) => o.outcome === "changed").map((o) => `${o.step.id}: ${o.result?.changed.join(", ")}`).join("; ")}`);
  });
});
