// bench/upgrade: a new pgcluster version applied to a cluster the previous version built must not
// disturb it: no failover or switchover, no PostgreSQL restart, no failed or lost write.
// Usage, as root, from a checkout of the NEW version (this one), under the hosts lock:
//   flock /tmp/pgcluster-hosts.lock npm run bench:upgrade -- --from <git ref of the previous version>
// It checks <ref> out in a temporary git worktree that shares this checkout's .pgcluster/ (same SSH
// key, secrets, PKI, known_hosts: the same cluster), brings the local cluster up with it
// (`npm run local`), then applies this checkout's plan while one connection writes numbered rows
// through :5000, and judges the cluster before and after (local/upgradeCheck.ts). Exit 1 when a
// verdict fails or a figure could not be read.
import { spawn } from "child_process";
import * as readline from "readline";
import { loadCluster, patroniCluster, type LocalCluster, type Member } from "../local/cluster";
import { ensureChaosTable, healthy, lostRows, WriteLoad, CHAOS_TABLE } from "../local/chaos";
import { sh } from "../local/exec";
import { nodeExec } from "../local/hosts";
import { apply, type ApplyReport } from "../local/up";
import { passed, upgradeVerdicts, verdictTable, type ClusterSnapshot } from "../local/upgradeCheck";
import { PROJECT_ROOT } from "../model/stackFile";
import { addOldTree, removeOldTree, shareDependencies, type OldTree } from "./oldTree";

const USAGE = "usage: npm run bench:upgrade -- --from <git ref of the previous version>";
/** A revision as one types it (main~1, v0.1.0, a hash, HEAD^): never an option, no spaces. */
const GIT_REV = /^[A-Za-z0-9_][A-Za-z0-9._/~^@{}-]*$/;
/** The load keeps writing this long after the apply returned: a restart set off late still meets it. */
const AFTER_APPLY_MS = 5000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const clock = (ms: number) => new Date(ms).toISOString().slice(11, 23);
const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

function fromRef(argv: string[]): string {
  const i = argv.indexOf("--from");
  const ref = i >= 0 ? argv[i + 1] : undefined;
  if (argv.length !== 2 || ref === undefined) throw new Error(USAGE);
  if (!GIT_REV.test(ref)) throw new Error(`--from ${JSON.stringify(ref)} is not a git revision (letters, digits and ._/~^@{}-, not starting with -)`);
  return ref;
}

function git(args: string[]): string {
  return sh("git", ["-C", PROJECT_ROOT, ...args]).stdout.trim();
}

function commitOf(ref: string): string {
  const r = sh("git", ["-C", PROJECT_ROOT, "rev-parse", "--verify", "--quiet", `${ref}^{commit}`], { allowFail: true });
  if (r.code !== 0) throw new Error(`--from ${ref}: no such commit in ${PROJECT_ROOT}`);
  return r.stdout.trim();
}

/** Runs a command, each output line printed with `prefix` as it comes; resolves to the exit code. */
function runStreamed(cmd: string, args: string[], cwd: string, prefix: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
    for (const s of [p.stdout, p.stderr]) readline.createInterface({ input: s }).on("line", (l) => console.log(`${prefix}${l}`));
    p.on("error", reject);
    p.on("close", (code) => resolve(code ?? -1));
  });
}

/** The old tree's dependencies: this checkout's when the lock files are the same, else its own. */
async function oldDependencies(tree: OldTree): Promise<void> {
  if (shareDependencies(PROJECT_ROOT, tree)) return;
  console.log("package-lock.json differs between the versions: npm ci in the old tree");
  const code = await runStreamed("npm", ["ci", "--no-audit", "--no-fund"], tree.dir, "  [npm ci] ");
  if (code !== 0) throw new Error(`npm ci in the old tree failed (exit ${code})`);
}

/** pg_postmaster_start_time() read inside the node over its socket; undefined when not readable. */
async function postmasterStart(node: string): Promise<string | undefined> {
  const r = await nodeExec(node, ["runuser", "-u", "postgres", "--", "psql", "-XAtq", "-c", "select pg_postmaster_start_time()"], 10_000);
  const v = r.out.trim();
  if (r.code === 0 && /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?[+-]\d\d(:\d\d)?$/.test(v)) return v;
  console.log(`  ${node}: pg_postmaster_start_time() not readable (exit ${r.code}): ${v.split("\n").slice(-2).join(" | ")}`);
  return undefined;
}

async function snapshot(c: LocalCluster, nodes: string[]): Promise<ClusterSnapshot> {
  let members: Member[] | undefined;
  try { members = await patroniCluster(c); } catch (e) { console.log(`  Patroni's view not readable: ${message(e)}`); }
  const leaders = members?.filter((m) => m.role === "leader") ?? [];
  if (members && leaders.length !== 1) console.log(`  Patroni reports ${leaders.length} leaders: ${leaders.map((m) => m.name).join(", ") || "none"}`);
  const leader = leaders.length === 1 ? leaders[0] : undefined;
  const snap: ClusterSnapshot = { leader: leader?.name, timeline: typeof leader?.timeline === "number" ? leader.timeline : undefined, nodes: {} };
  for (const n of nodes) {
    const m = members?.find((x) => x.name === n);
    snap.nodes[n] = { role: m?.role, state: m?.state, postmasterStart: await postmasterStart(n) };
  }
  return snap;
}

