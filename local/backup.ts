// Backups of a static inventory's cluster (issue #11): take one now on the backup host (the same
// systemd unit its timers start), and list what the repository holds.
import type { LocalCluster } from "./cluster";
import { ssh } from "./ssh";
import { shq } from "../roles/quote";
import { BACKUP_REPOSITORY, DRILL, DUMP } from "../model/identities";

export const BACKUP_TYPES = ["full", "diff", "incr"] as const;
export type BackupType = (typeof BACKUP_TYPES)[number];

export interface BackupEntry {
  label: string;
  type: string;
  start: Date;
  stop: Date;
  /** Bytes of the database at backup time, and stored in the repository (compressed, encrypted). */
  size: number;
  repoSize: number;
  walStart: string;
  walStop: string;
}

export interface RepositoryInfo {
  stanza: string;
  status: string;
  backups: BackupEntry[];
  /** The system identifier of the cluster the stanza holds now (its newest database history entry). */
  systemId?: string;
  /** The oldest and newest WAL segment in the archive. */
  walMin?: string;
  walMax?: string;
  /** When the newest archived segment reached the repository: every commit in it is older. */
  walMaxArchivedAt?: Date;
}

function backupHost(c: LocalCluster) {
  if (!c.spec.backup.enabled) throw new Error(`stack ${c.spec.stack}: backup.enabled is false; nothing is backed up`);
  const h = c.hosts.find((x) => x.roles.includes("backup"));
  if (!h) throw new Error(`stack ${c.spec.stack}: no host with role backup`);
  return h;
}

/** Runs `command` on the backup host; fails with its output's tail. */
async function onBackupHost(c: LocalCluster, command: string, timeoutMs: number): Promise<string> {
  const h = backupHost(c);
  const r = await ssh(c.ssh, c.targets[h.name], command, "", timeoutMs);
  if (r.code !== 0) throw new Error(`${h.name}: ${command.split(" ").slice(0, 4).join(" ")} … exited ${r.code}: ${r.out.trim().split("\n").slice(-8).join("\n")}`);
  return r.out;
}

/** One backup now, through the unit the timers start (so the same user, options and logs); blocks until it ends. */
export async function takeBackup(c: LocalCluster, type: BackupType): Promise<void> {
  if (!(BACKUP_TYPES as readonly string[]).includes(type)) throw new Error(`--type ${type}: use ${BACKUP_TYPES.join(", ")}`);
  const unit = `pgcluster-backup@${type}.service`;
  try {
    await onBackupHost(c, `systemctl start ${shq(unit)}`, 6 * 3600_000);
  } catch (e) {
    const journal = await ssh(c.ssh, c.targets[backupHost(c).name], `journalctl -u ${shq(unit)} -n 20 --no-pager`, "", 30_000);
    throw new Error(`${(e as Error).message}\n${journal.out.trim()}`);
  }
}

export async function repositoryInfo(c: LocalCluster): Promise<RepositoryInfo> {
  const stanza = c.spec.clusterName;
  const out = await onBackupHost(c, `runuser -u postgres -- pgbackrest --stanza=${shq(stanza)} --log-level-console=error info --output=json`, 120_000);
  const [s] = JSON.parse(out) as any[];
  const archive = (s.archive ?? []).at(-1);
  // The newest segment file's time in the repository (pgBackRest names it <segment>-<sha1>[.gz]).
  const newest = archive?.max
    ? await onBackupHost(c, `find ${shq(`${BACKUP_REPOSITORY}/archive/${stanza}`)} -type f -name ${shq(`${archive.max}-*`)} -printf '%T@\\n' | sort -n | tail -n 1`, 60_000).catch(() => "")
    : "";
  return {
    stanza,
    status: s.status.message,
    systemId: systemIdOf(out),
    walMin: archive?.min ?? undefined,
    walMax: archive?.max ?? undefined,
    walMaxArchivedAt: newest.trim() ? new Date(Number(newest.trim()) * 1000) : undefined,
    backups: (s.backup ?? []).map((b: any) => ({
      label: b.label, type: b.type, start: new Date(b.timestamp.start * 1000), stop: new Date(b.timestamp.stop * 1000),
      size: b.info.size, repoSize: b.info.repository.delta ?? b.info.repository.size, walStart: b.archive.start, walStop: b.archive.stop,
    })),
  };
}

