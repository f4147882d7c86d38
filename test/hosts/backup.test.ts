// Backups on the real local cluster (issue #11): WAL archiving into the backup host's encrypted
// repository keeps working after a switchover (a segment of the new timeline, read back from the
// repository on another node, equals the primary's own), and a full backup taken during a write
// load fails no transaction and loses no row; the restore drill passes on the latest backup and
// fails on a tampered one.
import { strict as assert } from "assert";
import { requireHosts, settledCluster } from "../support/hostsLayer";
import { patroniCluster, type LocalCluster } from "../../local/cluster";
import { ensureChaosTable, healthy, leader, lostRows, WriteLoad } from "../../local/chaos";
import { describeDump, repositoryInfo, runDrill, runDump, takeBackup } from "../../local/backup";
import { DRILL, DUMP, TEXTFILE_DIR } from "../../model/identities";
import { apply } from "../../local/up";
import { ssh } from "../../local/ssh";
import { shq } from "../../roles/quote";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function on(c: LocalCluster, host: string, command: string, timeoutMs = 120_000): Promise<string> {
  const r = await ssh(c.ssh, c.targets[host], command, "", timeoutMs);
  assert.equal(r.code, 0, `${host}: ${command}: exit ${r.code}: ${r.out.trim().split("\n").slice(-6).join("\n")}`);
  return r.out.trim();
}

const psql = (c: LocalCluster, host: string, sql: string) => on(c, host, `cd / && runuser -u postgres -- psql -XAtqc ${shq(sql)}`);

async function until<T>(what: string, seconds: number, probe: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + seconds * 1000;
  let last: unknown;
  while (Date.now() < end) {
    try { const v = await probe(); if (v !== undefined) return v; } catch (e) { last = e; }
    await sleep(500);
  }
  throw new Error(`timed out after ${seconds} s waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ""}`);
}

