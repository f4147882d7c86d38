// Point-in-time restore on the real local cluster (issue #11), under write load where it matters:
// refusals change nothing; a restore to a time between two known writes, after a switchover
// during the load, brings back every acknowledged row before it and none after, on every node,
// with a healthy, writable cluster on a new timeline; a restore to `latest` after every database
// host is killed, removed and built again loses only rows acknowledged within archive_timeout of
// the loss, and none acknowledged before the last segment switch.
import { strict as assert } from "assert";
import { requireHosts, settledCluster } from "../support/hostsLayer";
import { loadCluster, patroniCluster, type LocalCluster } from "../../local/cluster";
import { CHAOS_TABLE, ensureChaosTable, healthy, leader, WriteLoad } from "../../local/chaos";
import { repositoryInfo, takeBackup } from "../../local/backup";
import { restoreCluster, RestoreRefused, RestoreStopped } from "../../local/restore";
import { reinitReplica } from "../../local/replicas";
import { parseRestoreTarget, restoreDoneStep, restoreSequence } from "../../roles/restore";
import { applyPlan, type StepOutcome } from "../../local/driver";
import type { Step } from "../../roles/types";
import { PG_DATA, ports } from "../../model/identities";
import { apply, bringUpHosts } from "../../local/up";
import { killNode, removeNode } from "../../local/hosts";
import { ssh } from "../../local/ssh";
import { shq } from "../../roles/quote";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function on(c: LocalCluster, host: string, command: string, timeoutMs = 120_000): Promise<string> {
  const r = await ssh(c.ssh, c.targets[host], command, "", timeoutMs);
  assert.equal(r.code, 0, `${host}: ${command}: exit ${r.code}: ${r.out.trim().split("\n").slice(-6).join("\n")}`);
  return r.out.trim();
}

const psql = (c: LocalCluster, host: string, sql: string) => on(c, host, `cd / && runuser -u postgres -- psql -XAtq -d app -c ${shq(sql)}`);
const dbNodes = (c: LocalCluster) => c.hosts.filter((h) => h.roles.includes("postgres")).map((h) => h.name);

/** The ids of `run` each node holds (read on the node itself, as the superuser). */
async function idsOn(c: LocalCluster, run: string): Promise<Record<string, Set<number>>> {
  const out: Record<string, Set<number>> = {};
  for (const n of dbNodes(c)) out[n] = new Set((await psql(c, n, `select id from ${CHAOS_TABLE} where run = '${run.replace(/'/g, "''")}'`)).split("\n").filter(Boolean).map(Number));
  return out;
}

/** Steps run in their order by the local driver, as the Pulumi program's Commands run them. */
function runSteps(c: LocalCluster, steps: Step[], secrets: string[]): Promise<StepOutcome[]> {
  return applyPlan({ cluster: c.plan.cluster, steps }, c.targets, c.ssh, { log: () => {}, secrets, stepTimeoutMs: 30 * 60_000 });
}

/** The primary's clock (all local hosts share this machine's), as ISO 8601 UTC with microseconds. */
async function serverNow(c: LocalCluster, host: string): Promise<string> {
  return psql(c, host, `select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`);
}