/**
 * The stanza's current system identifier (its newest "db" entry), read from pgBackRest's JSON
 * text: it is a 64-bit number, which JSON.parse would round (7713075608024268383 becomes
 * 7713075608024269000).
 */
export function systemIdOf(infoJson: string): string | undefined {
  const db = /"db"\s*:\s*\[([^\]]*)\]/.exec(infoJson)?.[1] ?? "";
  return [...db.matchAll(/"system-id"\s*:\s*"?(\d+)"?/g)].at(-1)?.[1];
}

const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MB`;

/** The repository as lines: each backup with its sizes and WAL range, and the restorable window. */
export function describeRepository(info: RepositoryInfo): string[] {
  const lines = [`stanza ${info.stanza}: ${info.status}; WAL archive ${info.walMin ?? "-"} … ${info.walMax ?? "-"}`];
  for (const b of info.backups)
    lines.push(`  ${b.label.padEnd(34)} ${b.type.padEnd(5)} ${b.stop.toISOString()}  database ${mb(b.size).padStart(10)}  stored ${mb(b.repoSize).padStart(10)}  WAL ${b.walStart} … ${b.walStop}`);
  // The earliest point a restore can reach is the end of the oldest backup; the latest is the
  // newest archived WAL (its time is known to PostgreSQL only when it replays it).
  if (info.backups.length)
    lines.push(`restorable from ${info.backups[0].stop.toISOString()} to the end of the newest archived WAL segment (${info.walMax ?? "-"}${info.walMaxArchivedAt ? `, archived ${info.walMaxArchivedAt.toISOString()}: the latest restorable time is before that` : ""})`);
  else lines.push("no backup yet: nothing can be restored");
  return lines;
}

/** What the last restore drill recorded on the backup host (last.json). */
export interface DrillResult {
  stanza: string;
  result: "pass" | "fail";
  reason: string | null;
  backup: string | null;
  startedAt: number;
  finishedAt: number;
  seconds: number;
  tables: number;
  rows: number;
  recoveredTo: string | null;
}

/** What a unit that records its result (drill, dump) left: `finishedAt` (epoch s) and `result`. */
interface Recorded { result: "pass" | "fail"; finishedAt: number }

/**
 * Starts `unit` on the backup host (the one its timer starts: same script, same record) and
 * reads the result it recorded in `resultFile`; its journal lines that `keep` picks. A failure
 * is a result here, not an exception (the caller decides the exit code); a missing or stale
 * record, or a unit exit that disagrees with the record, is an error.
 */
async function runRecorded<T extends Recorded>(c: LocalCluster, unit: string, resultFile: string, keep: RegExp): Promise<{ result: T; output: string[] }> {
  const h = backupHost(c);
  const since = Math.floor(Date.now() / 1000) - 1;
  const start = await ssh(c.ssh, c.targets[h.name], `systemctl start ${shq(unit)}`, "", 6 * 3600_000);
  const journal = await ssh(c.ssh, c.targets[h.name], `journalctl -u ${shq(unit)} --since=@${since} -o cat --no-pager`, "", 60_000);
  const output = journal.out.split("\n").filter((l) => keep.test(l));
  const read = await ssh(c.ssh, c.targets[h.name], `cat ${shq(resultFile)}`, "", 30_000);
  if (read.code !== 0) throw new Error(`${h.name}: ${unit} left no result (${resultFile}); systemctl start exited ${start.code}: ${start.out.trim()}`);
  const result = JSON.parse(read.out) as T;
  // A record older than this run is not this run's: the unit did not get to write one.
  if (result.finishedAt < since) throw new Error(`${h.name}: ${unit} did not record a result (the last is from ${new Date(result.finishedAt * 1000).toISOString()}); systemctl start exited ${start.code}: ${start.out.trim()}`);
  if ((start.code === 0) !== (result.result === "pass")) throw new Error(`${h.name}: ${unit} exited ${start.code} but recorded ${result.result}`);
  return { result, output };
}

/**
 * The restore drill now, through the unit its timer starts: the latest backup restored on the
 * backup host, checked, removed.
 */
export function runDrill(c: LocalCluster): Promise<{ result: DrillResult; output: string[] }> {
  return runRecorded<DrillResult>(c, DRILL.unit, DRILL.result, /restore drill|^\S+ \[\d+\]|FATAL|ERROR/);
}

/** What the last logical dump recorded on the backup host (last.json). */
export interface DumpResult {
  cluster: string;
  result: "pass" | "fail";
  reason: string | null;
  /** The node it read, with "(standby)" or "(primary)". */
  source: string | null;
  files: string[];
  bytes: number;
  startedAt: number;
  finishedAt: number;
  seconds: number;
}

/** The logical dump now (pg_dump of the application database and the roles, on the backup host). */
export function runDump(c: LocalCluster): Promise<{ result: DumpResult; output: string[] }> {
  return runRecorded<DumpResult>(c, DUMP.unit, DUMP.result, /logical dump|pg_dump|ERROR|FATAL/);
}

/** The logical dumps kept on the backup host, oldest first, as lines (time, size, file). */
export async function listDumps(c: LocalCluster): Promise<string[]> {
  const out = await onBackupHost(c, `find ${shq(DUMP.dir)} -maxdepth 1 -type f -name '*.enc' -printf '%TY-%Tm-%TdT%TH:%TM:%.2TSZ %s %f\\n' 2>/dev/null | sort || true`, 60_000);
  const lines = out.split("\n").filter(Boolean).map((l) => {
    const [at, size, file] = l.split(" ");
    return `  ${file.padEnd(44)} ${at}  ${mb(Number(size)).padStart(10)} (encrypted)`;
  });
  return [`logical dumps in ${DUMP.dir} on the backup host (backup.retention.dumpDays ${c.spec.backup.retention.dumpDays}):`, ...(lines.length ? lines : ["  none yet (npm run backup:dump, or the daily timer)"])];
}

export function describeDump(r: DumpResult): string {
  return r.result === "pass"
    ? `logical dump DONE: ${r.files.join(", ")} (${mb(r.bytes)}, encrypted) in ${DUMP.dir} on the backup host, read from ${r.source}, ${r.seconds} s`
    : `logical dump FAILED: ${r.reason}`;
}

export function describeDrill(r: DrillResult): string {
  return r.result === "pass"
    ? `restore drill PASSED: backup ${r.backup}${r.recoveredTo ? `, recovered to ${r.recoveredTo}` : ""}, ${r.tables} tables, ${r.rows} rows counted, pg_amcheck clean, ${r.seconds} s`
    : `restore drill FAILED${r.backup ? ` (backup ${r.backup})` : ""}: ${r.reason}`;
}

/** A duration as people say it: 45 s, 12 min, 5 h, 3 d. */
export function age(seconds: number): string {
  if (seconds < 90) return `${Math.max(0, Math.round(seconds))} s`;
  if (seconds < 90 * 60) return `${Math.round(seconds / 60)} min`;
  if (seconds < 36 * 3600) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} d`;
}

