// A standby cluster on the local hosts (issue #11, item 6): stack local-standby (sb1-sb3,
// 10.213.0.50-.52) follows stack local through its floating address. Rows committed on the
// primary cluster reach the standby, which takes no writes; it keeps following across a
// switchover under write load (the primary's permanent slot moves with the leader); with its
// link to the primary cut, it reads the WAL from the primary's repository; promoted by
// its stack config (standby.promoted: true, applied), it takes writes with the primary's
// passwords and holds every row acknowledged before, while the primary cluster is untouched.
import { strict as assert } from "assert";
import { Client } from "pg";
import { failedSteps, requireHosts, settledCluster } from "../support/hostsLayer";
import { loadCluster, patroniCluster, type LocalCluster } from "../../local/cluster";
import { CHAOS_TABLE, ensureChaosTable, healthy, leader, WriteLoad } from "../../local/chaos";
import { apply, bringUp } from "../../local/up";
import { removeNode } from "../../local/hosts";
import { ssh } from "../../local/ssh";
import { shq } from "../../roles/quote";
import { PG_DATA, ports } from "../../model/identities";
import { standbySlot } from "../../roles/standby";
import { LIBPQ_SERVICE } from "../../roles/patroni";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function on(c: LocalCluster, host: string, command: string): Promise<string> {
  const r = await ssh(c.ssh, c.targets[host], command, "", 120_000);
  assert.equal(r.code, 0, `${host}: ${command}: exit ${r.code}: ${r.out.trim().split("\n").slice(-6).join("\n")}`);
  return r.out.trim();
}
const psql = (c: LocalCluster, host: string, sql: string) => on(c, host, `cd / && runuser -u postgres -- psql -XAtq -d app -c ${shq(sql)}`);

/** A client of cluster `c` at its balancer's `port`, as its application user (TLS, verify-full). */
async function client(c: LocalCluster, port: number): Promise<Client> {
  const balancer = c.spec.network.floatingAddress ?? c.hosts.find((h) => h.roles.includes("balancer"))!.address;
  const cl = new Client({
    host: balancer, port, user: c.spec.postgresql.appUser, password: c.secrets.appPassword, database: c.spec.postgresql.database,
    ssl: { ca: c.pki.caBundle, rejectUnauthorized: true }, connectionTimeoutMillis: 3000, query_timeout: 5000,
  });
  await cl.connect();
  return cl;
}

/** The ids of `run` the standby serves through its balancer's readers without pooler, once it has at least `want` (bounded wait). */
async function idsOnStandby(sb: LocalCluster, run: string, want: number, seconds = 30): Promise<Set<number>> {
  const end = Date.now() + seconds * 1000;
  let have = new Set<number>();
  let last = "";
  while (Date.now() < end) {
    try {
      const cl = await client(sb, ports.readersDirect);
      try {
        have = new Set((await cl.query(`select id from ${CHAOS_TABLE} where run = $1`, [run])).rows.map((r) => Number(r.id)));
      } finally { await cl.end(); }
      if (have.size >= want) return have;
    } catch (e) { last = (e as Error).message; }
    await sleep(500);
  }
  if (last && have.size === 0) throw new Error(`the standby could not be read through its balancer: ${last}`);
  return have;
}

/**
 * What the standby and the primary were doing, for a failure's message: the standby's WAL
 * receiver, how far it received and replayed, whether replay is paused, the tail of its
 * journal; the primary's archiver. Each part says "unknown: …" when it could not be read.
 */
