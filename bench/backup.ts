// bench/backup: disaster-recovery figures on the local cluster (npm run local first), for a
// pgbench database of scale S (default 20, about 300 MB): backup throughput (a full backup,
// taken from a standby), the time a whole-cluster restore to `latest` takes from the command to
// a healthy cluster (the recovery time objective's main part), and a replica re-created from
// the leader (pg_basebackup) and from the repository (backup.replicasFrom: repository).
// The pgbench tables are dropped at the end. DESTRUCTIVE: it restores the local cluster.
// Usage: npm run bench:backup -- [scale]
import { loadCluster, type LocalCluster } from "../local/cluster";
import { repositoryInfo, takeBackup } from "../local/backup";
import { healthy, leader } from "../local/chaos";
import { restoreCluster } from "../local/restore";
import { reinitReplica } from "../local/replicas";
import { apply } from "../local/up";
import { ssh } from "../local/ssh";

const mb = (bytes: number) => bytes / 1024 / 1024;

async function onLeader(c: LocalCluster, command: string): Promise<string> {
  const node = await leader(c);
  const r = await ssh(c.ssh, c.targets[node], command, "", 3600_000);
  if (r.code !== 0) throw new Error(`${node}: ${command}: exit ${r.code}: ${r.out.trim().split("\n").slice(-4).join(" | ")}`);
  return r.out.trim();
}

async function main() {
  const scale = Number(process.argv[2] ?? 20);
  if (!Number.isInteger(scale) || scale < 1 || scale > 1000) throw new Error("scale: an integer from 1 to 1000");
  const quiet = () => {};
  const c = await loadCluster("local");
  await healthy(c);
  const rows: [string, string][] = [];

  let t = Date.now();
  await onLeader(c, `cd /tmp && runuser -u postgres -- pgbench -q -i -s ${scale} -d app 2>&1 | tail -n 1`);
  const dbBytes = Number(await onLeader(c, `cd /tmp && runuser -u postgres -- psql -XAtq -d app -c "select pg_database_size('app')"`));
  rows.push(["pgbench -i", `scale ${scale}: database app ${mb(dbBytes).toFixed(0)} MB, ${((Date.now() - t) / 1000).toFixed(1)} s`]);

  t = Date.now();
  await takeBackup(c, "full");
  let s = (Date.now() - t) / 1000;
  const newest = (await repositoryInfo(c)).backups.at(-1)!;
  rows.push(["full backup (from a standby)", `${s.toFixed(1)} s for ${mb(newest.size).toFixed(0)} MB (${(mb(newest.size) / s).toFixed(1)} MB/s), ${mb(newest.repoSize).toFixed(0)} MB stored (compressed, encrypted)`]);

  const viaLeader = await reinitReplica(c);
  rows.push([`replica from the leader (${viaLeader.method})`, `${viaLeader.seconds.toFixed(1)} s (${viaLeader.node}, request to streaming)`]);
  const fromRepo = await loadCluster("local", { backup: { replicasUseRepository: true, replicasFrom: "repository" } });
  if ((await apply(fromRepo, quiet)).code !== 0) throw new Error("the apply switching backup.replicasFrom to repository failed");
  try {
    const viaRepo = await reinitReplica(fromRepo);
    rows.push([`replica from the repository (${viaRepo.method})`, `${viaRepo.seconds.toFixed(1)} s (${viaRepo.node}, request to streaming)`]);
  } finally {
    if ((await apply(c, quiet)).code !== 0) throw new Error("the apply back to the stack's config failed");
  }

  t = Date.now();
  await restoreCluster(c, { target: { kind: "latest" }, loseUnarchived: false, confirmed: true }, quiet);
  await healthy(c);
  s = (Date.now() - t) / 1000;
  rows.push(["restore to latest (whole cluster)", `${s.toFixed(1)} s from the command to a healthy cluster (3 nodes, apply included)`]);

  await onLeader(c, `cd /tmp && runuser -u postgres -- psql -XAtq -d app -c 'drop table if exists pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history'`);
  console.log(`\nbackup benchmark, ${new Date().toISOString()}, local hosts (systemd-nspawn on this machine), pgbench scale ${scale}`);
  console.log("| what | measured |");
  console.log("|---|---|");
  for (const [k, v] of rows) console.log(`| ${k} | ${v} |`);
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