/** `npm run status`'s backup lines: the newest backup and its age, the last drill's result and age. */
export function describeBackupStatus(info: RepositoryInfo, drill: DrillResult | undefined, now: Date): string[] {
  const newest = info.backups.at(-1);
  const since = (t: number) => age((now.getTime() - t) / 1000);
  return [
    newest ? `backups: newest ${newest.label} (${newest.type}) ended ${since(newest.stop.getTime())} ago; ${info.backups.length} in the repository` : "backups: NONE in the repository (nothing can be restored)",
    drill ? `restore drill: ${drill.result === "pass" ? "passed" : `FAILED (${drill.reason})`} ${since(drill.finishedAt * 1000)} ago${drill.backup ? ` on ${drill.backup}` : ""}` : "restore drill: never run (npm run backup:verify)",
  ];
}

/** The last drill's record, or undefined when no drill ran yet. */
export async function lastDrill(c: LocalCluster): Promise<DrillResult | undefined> {
  const h = backupHost(c);
  const r = await ssh(c.ssh, c.targets[h.name], `test -e ${shq(DRILL.result)} || exit 3; cat ${shq(DRILL.result)}`, "", 30_000);
  if (r.code === 3) return undefined;
  if (r.code !== 0) throw new Error(`${h.name}: cannot read ${DRILL.result}: ${r.out.trim()}`);
  return JSON.parse(r.out) as DrillResult;
}