async function replicationState(sb: LocalCluster, c: LocalCluster): Promise<string> {
  const read = (cl: LocalCluster, host: string, command: string) =>
    ssh(cl.ssh, cl.targets[host], command, "", 30_000).then((r) => (r.code === 0 ? r.out.trim() : `unknown: exit ${r.code}: ${r.out.trim().slice(-300)}`), (e) => `unknown: ${(e as Error).message}`);
  const sql = (cl: LocalCluster, host: string, q: string) => read(cl, host, `cd / && runuser -u postgres -- psql -XAtq -d app -c ${shq(q)} 2>&1`);
  const primary = await leader(c).catch(() => "");
  const parts = [
    `sb1 receiver: ${await sql(sb, "sb1", "select coalesce((select status || ' tli ' || received_tli || ' ' || coalesce(sender_host, '-') from pg_stat_wal_receiver), 'none')")}`,
    // A WAL receiver process without a pg_stat_wal_receiver row is still connecting.
    `sb1 WAL receiver process: ${await read(sb, "sb1", "pgrep -fa 'postgres: .*walreceive[r]' || echo none")}`,
    `sb1 received/replayed: ${await sql(sb, "sb1", "select coalesce(pg_last_wal_receive_lsn()::text, '-') || ' / ' || coalesce(pg_last_wal_replay_lsn()::text, '-') || ' pause ' || pg_get_wal_replay_pause_state() || ' last replayed xact ' || coalesce(pg_last_xact_replay_timestamp()::text, '-')")}`,
    primary ? `${primary} (leader) lsn ${await sql(c, primary, "select pg_current_wal_lsn() || ' ' || pg_walfile_name(pg_current_wal_lsn())")}; archiver: ${await sql(c, primary, "select archived_count || ' archived, last ' || coalesce(last_archived_wal, '-') || ' at ' || coalesce(last_archived_time::text, '-') || '; ' || failed_count || ' failed, last ' || coalesce(last_failed_wal, '-') || ' at ' || coalesce(last_failed_time::text, '-') from pg_stat_archiver")}` : "primary leader: unknown",
    primary ? `${primary} slot ${standbySlot(sb.spec.clusterName)}: ${await sql(c, primary, `select coalesce((select active || ' pid ' || coalesce(active_pid::text, '-') || ' restart_lsn ' || coalesce(restart_lsn::text, '-') from pg_replication_slots where slot_name = '${standbySlot(sb.spec.clusterName)}'), 'absent')`)}` : "",
    // PostgreSQL's, Patroni's and pgBackRest's lines, without Patroni's every-loop "no action";
    // whatever follows the word "password" masked (a logged statement could carry one).
    `sb1 journal (patroni, last 80 lines):\n${await read(sb, "sb1", "journalctl -u patroni --no-pager -o short-precise -n 600 | grep -v -e 'INFO: no action' | tail -n 80 | sed -E 's/(password)[^,)]*/\\1 ****/Ig'")}`,
  ];
  return parts.join("\n");
}

