// Rolling minor updates on the real local cluster (issue 13 item 4). Debian 12 carries
// postgresql-15 and haproxy in two versions each: bookworm's (older) and bookworm-security's
// (newer). The hosts are built on the newer; pinning the older (packages.versions) moves every
// host to it, then `npm run update` (packages.newest) brings them back to the newest — each time
// under the write load through :5000: one database node at a time, replicas first, the leader
// last after a switchover; nothing acknowledged lost, never two writable nodes.
import { strict as assert } from "assert";
import { failedSteps, onNode, requireHosts, settledCluster } from "../support/hostsLayer";
import { loadCluster, type LocalCluster } from "../../local/cluster";
import { apply, type ApplyReport } from "../../local/up";
import { ensureChaosTable, healthy, leader, lostRows, WriteLoad } from "../../local/chaos";
import { SplitBrainProbe } from "../../local/splitBrainProbe";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (l: string) => console.log(`      ${l}`);
const DB = ["pg1", "pg2", "pg3"];

const on = onNode;

const failed = failedSteps;

/** A package's versions in the mirror's lists, by the suite that carries each (apt-cache madison). */
async function versions(c: LocalCluster, pkg: string): Promise<{ older: string; newer: string }> {
  const out = await on(c, "pg1", `apt-cache madison ${pkg}`);
  const bySuite = (re: RegExp) => out.split("\n").filter((l) => re.test(l)).map((l) => l.split("|")[1].trim());
  const security = bySuite(/bookworm-security\/main/), release = bySuite(/ bookworm\/main/);
  assert.ok(security.length === 1 && release.length === 1 && security[0] !== release[0],
    `need one ${pkg} in bookworm and another in bookworm-security; apt-cache madison says:\n${out}`);
  return { older: release[0], newer: security[0] };
}

/** The version HAProxy runs (its stats socket), and the installed package's. */
async function haproxyOn(c: LocalCluster, lb: string): Promise<{ running: string; package: string }> {
  const out = await on(c, lb, `echo "show info" | socat -t 2 stdio unix-connect:/run/haproxy/admin.sock | sed -n 's/^Version: //p'; dpkg-query -W -f='\${Version}' haproxy`);
  const [running, pkg] = out.split("\n");
  return { running, package: pkg };
}

interface NodeFacts { package: string; server: string; startedAt: number }
async function facts(c: LocalCluster, node: string): Promise<NodeFacts> {
  const out = await on(c, node, `dpkg-query -W -f='\${Version}\\n' postgresql-15; cd /tmp && runuser -u postgres -- psql -XAtq -c "select current_setting('server_version') || '|' || extract(epoch from pg_postmaster_start_time())"`);
  const [pkg, row] = out.split("\n");
  const [server, started] = row.split("|");
  return { package: pkg, server, startedAt: Number(started) };
}