function printSnapshot(label: string, s: ClusterSnapshot): void {
  console.log(`${label}: leader ${s.leader ?? "unknown"}, timeline ${s.timeline ?? "unknown"}`);
  for (const [n, x] of Object.entries(s.nodes)) console.log(`  ${n.padEnd(6)} ${String(x.role ?? "unknown").padEnd(13)} ${String(x.state ?? "unknown").padEnd(10)} postmaster started ${x.postmasterStart ?? "unknown"}`);
}

/** Each distinct error of the load once, with how often and when (texts are redacted by WriteLoad). */
function printFailedWrites(load: WriteLoad): void {
  const by = new Map<string, { n: number; first: number; last: number }>();
  for (const e of load.errors) {
    const g = by.get(e.message) ?? { n: 0, first: e.at, last: e.at };
    by.set(e.message, { n: g.n + 1, first: g.first, last: e.at });
  }
  console.log(`failed writes: ${load.failures}`);
  for (const [m, g] of by) console.log(`  ${g.n} x ${m} (${clock(g.first)}${g.n > 1 ? ` .. ${clock(g.last)}` : ""})`);
}

async function waitFlowing(load: WriteLoad, seconds: number): Promise<void> {
  const end = Date.now() + seconds * 1000;
  while (!load.flowing()) {
    if (Date.now() > end) throw new Error(`no write acknowledged through :5000 within ${seconds} s (${load.failures} failed${load.errors.length ? `, last: ${load.errors[load.errors.length - 1].message}` : ""})`);
    await sleep(250);
  }
}

const applied = (r: ApplyReport) => `exit ${r.code}, ${r.changed} steps changed, ${r.seconds.toFixed(1)} s`;

async function bench(tree: OldTree, ref: string): Promise<boolean> {
  await oldDependencies(tree);
  const t0 = Date.now();
  const up = await runStreamed("npm", ["run", "local"], tree.dir, "  [old] ");
  const upSeconds = (Date.now() - t0) / 1000;
  console.log(`previous version (${ref}) up: npm run local, exit ${up}, ${upSeconds.toFixed(1)} s`);
  if (up !== 0) throw new Error(`npm run local of ${ref} failed (exit ${up})`);

  const c = await loadCluster("local");
  const nodes = c.hosts.filter((h) => h.roles.includes("postgres")).map((h) => h.name);
  await healthy(c);
  await ensureChaosTable(c);
  const before = await snapshot(c, nodes);
  printSnapshot("before", before);

  // Rows of its own run in the chaos table: the run names them, read back by the same code.
  const run = `upgrade-${Date.now()}`;
  const load = new WriteLoad(c, run).start();
  let first: ApplyReport;
  try {
    await waitFlowing(load, 30);
    console.log(`write load through :5000 flowing (${CHAOS_TABLE}, run ${run}); applying this checkout's plan`);
    const started = Date.now();
    first = await apply(c, (l) => console.log(`  [new] ${l}`));
    // The window, to place the failed writes' times (printed below) inside or outside it.
    console.log(`new version apply under load: ${applied(first)} (${clock(started)} .. ${clock(Date.now())})`);
    await sleep(AFTER_APPLY_MS);
  } finally {
    await load.stop();
  }
  const acked = load.acked.map((a) => a.id);
  printFailedWrites(load);
  let lost: number | undefined;
  try { lost = await lostRows(c, run, acked); } catch (e) { console.log(`acknowledged rows not readable: ${message(e)}`); }
  const after = await snapshot(c, nodes);
  printSnapshot("after", after);
  const reapply = await apply(c, (l) => console.log(`  [re-apply] ${l}`));
  console.log(`second apply: ${applied(reapply)}`);

  const verdicts = upgradeVerdicts({
    nodes, before, after,
    load: { acked: acked.length, failed: load.failures, lost, longestGapS: acked.length ? load.gapSince(load.acked[0].at) : undefined },
    apply: first, reapply,
  });
  const ok = passed(verdicts);
  console.log(`\nupgrade benchmark, ${new Date().toISOString()}: ${ref} (npm run local ${upSeconds.toFixed(1)} s) -> this checkout`);
  console.log(verdictTable(verdicts));
  console.log(ok ? "existing cluster not disturbed" : "DISTURBED (or a figure unknown): see FAIL above");
  return ok;
}

async function main(): Promise<number> {
  const ref = fromRef(process.argv.slice(2));
  const from = commitOf(ref);
  const head = git(["rev-parse", "HEAD"]);
  const dirty = git(["status", "--porcelain"]) !== "";
  console.log(`upgrade benchmark: from ${ref} (${from.slice(0, 12)}) to this checkout (${head.slice(0, 12)}${dirty ? ", with uncommitted changes" : ""})`);
  if (from === head && !dirty) console.log("warning: the previous version is this very commit: nothing is upgraded");
  const tree = addOldTree(PROJECT_ROOT, from);
  console.log(`previous version checked out in ${tree.dir}; both versions use the state in ${tree.state}`);
  const cleanup = (): boolean => {
    try { removeOldTree(PROJECT_ROOT, tree); return true; } catch (e) {
      console.error(`could not remove the temporary worktree ${tree.dir}: ${message(e)}; remove it with: git worktree remove --force ${tree.dir}`);
      return false;
    }
  };
  for (const sig of ["SIGINT", "SIGTERM"] as const) process.once(sig, () => { cleanup(); process.exit(130); });
  let ok = false;
  try {
    ok = await bench(tree, ref);
  } finally {
    if (!cleanup()) ok = false;
  }
  return ok ? 0 : 1;
}

main().then((code) => process.exit(code), (e) => { console.error(`error: ${message(e)}`); process.exit(1); });