describe("point-in-time restore on the local hosts (npm run restore)", function () {
  this.timeout(30 * 60_000);
  let c: LocalCluster;
  const logs: string[] = [];
  const log = (l: string) => { logs.push(l); };

  before(async function () {
    requireHosts(this);
    c = await settledCluster("restore");
    await ensureChaosTable(c);
    // A backup of this suite's own: an earlier suite may have left the newest one tampered with.
    await takeBackup(c, "full");
  });

  afterEach(function () {
    if (this.currentTest?.state === "failed") for (const l of logs.slice(-60)) console.log(`      | ${l}`);
    logs.length = 0;
  });

  it("refuses, changing nothing: unconfirmed, a target before the oldest backup or in the future, a missing repository", async () => {
    const before = await healthy(c);
    const unconfirmed = await restoreCluster(c, { target: { kind: "latest" }, loseUnarchived: false, confirmed: false }, log).then(() => undefined, (e) => e);
    assert.ok(unconfirmed instanceof RestoreRefused && /not confirmed: nothing was changed.*--yes-destroy-data/.test(unconfirmed.message), String(unconfirmed));
    assert.ok(logs.some((l) => /this destroys:/.test(l)) && logs.some((l) => l.includes(PG_DATA)), "it says what it would destroy");
    const oldest = (await repositoryInfo(c)).backups[0].stop;
    for (const [to, why] of [[new Date(oldest.getTime() - 3600_000).toISOString(), /before the end of the oldest backup/], [new Date(Date.now() + 3600_000).toISOString(), /in the future/]] as const) {
      const e = await restoreCluster(c, { target: parseRestoreTarget(to), loseUnarchived: false, confirmed: true }, log).then(() => undefined, (x) => x);
      assert.ok(e instanceof RestoreRefused && why.test(e.message), `--to ${to}: ${e}`);
    }
    // The repository's directory moved away: the restore refuses, naming it, before touching a node.
    const repo = c.hosts.find((h) => h.roles.includes("backup"))!.name;
    await on(c, repo, "mv /var/lib/pgbackrest/backup /var/lib/pgbackrest/backup.moved-by-test");
    try {
      const e = await restoreCluster(c, { target: { kind: "latest" }, loseUnarchived: false, confirmed: true }, log).then(() => undefined, (x) => x);
      assert.ok(e instanceof Error, "a restore without a repository went ahead");
      console.log(`      missing repository: ${(e as Error).message.split("\n")[0]}`);
      assert.match((e as Error).message, /holds no backup|missing|backup1/);
    } finally {
      await on(c, repo, "mv /var/lib/pgbackrest/backup.moved-by-test /var/lib/pgbackrest/backup");
    }
    const after = await healthy(c);
    assert.deepEqual(after.map((m) => [m.name, m.role, m.timeline]), before.map((m) => [m.name, m.role, m.timeline]), "a refused restore changed the cluster");
  });

  it("to a time between two known writes, after a switchover under load: every row acknowledged before it and none after, on every node; healthy and writable after, on a new timeline", async () => {
    const run = `pitr-${Date.now()}`;
    const load = new WriteLoad(c, run).start();
    await sleep(3000);
    // Archiving goes on across a change of primary: rows from both sides of it must come back.
    const was = await leader(c);
    const members = await healthy(c);
    const candidate = members.find((m) => m.role === "sync_standby")?.name ?? members.find((m) => m.name !== was)!.name;
    await on(c, was, `patronictl -c /etc/patroni/config.yml switchover --leader ${shq(was)} --candidate ${shq(candidate)} --force`);
    const end = Date.now() + 60_000;
    while ((await leader(c)) !== candidate && Date.now() < end) await sleep(500);
    await sleep(3000);
    await load.stop();
    const acked = load.acked.map((a) => a.id);
    assert.ok(acked.length > 40, `only ${acked.length} writes acknowledged`);
    const primary = await leader(c);
    const target = await serverNow(c, primary);
    await sleep(1200);
    // After the target: these must not come back.
    const later = `${run}-after`;
    await psql(c, primary, `insert into ${CHAOS_TABLE}(run, id) select '${later}', g from generate_series(1, 5) g`);
    const timelineBefore = (await healthy(c)).find((m) => m.role === "leader")!.timeline!;

    const t0 = Date.now();
    await restoreCluster(c, { target: parseRestoreTarget(target), loseUnarchived: false, confirmed: true }, log);
    const seconds = (Date.now() - t0) / 1000;
    const cluster = await healthy(c);
    const timeline = cluster.find((m) => m.role === "leader")!.timeline!;
    console.log(`      ${acked.length} writes acknowledged (switchover ${was} -> ${candidate} among them); restored to ${target} in ${seconds.toFixed(1)} s; timeline ${timelineBefore} -> ${timeline}`);
    assert.ok(timeline > timelineBefore, `the restored cluster runs on a new timeline (${timeline}, was ${timelineBefore})`);

    const have = await idsOn(c, run);
    const gone = await idsOn(c, later);
    for (const n of dbNodes(c)) {
      const missing = acked.filter((id) => !have[n].has(id));
      assert.equal(missing.length, 0, `${n} lacks ${missing.length} acknowledged rows from before the target (first: ${missing.slice(0, 5).join(", ")})`);
      assert.equal(gone[n].size, 0, `${n} holds ${gone[n].size} rows written after the target`);
    }
    // Writable through the balancers, and the new timeline reaches the repository.
    const w = new WriteLoad(c, `${run}-post`).start();
    await sleep(1500);
    await w.stop();
    assert.ok(w.acked.length > 5 && w.failures === 0, `after the restore: ${w.acked.length} writes acknowledged, ${w.failures} failed (${w.errors.slice(0, 2).map((e) => e.message).join("; ")})`);
    const repo = c.hosts.find((h) => h.roles.includes("backup"))!.name;
    await on(c, repo, `runuser -u postgres -- pgbackrest --stanza=${shq(c.spec.clusterName)} --log-level-console=warn check`);
    const walMax = (await repositoryInfo(c)).walMax ?? "";
    assert.equal(parseInt(walMax.slice(0, 8), 16), timeline, `the archive's newest segment (${walMax}) is on the new timeline ${timeline}`);
  });

  it("from the stack config (the Pulumi CLI's pgcluster:restore): the steps the Pulumi program registers, run in their order, restore to a time between two writes; the same id again is refused, changing nothing", async () => {
    const run = `config-${Date.now()}`;
    const primary = await leader(c);
    await psql(c, primary, `insert into ${CHAOS_TABLE}(run, id) select '${run}', g from generate_series(1, 10) g`);
    await sleep(1200);
    const target = await serverNow(c, primary);
    await sleep(1200);
    await psql(c, primary, `insert into ${CHAOS_TABLE}(run, id) select '${run}', g from generate_series(11, 20) g`);
    const id = `hosts-test-${Date.now()}`;
    const rc = await loadCluster("local", { restore: { to: target, id, confirm: c.spec.clusterName } });
    const ctx = { spec: rc.spec, hosts: rc.hosts, pki: rc.pki, secrets: rc.secrets };
    const secrets = Object.values(rc.secrets);
    const t0 = Date.now();
    const steps = restoreSequence(ctx);
    const out = await runSteps(rc, steps, secrets);
    assert.deepEqual(out.filter((o) => o.outcome === "failed").map((o) => `${o.step.id}: ${o.tail?.join(" | ")}`), []);
    // The plan again (the Pulumi program re-runs every plan Command after a restore), then the last step.
    const r = await apply(rc, log);
    assert.equal(r.code, 0, "the plan after the restore");
    const done = await runSteps(rc, [restoreDoneStep(ctx, [])!], secrets);
    assert.ok(done.every((o) => o.outcome === "changed"), "the restore's last step");
    const seconds = (Date.now() - t0) / 1000;
    await healthy(c);
    const have = await idsOn(c, run);
    for (const n of dbNodes(c)) assert.deepEqual([...have[n]].sort((a, b) => a - b), Array.from({ length: 10 }, (_, i) => i + 1), `${n}: the rows before ${target}, and none after`);
    console.log(`      restored to ${target} by the stack config's steps (${steps.length} + the plan + done) in ${seconds.toFixed(1)} s`);
    // Pulumi state lost, or the same id set again: the prepare step refuses, and nothing changes.
    const again = await runSteps(rc, restoreSequence(ctx), secrets);
    const prepare = again.find((o) => o.step.id.endsWith("-prepare"))!;
    assert.equal(prepare.outcome, "failed");
    assert.match(prepare.tail?.join(" ") ?? "", new RegExp(`restore ${id} finished already .*nothing was changed`));
    assert.ok(again.filter((o) => o.step !== prepare.step).every((o) => o.outcome === "skipped"), "nothing ran after the refused prepare");
    await healthy(c);
  });

  it("to latest while the leader cannot reach the repository: stops in phase stop, bounded, restoring nothing, and says why; with --lose-unarchived it completes without that WAL", async () => {
    // The restore node (the first database node) must reach the repository: the leader elsewhere.
    const first = dbNodes(c)[0];
    let was = await leader(c);
    if (was === first) {
      const to = (await healthy(c)).find((m) => m.name !== first && m.role === "sync_standby")?.name ?? dbNodes(c)[1];
      await on(c, was, `patronictl -c /etc/patroni/config.yml switchover --leader ${shq(was)} --candidate ${shq(to)} --force`);
      const end = Date.now() + 60_000;
      while ((await leader(c).catch(() => "")) !== to && Date.now() < end) await sleep(500);
      was = await leader(c);
    }
    assert.notEqual(was, first, "the leader moved off the restore node");
    const address = c.hosts.find((h) => h.name === was)!.address;
    const repo = c.hosts.find((h) => h.roles.includes("backup"))!.name;
    const kept = `kept-${Date.now()}`;
    const run = `unarchived-${Date.now()}`;
    // Committed first, then the segment switched (in one psql -c they would share a transaction,
    // and the commit record would land after the switch, in a segment not yet archived).
    await psql(c, was, `insert into ${CHAOS_TABLE}(run, id) select '${kept}', g from generate_series(1, 10) g`);
    await psql(c, was, "select pg_walfile_name(pg_switch_wal())");
    const end = Date.now() + 30_000;
    let ready = "";
    while ((ready = await psql(c, was, "select count(*) from pg_ls_archive_statusdir() where name like '%.ready'")) !== "0" && Date.now() < end) await sleep(500);
    assert.equal(ready, "0", `the rows written before the cut were not archived within 30 s (${ready} segments waiting)`);
    // Packets from the leader to the repository's TLS port dropped on the backup host (no
    // answer at all, the worst case for a client's timeouts), in a table of the test's own.
    const table = "pgc_test_unreachable";
    await on(c, repo, `nft add table inet ${table} && nft add chain inet ${table} input '{ type filter hook input priority -10; }' && nft add rule inet ${table} input ip saddr ${address} tcp dport ${ports.pgbackrest} drop`);
    try {
      // Acknowledged by the leader and its synchronous standby, but never archived.
      await psql(c, was, `insert into ${CHAOS_TABLE}(run, id) select '${run}', g from generate_series(1, 10) g`);
      const t0 = Date.now();
      const stopped = await restoreCluster(c, { target: { kind: "latest" }, loseUnarchived: false, confirmed: true }, log).then(() => undefined, (e) => e);
      const seconds = (Date.now() - t0) / 1000;
      assert.ok(stopped instanceof RestoreStopped, `the restore went ahead without archiving the leader's last WAL: ${stopped}`);
      assert.match((stopped as Error).message, /stopped in phase "stop" on .*run the same command again/s);
      assert.ok(logs.some((l) => /could not be archived .*--lose-unarchived/.test(l)), "it says the last WAL could not be archived and what to do");
      assert.ok(!logs.some((l) => /phase data/.test(l)), "nothing was restored");
      // pgBackRest's default timeouts held this beyond 600 s; archive-push's own now bound it.
      assert.ok(seconds < 300, `the stop phase took ${seconds.toFixed(0)} s against an unanswering repository`);
      console.log(`      repository unreachable from ${was}: stopped in ${seconds.toFixed(1)} s: ${(stopped as Error).message.split("\n")[0]}`);
      logs.length = 0;
      const t1 = Date.now();
      await restoreCluster(c, { target: { kind: "latest" }, loseUnarchived: true, confirmed: true }, log);
      await healthy(c);
      assert.ok(logs.some((l) => /could not be archived; going on without it \(--lose-unarchived\)/.test(l)), "it says what it went on without");
      const have = await idsOn(c, kept);
      const lost = await idsOn(c, run);
      for (const n of dbNodes(c)) {
        assert.equal(have[n].size, 10, `${n} holds ${have[n].size} of the 10 rows archived before the repository went away`);
        assert.equal(lost[n].size, 0, `${n} holds rows that were never archived (${lost[n].size}): the restore was not from the repository`);
      }
      console.log(`      --lose-unarchived: restored to latest in ${((Date.now() - t1) / 1000).toFixed(1)} s without ${was}'s unarchived WAL (the 10 rows written after the cut are gone, as said)`);
    } finally {
      await on(c, repo, `nft delete table inet ${table} 2>/dev/null || true`);
    }
  });

  it("to latest after every database host is destroyed and rebuilt: the apply on the new hosts refuses to archive into the repository and says to restore; only rows acknowledged within archive_timeout of the loss can be missing", async () => {
    const run = `loss-${Date.now()}`;
    const load = new WriteLoad(c, run).start();
    await sleep(4000);
    // A segment switch mid-load: every row acknowledged before it is in an archived segment.
    const switchedAt = Date.now();
    await psql(c, await leader(c), "select pg_switch_wal()");
    await sleep(4000);
    // The loss: every database host killed at once (no clean shutdown, so no final archiving)
    // and removed with its disk; then built again, empty, with new host keys.
    const lossAt = Date.now();
    for (const n of dbNodes(c)) killNode(n);
    await load.stop();
    for (const n of dbNodes(c)) await removeNode(n, log);
    const acked = load.acked.filter((a) => a.at <= lossAt);
    assert.ok(acked.length > 40, `only ${acked.length} writes acknowledged before the loss`);
    await bringUpHosts(c, log);
    const rebuilt = await apply(c, log);
    const stanza = rebuilt.outcomes.find((o) => o.step.id.endsWith("/stanza"))!;
    assert.equal(stanza.outcome, "failed", `the apply on the rebuilt hosts: ${stanza.step.id} ${stanza.outcome}`);
    assert.match((stanza.tail ?? []).join("\n"), /backups of another cluster .* npm run restore -- --stack 'local' --to latest --yes-destroy-data/);

    const t0 = Date.now();
    await restoreCluster(c, { target: { kind: "latest" }, loseUnarchived: false, confirmed: true }, log);
    const seconds = (Date.now() - t0) / 1000;
    assert.ok(logs.some((l) => /the running cluster .* is not the one in the repository/.test(l)), "the restore saw that the running cluster is a new one");
    await healthy(c);
    const have = await idsOn(c, run);
    const window = c.spec.backup.archiveTimeout * 1000;
    for (const n of dbNodes(c)) {
      const missing = acked.filter((a) => !have[n].has(a.id));
      const early = missing.filter((a) => a.at < lossAt - window);
      const beforeSwitch = missing.filter((a) => a.at < switchedAt);
      console.log(`      ${n}: ${missing.length} of ${acked.length} acknowledged rows missing${missing.length ? ` (acknowledged ${((lossAt - missing[0].at) / 1000).toFixed(1)} s or less before the loss)` : ""}`);
      assert.equal(beforeSwitch.length, 0, `${n} lacks ${beforeSwitch.length} rows acknowledged before the segment switch ${((lossAt - switchedAt) / 1000).toFixed(1)} s before the loss (archived WAL not replayed to its end)`);
      assert.equal(early.length, 0, `${n} lacks ${early.length} rows acknowledged more than archive_timeout (${c.spec.backup.archiveTimeout} s) before the loss`);
    }
    console.log(`      hosts rebuilt and applied in ${rebuilt.seconds.toFixed(1)} s; restored to latest in ${seconds.toFixed(1)} s`);
  });

  it("backup.replicasFrom: repository: a re-initialised replica is restored from the newest backup and streams; with the default, pg_basebackup from the leader", async () => {
    const fromRepo = await loadCluster("local", { backup: { replicasUseRepository: true, replicasFrom: "repository" } });
    try {
      const r = await apply(fromRepo, log);
      assert.equal(r.code, 0, "the apply switching replicasFrom to repository failed");
      const viaRepo = await reinitReplica(fromRepo, 600);
      console.log(`      ${viaRepo.node} re-initialised from the repository in ${viaRepo.seconds.toFixed(1)} s (Patroni: ${viaRepo.method})`);
      assert.equal(viaRepo.method, "pgbackrest");
    } finally {
      const back = await apply(c, log);
      assert.equal(back.code, 0, "the apply back to the stack's config failed");
    }
    const viaLeader = await reinitReplica(c, 600);
    console.log(`      ${viaLeader.node} re-initialised from the leader in ${viaLeader.seconds.toFixed(1)} s (Patroni: ${viaLeader.method})`);
    assert.equal(viaLeader.method, "basebackup");
  });

  it("leaves the cluster settled: healthy, and check mode finds nothing to change", async () => {
    await healthy(c);
    const check = await apply(c, () => {}, true);
    assert.equal(check.code, 0, check.outcomes.filter((o) => o.outcome !== "ok").map((o) => `${o.step.id}: ${o.result?.changed.join(", ") ?? o.reason}`).join("; "));
    assert.equal((await patroniCluster(c)).length, 3);
  });
});