describe("standby cluster on the local hosts (stack local-standby follows stack local)", function () {
  this.timeout(30 * 60_000);
  let c: LocalCluster;
  let sb: LocalCluster;
  const logs: string[] = [];
  const log = (l: string) => { logs.push(l); };

  before(async function () {
    requireHosts(this);
    c = await settledCluster("standby");
    await ensureChaosTable(c);
    sb = await loadCluster("local-standby");
    const t0 = Date.now();
    const r = await bringUp(sb, log);
    if (r.code !== 0) for (const l of logs.slice(-40)) console.log(`      | ${l}`);
    assert.equal(r.code, 0, `the standby stack's apply: ${failedSteps(r)}`);
    console.log(`      standby cluster ${sb.spec.clusterName} (${sb.hosts.map((h) => h.name).join(", ")}) built and applied in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  });

  afterEach(function () {
    if (this.currentTest?.state === "failed") for (const l of logs.slice(-60)) console.log(`      | ${l}`);
    logs.length = 0;
  });

  after(async () => {
    // The standby's hosts go (the machine has other suites to run); the primary keeps its slot
    // for it, inactive, as a primary whose standby is down does (README: Standby cluster).
    if (sb) for (const h of sb.hosts) await removeNode(h.name, () => {});
  });

  it("streams from the primary cluster: its rows reach the standby's readers within seconds, on the primary's slot, and the standby takes no writes", async () => {
    const members = await healthy(sb);
    assert.deepEqual(members.map((m) => [m.name, m.role]), [["sb1", "standby_leader"]]);
    const run = `standby-${Date.now()}`;
    const primary = await leader(c);
    const t0 = Date.now();
    await psql(c, primary, `insert into ${CHAOS_TABLE}(run, id) select '${run}', g from generate_series(1, 20) g`);
    const have = await idsOnStandby(sb, run, 20);
    assert.equal(have.size, 20, `the standby serves ${have.size} of 20 rows committed on the primary`);
    console.log(`      20 rows committed on ${primary} readable through the standby's balancer after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    // Through the primary's floating address, on the slot the primary keeps for it.
    const receiver = await psql(sb, "sb1", "select status || ' ' || sender_host || ':' || sender_port || ' ' || coalesce(slot_name, '-') from pg_stat_wal_receiver");
    assert.equal(receiver, `streaming ${c.spec.network.floatingAddress}:${ports.writerDirect} ${standbySlot(sb.spec.clusterName)}`);
    assert.equal(await psql(c, primary, `select active from pg_replication_slots where slot_name = '${standbySlot(sb.spec.clusterName)}'`), "t");
    // No writer behind the standby's balancer; on the node itself, read-only.
    const refused = await client(sb, ports.writerDirect).then(async (cl) => { try { await cl.query("select 1"); return "answered"; } finally { await cl.end(); } }, (e) => (e as Error).message);
    assert.notEqual(refused, "answered", "the standby's writer port has a server");
    const ro = await on(sb, "sb1", `cd / && runuser -u postgres -- psql -XAtq -d app -c ${shq(`insert into ${CHAOS_TABLE}(run, id) values ('${run}', 99)`)} 2>&1 || true`);
    assert.match(ro, /read-only transaction/);
  });

  it("keeps following across a switchover of the primary cluster under write load: every acknowledged row reaches it", async () => {
    const run = `standby-switch-${Date.now()}`;
    const load = new WriteLoad(c, run).start();
    await sleep(2000);
    const was = await leader(c);
    const candidate = (await healthy(c)).find((m) => m.role === "sync_standby")!.name;
    await on(c, was, `patronictl -c /etc/patroni/config.yml switchover --leader ${shq(was)} --candidate ${shq(candidate)} --force`);
    const end = Date.now() + 60_000;
    while ((await leader(c).catch(() => "")) !== candidate && Date.now() < end) await sleep(500);
    await sleep(3000);
    await load.stop();
    const acked = load.acked.map((a) => a.id);
    assert.ok(acked.length > 40, `only ${acked.length} writes acknowledged`);
    const t0 = Date.now();
    const have = await idsOnStandby(sb, run, new Set(acked).size, 60);
    const missing = acked.filter((id) => !have.has(id));
    assert.equal(missing.length, 0, `the standby lacks ${missing.length} of ${acked.length} acknowledged rows (first: ${missing.slice(0, 5).join(", ")})`);
    assert.equal(await psql(c, candidate, `select active from pg_replication_slots where slot_name = '${standbySlot(sb.spec.clusterName)}'`), "t", `the new leader ${candidate}'s slot for the standby is in use`);
    // The WAL receiver is on the new primary's timeline (Patroni reports a standby's timeline
    // from its last restartpoint, which may lag).
    const primaryTimeline = String((await patroniCluster(c)).find((m) => m.role === "leader")!.timeline);
    let received = "";
    const until = Date.now() + 30_000;
    while ((received = await psql(sb, "sb1", "select received_tli from pg_stat_wal_receiver")) !== primaryTimeline && Date.now() < until) await sleep(500);
    const timelines = [primaryTimeline, received];
    assert.equal(timelines[1], timelines[0], `the standby receives the primary's new timeline (${timelines.join(" vs ")})`);
    console.log(`      switchover ${was} -> ${candidate}: ${acked.length} writes acknowledged, all on the standby ${((Date.now() - t0) / 1000).toFixed(1)} s after the load stopped; timeline ${timelines[1]}`);
  });

  it("falls back to the primary's repository when its link to the primary's entry drops every packet: rows archived meanwhile reach it from there within seconds, and it streams again once the link is back", async () => {
    const run = `standby-archive-${Date.now()}`;
    const table = "pgc_test_nostream";
    const since = (await on(sb, "sb1", "date -u '+%Y-%m-%d %H:%M:%S'")).trim();
    // A blackhole, as a region cut off looks: every packet between sb1 and the primary's entry
    // dropped both ways (no reset, so a new connection waits for an answer), then the WAL
    // receiver ended. Recovery tries the repository once, then starts a WAL receiver again,
    // whose connection now waits; the rows are written only after that, so they can reach the
    // standby only when that wait is bounded (tcp_user_timeout in pgcluster's libpq service) and
    // recovery turns to the repository again. (Unbounded, the kernel's SYN retries hold it about
    // 2 min; connect_timeout does not bound the WAL receiver's asynchronous connect.)
    const entry = `${c.spec.network.floatingAddress}`;
    await on(sb, "sb1", [
      `nft add table inet ${table}`,
      `nft add chain inet ${table} output '{ type filter hook output priority 0; }'`,
      `nft add rule inet ${table} output ip daddr ${entry} tcp dport ${ports.writerDirect} drop`,
      `nft add chain inet ${table} input '{ type filter hook input priority -10; }'`,
      `nft add rule inet ${table} input ip saddr ${entry} tcp sport ${ports.writerDirect} drop`,
      // (The bracket keeps pkill from matching this very command line.)
      "{ pkill -TERM -f 'postgres: .*walreceive[r]' || true; }",
    ].join(" && "));
    const cutAt = Date.now();
    let cutFor = 0;
    try {
      // Until a new WAL receiver is waiting on its connection: its process is there, while
      // pg_stat_wal_receiver shows no row before it is connected (bounded: recovery starts one
      // within wal_retrieve_retry_interval, 5 s).
      const connecting = await on(sb, "sb1", "for i in $(seq 1 80); do pgrep -f 'postgres: .*walreceive[r]' >/dev/null && [ -z \"$(runuser -u postgres -- psql -XAtq -c 'select pid from pg_stat_wal_receiver' 2>/dev/null)\" ] && { echo connecting; exit 0; }; sleep 0.25; done; echo none");
      assert.equal(connecting, "connecting", "no WAL receiver was waiting on its connection within 20 s of the cut");
      // The postmaster's environment, which its WAL receiver inherits.
      const environ = await on(sb, "sb1", `tr '\\0' '\\n' < /proc/$(head -n1 ${PG_DATA}/postmaster.pid)/environ | grep '^PGSERVICE=' || echo none`);
      assert.equal(environ, `PGSERVICE=${LIBPQ_SERVICE.name}`, "PostgreSQL's environment names pgcluster's libpq service");
      const primary = await leader(c);
      await psql(c, primary, `insert into ${CHAOS_TABLE}(run, id) select '${run}', g from generate_series(1, 10) g`);
      await psql(c, primary, "select pg_switch_wal()");
      const written = Date.now();
      const have = await idsOnStandby(sb, run, 10, 60);
      if (have.size !== 10) console.log(`      the standby's state:\n${(await replicationState(sb, c)).replace(/^/gm, "        ")}`);
      assert.equal(have.size, 10, `the standby serves ${have.size} of 10 rows archived while it could not stream`);
      const seconds = (Date.now() - written) / 1000;
      const receiver = await psql(sb, "sb1", "select coalesce((select status from pg_stat_wal_receiver), 'none')");
      const restored = await on(sb, "sb1", `journalctl -u patroni --since ${shq(since)} --no-pager -o cat | grep -c 'restored log file .* from archive' || true`);
      assert.ok(Number(restored) > 0, "no segment was restored from the repository (archive-get) on sb1");
      const gaveUp = await on(sb, "sb1", `journalctl -u patroni --since ${shq(since)} --no-pager -o cat | grep -c -E 'could not connect to the primary server: .*(timed out|timeout expired)' || true`);
      assert.ok(Number(gaveUp) > 0, "no WAL receiver gave up its connection (timed out) while the link was cut");
      console.log(`      link to ${entry}:${ports.writerDirect} dropping packets: the 10 rows arrived ${seconds.toFixed(1)} s after they were written (${restored} segments restored from the primary's repository, ${gaveUp} WAL receiver connections given up; receiver now: ${receiver}; ${environ})`);
    } finally {
      await on(sb, "sb1", `nft delete table inet ${table} 2>/dev/null || true`);
      cutFor = Date.now() - cutAt;
    }
    // Streaming again once the link is back. The primary's walsender of the cut connection may
    // still hold the slot ("active for PID", seen) until it notices, at the latest after
    // wal_sender_timeout (60 s) without a reply.
    const t0 = Date.now();
    const end = t0 + 90_000;
    let status = "";
    while ((status = await psql(sb, "sb1", "select coalesce((select status from pg_stat_wal_receiver where sender_host is not null and last_msg_receipt_time > now() - interval '5 seconds'), 'none')")) !== "streaming" && Date.now() < end) await sleep(1000);
    assert.equal(status, "streaming", "the standby streams again after the link is back");
    console.log(`      streaming again ${((Date.now() - t0) / 1000).toFixed(1)} s after the link came back (it was cut for ${(cutFor / 1000).toFixed(1)} s)`);
  });

  it("promoted by its stack config (standby.promoted: true, applied): takes writes with the primary's app password and holds every earlier row; the primary cluster is untouched", async () => {
    const run = `standby-promote-${Date.now()}`;
    const primary = await leader(c);
    await psql(c, primary, `insert into ${CHAOS_TABLE}(run, id) select '${run}', g from generate_series(1, 10) g`);
    const received = (await idsOnStandby(sb, run, 10)).size;
    if (received !== 10) console.log(`      the standby's state:\n${(await replicationState(sb, c)).replace(/^/gm, "        ")}`);
    assert.equal(received, 10, "the standby did not receive the rows before the promotion");
    // The standby is on the primary's timeline (Patroni may report an older one for a standby).
    const before = (await patroniCluster(c)).find((m) => m.role === "leader")!.timeline!;
    const promoted = await loadCluster("local-standby", { standby: { promoted: true } });
    const t0 = Date.now();
    const r = await apply(promoted, log);
    assert.equal(r.code, 0, `the promotion's apply: ${failedSteps(r)}`);
    const members = await healthy(promoted);
    const seconds = (Date.now() - t0) / 1000;
    assert.deepEqual(members.map((m) => [m.name, m.role]), [["sb1", "leader"]]);
    // The timeline it writes on now (pg_control's checkpoint may still be the last restartpoint's).
    const after = parseInt(await psql(promoted, "sb1", "select substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"), 16);
    assert.ok(after > before, `promotion starts a new timeline (${after}; the primary's is ${before})`);
    const cl = await client(promoted, ports.writer);
    try {
      await cl.query(`insert into ${CHAOS_TABLE}(run, id) values ($1, 11)`, [run]);
      const n = Number((await cl.query(`select count(*) as n from ${CHAOS_TABLE} where run = $1`, [run])).rows[0].n);
      assert.equal(n, 11, `after promotion: ${n} of the 10 rows replicated before plus the 1 written after`);
    } finally { await cl.end(); }
    assert.equal(promoted.secrets.appPassword, c.secrets.appPassword, "the standby's application password is the primary's");
    // The primary goes on: healthy, writable, its slot for the standby now unused.
    await healthy(c);
    assert.equal(await psql(c, await leader(c), `select active from pg_replication_slots where slot_name = '${standbySlot(sb.spec.clusterName)}'`), "f");
    const w = new WriteLoad(c, `${run}-primary`).start();
    await sleep(1500);
    await w.stop();
    assert.ok(w.acked.length > 5 && w.failures === 0, `the primary after the promotion: ${w.acked.length} writes acknowledged, ${w.failures} failed`);
    console.log(`      promoted in ${seconds.toFixed(1)} s (apply to a healthy leader on timeline ${after}, the primary's ${before}); writable with the primary's password; the primary cluster unaffected`);
  });
});