/** Applies `c` under the write load and the split-brain probe; judges the roll over the database nodes. */
async function rollTo(c: LocalCluster, want: string, wantHaproxy: string, what: string): Promise<void> {
  await ensureChaosTable(c);
  const before = Object.fromEntries(await Promise.all(DB.map(async (n) => [n, await facts(c, n)] as const)));
  const leaderBefore = await leader(c);
  const run = `update-${Date.now()}`;
  const probe = new SplitBrainProbe(DB).start();
  const load = new WriteLoad(c, run).start();
  const lines: string[] = [];
  let r: ApplyReport | undefined;
  const t0 = Date.now();
  try {
    for (let i = 0; i < 60 && !load.flowing(); i++) await sleep(500);
    assert.ok(load.flowing(), "writes flowing before the update");
    r = await apply(c, (l) => lines.push(l));
    await sleep(3000);
  } finally {
    await load.stop();
  }
  const report = await probe.stop();
  assert.ok(r);
  assert.equal(r.code, 0, `${what}: ${failed(r)}\n${lines.join("\n")}`);
  await healthy(c, 300);
  const acked = load.acked.map((a) => a.id);
  const lost = await lostRows(c, run, acked);
  const after = Object.fromEntries(await Promise.all(DB.map(async (n) => [n, await facts(c, n)] as const)));
  const order = [...DB].sort((a, b) => after[a].startedAt - after[b].startedAt);
  const leaderAfter = await leader(c);
  log(`${what}: ${DB.map((n) => `${n} ${before[n].server} -> ${after[n].server}`).join(", ")}; restarted in the order ${order.join(", ")}; leader ${leaderBefore} -> ${leaderAfter}`);
  log(`${what}: apply ${r.seconds.toFixed(1)} s; writer gap ${load.gapSince(t0).toFixed(1)} s, ${acked.length} acknowledged, ${load.failures} failed attempts, ${lost} lost; longest unobserved ${Math.max(...Object.values(report.longestUnobserved).map((g) => g.ms))} ms`);
  // Where writers waited (gaps over 1 s) and what failed, on the clock, against the steps' notes (switchovers).
  const clock = (ms: number) => new Date(ms).toISOString().slice(11, 23);
  const times = load.acked.filter((a) => a.at >= t0).map((a) => a.at);
  for (let i = 1; i < times.length; i++) if (times[i] - times[i - 1] > 1000) log(`${what}: writers waited ${((times[i] - times[i - 1]) / 1000).toFixed(1)} s from ${clock(times[i - 1])}`);
  for (const e of load.errors.slice(0, 5)) log(`${what}: failed attempt at ${clock(e.at)}: ${e.message.slice(0, 160)}`);
  for (const n of DB) {
    const notes = await on(c, n, `journalctl -q -t pgcluster -o short-iso-precise --since @${Math.floor(t0 / 1000)} | grep -E 'switchover|installed' || true`);
    for (const l of notes.split("\n").filter(Boolean).slice(0, 4)) log(`${what}: ${n}: ${l.slice(0, 200)}`);
  }
  assert.equal(lost, 0, `${lost} acknowledged rows missing`);
  assert.equal(probe.seen.length, 0, `two writable nodes seen: ${JSON.stringify(probe.seen.slice(0, 3))}`);
  for (const [n, g] of Object.entries(report.longestUnobserved)) assert.ok(g.ms <= report.unobservedBoundMs, `${n} unobserved for ${g.ms} ms (bound ${report.unobservedBoundMs})`);
  for (const n of DB) {
    assert.equal(after[n].package, want, `${n}: postgresql-15 package`);
    assert.ok(after[n].server.startsWith(want.split("-")[0] + " "), `${n} runs PostgreSQL ${after[n].server}, not ${want}: it was not restarted on the new binaries`);
    assert.ok(after[n].startedAt > before[n].startedAt, `${n} restarted`);
    const changed = r.outcomes.find((o) => o.step.id === `${n}/update`)?.result?.changed ?? [];
    assert.ok(changed.includes(`package:postgresql-15 ${before[n].package} -> ${want} (rolling update)`), `${n}/update says what it changed: ${changed.join(", ")}`);
  }
  // One at a time: each restart after the one before had come back (at least a few seconds apart).
  for (let i = 1; i < order.length; i++) assert.ok(after[order[i]].startedAt - after[order[i - 1]].startedAt >= 3, `restarts ${order[i - 1]} and ${order[i]} ${(after[order[i]].startedAt - after[order[i - 1]].startedAt).toFixed(1)} s apart`);
  assert.equal(order[order.length - 1], leaderBefore, `the leader (${leaderBefore}) restarts last`);
  assert.notEqual(leaderAfter, leaderBefore, "the leader handed over before its restart");
  assert.equal(await on(c, "backup1", `dpkg-query -W -f='\${Version}' postgresql-15`), want, "the backup host's PostgreSQL (the restore drill's) follows");
  // The balancers: the package, and the HAProxy that runs (its master re-executed the new binary on the reload).
  for (const lb of c.hosts.filter((h) => h.roles.includes("balancer")).map((h) => h.name)) {
    const h = await haproxyOn(c, lb);
    log(`${what}: ${lb} HAProxy package ${h.package}, running ${h.running}`);
    assert.deepEqual(h, { running: wantHaproxy, package: wantHaproxy }, `${lb}: HAProxy`);
  }
}

describe("hosts layer: rolling minor updates (PostgreSQL 15 from bookworm to bookworm-security)", function () {
  this.timeout(30 * 60_000);
  let c: LocalCluster;
  let v: { older: string; newer: string };
  let hv: { older: string; newer: string };

  before(async function () {
    requireHosts(this);
    c = await settledCluster("update");
    v = await versions(c, "postgresql-15");
    hv = await versions(c, "haproxy");
    log(`in the mirror: postgresql-15 ${v.older} (bookworm), ${v.newer} (bookworm-security); haproxy ${hv.older}, ${hv.newer}`);
  });

  after(async function () {
    // Whatever happened above, the hosts end on the stack file's own packages (the newest).
    if (!c) return;
    const back = await apply(await loadCluster("local", { packages: { newest: true } }), () => {});
    assert.equal(back.code, 0, failed(back));
  });

  it("pinned to the older versions (packages.versions postgresql, haproxy): every node moves to it in turn, leader last; the balancers reload; nothing lost", async () => {
    await rollTo(await loadCluster("local", { packages: { versions: { postgresql: v.older, haproxy: hv.older } } }), v.older, hv.older, "pin");
  });

  it("`npm run update` (packages.newest): every node to the newest in turn under load, leader last; nothing lost", async () => {
    await rollTo(await loadCluster("local", { packages: { newest: true } }), v.newer, hv.newer, "update");
  });

  it("a re-apply of the stack file changes nothing (no pin: the packages stay where they are)", async () => {
    const again = await apply(await loadCluster("local"), () => {});
    assert.equal(again.code, 0, failed(again));
    assert.equal(again.changed, 0, `re-apply changed: ${again.outcomes.filter((o) => o.outcome === "changed").map((o) => `${o.step.id}: ${o.result?.changed.join(", ")}`).join("; ")}`);
  });

  it("a pinned version the mirror does not have fails before anything changes, naming the key", async () => {
    const r = await apply(await loadCluster("local", { packages: { versions: { postgresql: "15.1-9+deb12u9" } } }), () => {});
    assert.notEqual(r.code, 0);
    const tails = r.outcomes.filter((o) => o.outcome === "failed").map((o) => (o.tail ?? []).join("\n")).join("\n");
    assert.match(tails, /packages\.versions: the mirror has no postgresql-15 version 15\.1-9\+deb12u9/);
    for (const n of DB) assert.equal((await facts(c, n)).package, v.newer, `${n} unchanged`);
  });
});
