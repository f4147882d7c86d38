// The host firewall on the real local hosts: probes from network namespaces on the bridge (an
// allowed client at 10.213.0.201, an address allowed nowhere at 10.213.0.210) see exactly what the
// rules admit; the operator's machine keeps SSH and the service ports; a re-apply changes
// nothing; a ruleset that would lock the applying address out is refused with nothing loaded; a
// changed or removed table is drift that the next apply repairs; switching the firewall off and
// on again on the running cluster stalls no replication stream and fails no write.
import { strict as assert } from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { onlyRole, requireHosts, settledCluster } from "../support/hostsLayer";
import { ProbeNamespace, probeFromHere, CONNECT_TIMEOUT_MS, type ProbeResult } from "../support/netns";
import { stepScript } from "../../roles/script";
import { apply, type ApplyReport } from "../../local/up";
import { ssh } from "../../local/ssh";
import { healthy, ensureChaosTable, WriteLoad, CHAOS_TABLE } from "../../local/chaos";
import { loadSpec, patroniCluster, type LocalCluster } from "../../local/cluster";
import { compile } from "../../roles/compile";
import { remoteCommand } from "../../roles/transport";
import { ports } from "../../model/identities";
import { Client } from "pg";

describe("hosts layer: firewall", function () {
  this.timeout(20 * 60_000);
  let c: LocalCluster;
  let caFile: string;
  const allowed = new ProbeNamespace("10.213.0.201");
  const denied = new ProbeNamespace("10.213.0.210");
  const lines: string[] = [];
  const log = (l: string) => lines.push(l);
  const addr = (n: string) => c.targets[n].address;

  const on = async (node: string, cmd: string) => {
    const r = await ssh(c.ssh, c.targets[node], cmd, "", 120_000);
    assert.equal(r.code, 0, `${node}: ${cmd}: ${r.out}`);
    return r.out;
  };
  const applied = async (cluster: LocalCluster, check = false): Promise<ApplyReport> => {
    lines.length = 0;
    const r = await apply(cluster, log, check);
    assert.ok(r.code === 0 || (check && r.code === 3), `apply${check ? " (check)" : ""} exited ${r.code}:\n${lines.join("\n")}`);
    return r;
  };
  const changedSteps = (r: ApplyReport) => r.outcomes.filter((o) => o.outcome === "changed" || o.outcome === "drift").map((o) => `${o.step.id}: ${o.result!.changed.join(", ")}`);
  /** Probes in parallel; the table of results goes into the assertion message. */
  const probeAll = async (probes: [string, number, () => Promise<ProbeResult>][]) => {
    const rs = await Promise.all(probes.map(async ([h, p, f]) => ({ h, p, r: await f() })));
    const table = rs.map(({ h, p, r }) => `${h}:${p} ${r.state} (${r.detail})`).join("\n");
    return { get: (h: string, p: number) => rs.find((x) => x.h === h && x.p === p)!.r.state, table };
  };
  const tableOn = (node: string) => on(node, "nft list table inet pgcluster 2>&1 || true");

  before(async function () {
    requireHosts(this);
    c = await settledCluster("firewall");
    caFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "pgc-fw-ca-")), "ca.crt");
    fs.writeFileSync(caFile, c.pki.ca);
    allowed.create();
    denied.create();
  });

  after(() => {
    const left = [...allowed.remove(), ...denied.remove()];
    if (caFile) fs.rmSync(path.dirname(caFile), { recursive: true, force: true });
    if (left.length) throw new Error(`could not clean up: ${left.join(", ")} (remove them by hand: ip netns delete / ip link delete)`);
  });

  it("every host has our table (inbound policy drop) and the unit that loads it at boot, enabled and active", async () => {
    for (const h of c.hosts) {
      assert.match(await tableOn(h.name), /type filter hook input priority filter; policy drop;/, h.name);
      assert.equal((await on(h.name, "systemctl is-enabled pgcluster-firewall; systemctl is-active pgcluster-firewall")).trim(), "enabled\nactive", h.name);
    }
  });

  it("a re-apply changes nothing (0 changed steps), and check mode finds no drift", async () => {
    const again = await applied(c);
    assert.deepEqual(changedSteps(again), []);
    assert.equal(again.changed, 0);
    const check = await applied(c, true);
    assert.deepEqual(changedSteps(check), []);
  });

  it(`from 10.213.0.210 (allowed nowhere) every port of lb1 and pg1 is closed (no answer within ${CONNECT_TIMEOUT_MS} ms or refused)`, async () => {
    const r = await probeAll([
      ...[22, 5000, 5001, 5002, 8404].map((p) => ["lb1", p, () => denied.probe(addr("lb1"), p)] as [string, number, () => Promise<ProbeResult>]),
      ...[22, 2379, 2380, 5432, 6432, 8008].map((p) => ["pg1", p, () => denied.probe(addr("pg1"), p)] as [string, number, () => Promise<ProbeResult>]),
    ]);
    for (const [h, ps] of [["lb1", [22, 5000, 5001, 5002, 8404]], ["pg1", [22, 2379, 2380, 5432, 6432, 8008]]] as const)
      for (const p of ps) assert.equal(r.get(h, p), "closed", `${h}:${p} from .210\n${r.table}`);
  });

  it("from 10.213.0.201 (an allowed client) lb1:5000 serves PostgreSQL over verified TLS, 5001/5002 accept; SSH, stats and the nodes stay closed", async () => {
    const tcp = (h: string, p: number) => [h, p, () => allowed.probe(addr(h), p)] as [string, number, () => Promise<ProbeResult>];
    const r = await probeAll([
      ["lb1", 5000, () => allowed.probe(addr("lb1"), 5000, { pg: true, caFile })],
      tcp("lb1", 5001), tcp("lb1", 5002), tcp("lb1", 22), tcp("lb1", 8404),
      ...[22, 5432, 8008, 2379, 2380, 6432].map((p) => tcp("pg1", p)),
    ]);
    for (const [h, p, want] of [["lb1", 5000, "open"], ["lb1", 5001, "open"], ["lb1", 5002, "open"], ["lb1", 22, "closed"], ["lb1", 8404, "closed"],
      ["pg1", 22, "closed"], ["pg1", 5432, "closed"], ["pg1", 8008, "closed"], ["pg1", 2379, "closed"], ["pg1", 2380, "closed"], ["pg1", 6432, "closed"]] as const)
      assert.equal(r.get(h, p), want, `${h}:${p} from .201\n${r.table}`);
  });

  it("from this machine (network.adminCidrs) SSH reaches every host, and the nodes' service ports and HAProxy stats are open", async () => {
    for (const h of c.hosts) assert.equal((await on(h.name, "echo ssh-ok")).trim(), "ssh-ok");
    const probes: [string, number, () => Promise<ProbeResult>][] = [["lb1", 8404, () => probeFromHere(addr("lb1"), 8404)]];
    for (const n of ["pg1", "pg2", "pg3"]) for (const p of [2379, 2380, 5432, 6432, 8008]) probes.push([n, p, () => probeFromHere(addr(n), p)]);
    const r = await probeAll(probes);
    for (const [h, p] of probes) assert.equal(r.get(h, p), "open", `${h}:${p} from 10.213.0.1\n${r.table}`);
  });

  it("refuses a ruleset that would lock out the applying address (10.213.0.1), naming pgcluster:network.adminCidrs, and loads nothing", async () => {
    const spec = loadSpec("local", { network: { adminCidrs: ["10.213.0.200/30"] } });
    const step = compile(spec, c.hosts, c.pki, c.secrets).steps.find((s) => s.id === "pg3/firewall")!;
    const state = () => on("pg3", "nft list table inet pgcluster; sha256sum /etc/pgcluster/firewall.nft; systemctl show -p ActiveEnterTimestampMonotonic pgcluster-firewall");
    const before = await state();
    const r = await ssh(c.ssh, c.targets.pg3, remoteCommand("root"), stepScript(step), 120_000);
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /FAILED: refusing to load the firewall on pg3: it admits SSH \(port 22\) only from 10\.213\.0\.200\/30 \(pgcluster:network\.adminCidrs\), not from 10\.213\.0\.1, the address this apply connects from.*Nothing was loaded\./);
    assert.equal(await state(), before, "the loaded table, the file and the unit are as they were");
  });

  it("a hand-changed or removed table is drift on its host, and the next apply restores it", async () => {
    await on("pg2", "nft add rule inet pgcluster input tcp dport 9999 accept");
    await on("pg3", "nft delete table inet pgcluster");
    const check = await applied(c, true);
    const drift = changedSteps(check);
    assert.equal(check.code, 3);
    assert.deepEqual(drift.map((d) => d.split(":")[0]).sort(), ["pg2/firewall", "pg3/firewall"], drift.join("\n"));
    assert.match(drift.find((d) => d.startsWith("pg2/"))!, /firewall:table inet pgcluster \(differs from \/etc\/pgcluster\/firewall\.nft\)/);
    assert.match(drift.find((d) => d.startsWith("pg3/"))!, /firewall:table inet pgcluster \(not loaded\)/);
    await applied(c);
    assert.doesNotMatch(await tableOn("pg2"), /9999/);
    assert.match(await tableOn("pg3"), /policy drop/);
    assert.deepEqual(changedSteps(await applied(c, true)), []);
  });

  it("firewall.enabled false removes our table everywhere, and then 10.213.0.210 reaches pg1:5432 (the probes' control)", async () => {
    const specOff = loadSpec("local", { firewall: { enabled: false } });
    const off: LocalCluster = { ...c, spec: specOff, plan: compile(specOff, c.hosts, c.pki, c.secrets) };
    const r = await applied(off);
    assert.deepEqual(changedSteps(r).map((s) => s.split(":")[0]).sort(), c.hosts.map((h) => `${h.name}/firewall`).sort());
    for (const h of c.hosts) {
      assert.match(await tableOn(h.name), /No such file or directory|does not exist/, h.name);
      assert.match(await on(h.name, "systemctl is-enabled pgcluster-firewall 2>&1 || true"), /disabled|not-found|No such file/, h.name);
    }
    assert.deepEqual(changedSteps(await applied(off, true)), [], "off: no drift once the table is gone");
    const open = await denied.probe(addr("pg1"), 5432);
    assert.equal(open.state, "open", `pg1:5432 from .210 without the firewall: ${open.detail}`);
  });

  it("switched on again on the running cluster: a replication stream opened while it was off carries the next synchronous commit at once, and under a write load no write fails", async () => {
    await ensureChaosTable(c);
    await healthy(c);
    // A stream conntrack never saw: the replicas' WAL receivers reconnect while the firewall is
    // off (both: Patroni may make either one the synchronous standby once they are back).
    const replicas = (await patroniCluster(c)).filter((m) => m.role !== "leader").map((m) => m.name);
    const walReceiver = async (node: string) => (await on(node, `cd / && runuser -u postgres -- psql -XAtqc "select pid from pg_stat_wal_receiver where status = 'streaming'"`)).trim();
    const old: Record<string, string> = {};
    for (const r of replicas) {
      old[r] = await walReceiver(r);
      assert.match(old[r], /^\d+$/, `${r} streams`);
    }
    for (const r of replicas) await on(r, `kill -TERM ${old[r]}`);
    await healthy(c);
    // Bounded wait for a synchronous standby that streams over a new connection (the receiver
    // restarts after wal_retrieve_retry_interval, then Patroni names the standby in its next loop).
    let sync: string | undefined;
    let seen = "";
    for (const deadline = Date.now() + 30_000; !sync; await new Promise((r) => setTimeout(r, 500))) {
      const members = await patroniCluster(c);
      const standby = members.find((m) => m.role === "sync_standby")?.name;
      const fresh = standby ? await walReceiver(standby) : "";
      seen = `${members.map((m) => `${m.name} ${m.role} ${m.state}`).join(", ")}; receiver ${standby ?? "-"}: ${fresh || "none"}`;
      if (standby && /^\d+$/.test(fresh) && fresh !== old[standby]) sync = standby;
      else if (Date.now() > deadline) assert.fail(`no synchronous standby streaming over a new connection within 30 s (${seen})`);
    }

    const run = `firewall-first-load-${Date.now()}`;
    const cl = new Client({
      host: addr("lb1"), port: ports.writer, user: c.spec.postgresql.appUser, password: c.secrets.appPassword,
      database: c.spec.postgresql.database, ssl: { ca: c.pki.ca, rejectUnauthorized: true }, connectionTimeoutMillis: 5000,
    });
    await cl.connect();
    try {
      const insert = async (id: number) => { const t = Date.now(); await cl.query(`insert into ${CHAOS_TABLE}(run, id) values ($1, $2)`, [run, id]); return Date.now() - t; };
      await insert(1);
      // The standby's step alone, so that the next commit follows its load at once.
      const step = c.plan.steps.find((s) => s.id === `${sync}/firewall`)!;
      const r = await ssh(c.ssh, c.targets[sync], remoteCommand("root"), stepScript(step), 120_000);
      assert.equal(r.code, 0, r.out);
      const ms = await insert(2);
      console.log(`      synchronous commit right after ${sync}'s first load: ${ms} ms`);
      assert.ok(ms < 1500, `the commit after the load took ${ms} ms: the standby's replication stream stalled`);
      assert.match(r.out, /tracking the open connections for \d+ s before the rules apply/);
    } finally {
      await cl.end();
    }

    const load = new WriteLoad(c, `firewall-on-${Date.now()}`).start();
    await new Promise((r) => setTimeout(r, 2000));
    const t0 = Date.now();
    let report: ApplyReport | undefined;
    try {
      // The firewall steps alone: what is measured is their switch-on, not the CPU of the whole
      // plan's checks on this 2-core machine (the whole plan re-applies below: 0 changed).
      report = await applied(onlyRole(c, "firewall"));
      await new Promise((r) => setTimeout(r, 3000));
    } finally {
      await load.stop();
    }
    const gap = load.gapSince(t0);
    console.log(`      the other hosts switched on under load: ${load.acked.length} writes acknowledged, ${load.failures} failed, longest gap ${gap.toFixed(2)} s, apply ${report!.seconds.toFixed(1)} s`);
    assert.deepEqual(changedSteps(report!).map((s) => s.split(":")[0]).sort(), c.hosts.filter((h) => h.name !== sync).map((h) => `${h.name}/firewall`).sort());
    assert.equal(load.failures, 0, "no write failed");
    assert.ok(gap < 2, `longest gap between acknowledged writes ${gap.toFixed(2)} s`);
    for (const h of c.hosts) assert.match(await tableOn(h.name), /policy drop/, h.name);
    const closed = await denied.probe(addr("pg1"), 5432);
    assert.equal(closed.state, "closed", `pg1:5432 from .210 with the firewall again: ${closed.detail}`);
    assert.deepEqual(changedSteps(await applied(c)), [], "re-apply: 0 changed");
    await healthy(c);
  });
});