describe("backups on the local hosts (pgBackRest, backup host backup1)", function () {
  this.timeout(30 * 60_000);
  let c: LocalCluster;
  let repo: string;
  let stanza: string;

  before(async function () {
    requireHosts(this);
    c = await settledCluster("backups");
    repo = c.hosts.find((h) => h.roles.includes("backup"))!.name;
    stanza = c.spec.clusterName;
  });

  it("archives from the primary, and after a switchover from the new one, on its new timeline", async () => {
    await on(c, repo, `runuser -u postgres -- pgbackrest --stanza=${shq(stanza)} --log-level-console=warn check`);
    const before = await leader(c);
    const members = await healthy(c);
    const candidate = members.find((m) => m.role === "sync_standby")?.name ?? members.find((m) => m.name !== before)!.name;
    await on(c, before, `patronictl -c /etc/patroni/config.yml switchover --leader ${shq(before)} --candidate ${shq(candidate)} --force`);
    const after = await until(`${candidate} leading`, 60, async () => ((await leader(c)) === candidate ? candidate : undefined));
    const cluster = await healthy(c);
    const timeline = cluster.find((m) => m.name === after)!.timeline!;
    assert.ok(timeline > (members.find((m) => m.name === before)!.timeline ?? 0), "the switchover started a new timeline");

    // A segment switch on the new primary: the completed segment must reach the repository.
    const segment = await psql(c, after, "select pg_walfile_name(pg_switch_wal())");
    assert.equal(parseInt(segment.slice(0, 8), 16), timeline, `segment ${segment} is on timeline ${timeline}`);
    const t0 = Date.now();
    await until(`${segment} archived by ${after}`, 60, async () => {
      const last = await psql(c, after, "select coalesce(last_archived_wal, '') from pg_stat_archiver");
      return last >= segment ? last : undefined;
    });
    console.log(`      ${after} (timeline ${timeline}) archived ${segment} ${((Date.now() - t0) / 1000).toFixed(1)} s after the switch`);
    // Read back from the repository on a third node (TLS to the backup host, decrypted there).
    const other = cluster.find((m) => m.name !== after)!.name;
    const fetched = await on(c, other, `f=$(mktemp -u /tmp/pgc-seg.XXXXXX) && runuser -u postgres -- pgbackrest --stanza=${shq(stanza)} --log-level-console=warn archive-get ${shq(segment)} "$f" && sha256sum <"$f" && rm -f "$f"`);
    const original = await on(c, after, `sha256sum </var/lib/postgresql/15/main/pg_wal/${shq(segment)}`);
    assert.equal(fetched.split(" ")[0], original.split(" ")[0], `${segment} from the repository (on ${other}) equals ${after}'s own`);
    await on(c, repo, `runuser -u postgres -- pgbackrest --stanza=${shq(stanza)} --log-level-console=warn check`);
  });

  it("a full backup during a write load: taken from a standby, 0 failed transactions, every acknowledged row there", async () => {
    await ensureChaosTable(c);
    const run = `backup-${Date.now()}`;
    const load = new WriteLoad(c, run).start();
    await sleep(2000);
    const t0 = Date.now();
    await takeBackup(c, "full");
    const seconds = (Date.now() - t0) / 1000;
    await sleep(1000);
    await load.stop();
    assert.equal(load.failures, 0, `failed writes: ${load.errors.slice(0, 5).map((e) => e.message).join("; ")}`);
    assert.ok(load.acked.length >= 20, `only ${load.acked.length} writes acknowledged: the load proved nothing`);
    const info = await repositoryInfo(c);
    const newest = info.backups[info.backups.length - 1];
    assert.ok(newest, "the repository lists the backup");
    assert.equal(newest.type, "full");
    assert.ok(newest.start.getTime() >= Math.floor(t0 / 1000) * 1000 - 1000, `the newest backup (${newest.label}) started before this one was asked for`);
    const journal = await on(c, repo, `journalctl -u pgcluster-backup@full.service --since @${Math.floor(t0 / 1000)} --no-pager`);
    assert.match(journal, /replay on the standby reached/, "pgBackRest copied the files from a standby");
    assert.equal(await lostRows(c, run, load.acked.map((a) => a.id)), 0);
    console.log(`      full backup ${newest.label}: ${seconds.toFixed(1)} s, database ${(newest.size / 1048576).toFixed(1)} MB, stored ${(newest.repoSize / 1048576).toFixed(1)} MB; ${load.acked.length} writes acknowledged during it, 0 failed`);
  });

  it("the restore drill (npm run backup:verify): the latest backup and its WAL restored on the backup host, every table counted (a table of known rows exactly), pg_amcheck clean, recorded for monitoring, the copy removed", async () => {
    const rows = 1000 + Math.floor(Math.random() * 1000);
    const l = await leader(c);
    await psql(c, l, `create table if not exists pgc_drill_probe(id int primary key); truncate pgc_drill_probe; insert into pgc_drill_probe select generate_series(1, ${rows})`);
    await takeBackup(c, "incr");
    const newest = (await repositoryInfo(c)).backups.at(-1)!;
    const { result, output } = await runDrill(c);
    for (const line of output) console.log(`      ${line}`);
    assert.equal(result.result, "pass", `the drill failed: ${result.reason}`);
    assert.equal(result.backup, newest.label, "the drill restored the newest backup");
    assert.ok(result.recoveredTo, "the drill says up to when it recovered");
    const counts = (await on(c, repo, `cat ${shq(DRILL.dir)}/last-counts.tsv`)).split("\n").map((x) => x.split("\t"));
    assert.deepEqual(counts.find(([db, t]) => db === "postgres" && t === "public.pgc_drill_probe"), ["postgres", "public.pgc_drill_probe", String(rows)]);
    assert.ok(counts.some(([db]) => db === c.spec.postgresql.database), "the application database's tables were counted");
    assert.equal(result.tables, counts.length);
    const prom = await on(c, repo, `cat ${shq(TEXTFILE_DIR)}/pgcluster-restore-drill.prom`);
    assert.match(prom, new RegExp(`^pgcluster_restore_drill_success\\{stanza="${stanza}"\\} 1$`, "m"));
    assert.match(prom, new RegExp(`^pgcluster_restore_drill_timestamp_seconds\\{stanza="${stanza}"\\} ${result.finishedAt}$`, "m"));
    // Nothing of the copy is left: no directory, no server.
    assert.equal(await on(c, repo, `test -e ${shq(DRILL.dir)}/run && echo left || echo gone`), "gone");
    assert.equal(await on(c, repo, `pgrep -u postgres -x postgres >/dev/null && echo running || echo none`), "none");
    console.log(`      drill: ${result.seconds} s for backup ${result.backup} (recovered to ${result.recoveredTo}), ${result.tables} tables, ${result.rows} rows`);
  });

  it("a tampered backup fails the drill: it says why, records the failure for monitoring, and leaves no copy behind", async () => {
    const newest = (await repositoryInfo(c)).backups.at(-1)!;
    const dir = `/var/lib/pgbackrest/backup/${stanza}/${newest.label}/pg_data`;
    // The largest file of the newest backup: a stretch of it overwritten in place (same size).
    const victim = await on(c, repo, `find ${shq(dir)} -type f -size +4k -printf '%s %p\\n' | sort -n | tail -n 1 | cut -d' ' -f2-`);
    assert.ok(victim.startsWith(dir), `a file to tamper with in ${dir}: ${victim}`);
    const saved = "/root/pgc-drill-tamper.saved";
    await on(c, repo, `cp -p ${shq(victim)} ${saved} && dd if=/dev/urandom of=${shq(victim)} bs=1 seek=2048 count=512 conv=notrunc status=none`);
    try {
      const { result } = await runDrill(c);
      assert.equal(result.result, "fail", "the drill passed on a tampered backup");
      assert.match(result.reason ?? "", /pgbackrest restore of .* failed/);
      console.log(`      tampered ${victim.slice(dir.length + 1)}: drill failed with: ${result.reason}`);
      assert.match(await on(c, repo, `cat ${shq(TEXTFILE_DIR)}/pgcluster-restore-drill.prom`), new RegExp(`^pgcluster_restore_drill_success\\{stanza="${stanza}"\\} 0$`, "m"));
      assert.equal(await on(c, repo, `test -e ${shq(DRILL.dir)}/run && echo left || echo gone`), "gone");
    } finally {
      await on(c, repo, `cp -p ${saved} ${shq(victim)} && rm -f ${saved}`);
    }
  });

  it("the logical dump (npm run backup:dump): read from a standby by certificate, encrypted, and it holds the rows and the roles", async () => {
    await ensureChaosTable(c);
    const run = `dump-${Date.now()}`;
    const primary = await leader(c);
    await on(c, primary, `cd / && runuser -u postgres -- psql -XAtq -d app -c ${shq(`insert into pgc_chaos(run, id) select '${run}', g from generate_series(1, 20) g`)}`);
    // The dump reads a standby: wait until every one has the rows.
    for (const m of (await healthy(c)).filter((x) => x.role !== "leader"))
      await until(`${m.name} replaying the rows`, 30, async () => ((await on(c, m.name, `cd / && runuser -u postgres -- psql -XAtq -d app -c ${shq(`select count(*) from pgc_chaos where run = '${run}'`)}`)) === "20" ? true : undefined));
    const { result } = await runDump(c);
    assert.equal(result.result, "pass", `the dump failed: ${result.reason}`);
    assert.match(result.source ?? "", /\(standby\)$/, `read from ${result.source}`);
    assert.equal(result.files.length, 2);
    const dump = result.files.find((f) => f.endsWith(".dump.enc"))!;
    const globals = result.files.find((f) => f.startsWith("globals-"))!;
    // Plaintext never on the host's disk: decrypted here with the passphrase on stdin, piped on.
    const decrypt = (f: string) => `openssl enc -d -aes-256-cbc -pbkdf2 -iter 100000 -pass stdin -in ${shq(`${DUMP.dir}/${f}`)}`;
    const rows = await ssh(c.ssh, c.targets[repo], `cd / && ${decrypt(dump)} | runuser -u postgres -- pg_restore -a -t pgc_chaos -f - | grep -c ${shq(`^${run}\t`)}`, `${c.secrets.backupCipherPassphrase}\n`, 120_000);
    assert.equal(rows.out.trim(), "20", `rows of ${run} in the dump: ${rows.out.trim()}`);
    const roles = await ssh(c.ssh, c.targets[repo], `${decrypt(globals)} | grep -c '^CREATE ROLE'`, `${c.secrets.backupCipherPassphrase}\n`, 60_000);
    assert.ok(Number(roles.out.trim()) >= 5, `CREATE ROLE lines in the globals dump: ${roles.out.trim()}`);
    const noPasswords = await ssh(c.ssh, c.targets[repo], `${decrypt(globals)} | grep -c 'SCRAM-SHA-256' || true`, `${c.secrets.backupCipherPassphrase}\n`, 60_000);
    assert.equal(noPasswords.out.trim(), "0", "the roles' dump holds no password verifiers");
    const wrong = await ssh(c.ssh, c.targets[repo], `${decrypt(dump)} >/dev/null`, "not-the-passphrase\n", 60_000);
    assert.notEqual(wrong.code, 0, "a wrong passphrase decrypted the dump");
    assert.match(await on(c, repo, `cat ${shq(TEXTFILE_DIR)}/pgcluster-dump.prom`), new RegExp(`^pgcluster_dump_success\\{cluster="${c.spec.clusterName}"\\} 1$`, "m"));
    console.log(`      ${describeDump(result)}`);
  });

  it("leaves the cluster settled: healthy, and check mode finds nothing to change", async () => {
    await healthy(c);
    const check = await apply(c, () => {}, true);
    assert.equal(check.code, 0, check.outcomes.filter((o) => o.outcome !== "ok").map((o) => `${o.step.id}: ${o.result?.changed.join(", ") ?? o.reason}`).join("; "));
    assert.equal((await patroniCluster(c)).length, 3);
  });
});
