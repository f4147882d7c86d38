// Watches every database node for a second writable primary, from inside each node (nsenter: a
// cut link does not blind it), and says what it could not see. It fails closed: an answer that
// did not come is "unknown", never "not writable", and the time a node went without any definite
// answer is measured and bounded. It runs in a worker thread: the scenario's own work (booting
// nodes runs synchronous commands) must not stretch its rounds.
import { spawn, type ChildProcess } from "child_process";
import { existsSync, readdirSync, readFileSync } from "fs";
import * as os from "os";
import * as path from "path";
import { Worker, isMainThread, parentPort, workerData } from "worker_threads";
import { nodeInitPid } from "./hosts";
import { PG_BIN, PG_DATA } from "../model/identities";

/**
 * writable: pg_is_in_recovery() = f. read-only: = t. not-serving: PostgreSQL refused the
 * connection (no socket, starting up, shutting down), or no PostgreSQL process runs in the node.
 * down: the node's PID namespace is gone (killed or powered off: nothing runs there). unknown: no
 * answer (the node's previous question still open, or its session broke mid-question).
 */
export type NodeState = "writable" | "read-only" | "not-serving" | "down" | "unknown";
const DEFINITE: NodeState[] = ["writable", "read-only", "not-serving", "down"];

/** psql's answers when PostgreSQL itself is not there to be a primary. */
const NOT_SERVING = /No such file or directory|Connection refused|the database system is (starting up|shutting down|in recovery mode|not yet accepting connections)/;

/**
 * Where a node's postmaster stood when it was seen, and which postmaster (its PID and start time,
 * from postmaster.pid): set only when both are known. Within one postmaster's life the phases only
 * move forward: starting, recovery (a standby), primary (out of recovery: PostgreSQL never goes
 * back into it without a restart), stopping.
 */
export interface Seen { pm: string; phase: "starting" | "recovery" | "primary" | "stopping" }

/** `askedAt`: when the question went out (a session's answer holds for some instant since then). */
type Answer = (state: NodeState, why?: string, seen?: Seen, askedAt?: number) => void;

/** One definite answer about a node: true at some instant in [lo, hi] (hi: when it came). */
export interface Observation { lo: number; hi: number; state: NodeState; seen?: Seen }

const PHASE_RANK: Record<Seen["phase"], number> = { starting: 0, recovery: 1, primary: 2, stopping: 3 };

/**
 * The times a node went without a definite answer: the gaps between consecutive answers (by
 * when they came), from `start` to `end`. A gap is still known when one postmaster ran
 * throughout it and its phases say what it was: an answer of that postmaster before the gap
 * (arrived by its start) and one after it (asked after its end) prove it ran all along; the later
 * one in recovery or starting means it was never out of recovery before (not writable), both
 * primary means it was writable throughout, both stopping that it took no client.
 */
export function blindWindows(obs: Observation[], start: number, end: number): { from: number; to: number; ms: number; known?: "not-writable" | "writable" }[] {
  const sorted = [...obs].sort((a, b) => a.hi - b.hi);
  const edges = [start, ...sorted.map((o) => o.hi), end];
  const out: { from: number; to: number; ms: number; known?: "not-writable" | "writable" }[] = [];
  for (let i = 1; i < edges.length; i++) {
    const [from, to] = [edges[i - 1], edges[i]];
    if (to <= from) continue;
    const before = sorted.filter((o) => o.seen && o.hi <= from).at(-1);
    const after = sorted.find((o) => o.seen && o.lo >= to);
    let known: "not-writable" | "writable" | undefined;
    if (before?.seen && after?.seen && before.seen.pm === after.seen.pm) {
      const [a, b] = [PHASE_RANK[before.seen.phase], PHASE_RANK[after.seen.phase]];
      if (b >= a) known = b <= PHASE_RANK.recovery || a === PHASE_RANK.stopping ? "not-writable" : a === PHASE_RANK.primary && b === PHASE_RANK.primary ? "writable" : undefined;
    }
    out.push({ from, to, ms: to - from, known });
  }
  return out;
}

/**
 * Whether any PostgreSQL process runs in the node (read from the host: the processes of the
 * node's cgroup tree, found from its PID 1). Undefined when that cannot be read.
 */
function postgresRuns(init: number): boolean | undefined {
  // Synchronous reads of a few dozen procfs/cgroupfs files (about a millisecond, in the probe's
  // own thread): the process-wide I/O thread pool may be busy with the test's own work.
  try {
    const lines = readFileSync(`/proc/${init}/cgroup`, "utf8").split("\n");
    const v1 = lines.find((l) => /^\d+:name=systemd:/.test(l));
    const own = v1 ?? lines.find((l) => l.startsWith("0::"));
    if (!own) return undefined;
    const base = v1 && existsSync("/sys/fs/cgroup/systemd") ? "/sys/fs/cgroup/systemd" : "/sys/fs/cgroup";
    // PID 1 sits in <node>/payload/init.scope: the node's processes are under <node>/payload.
    const payload = path.join(base, path.dirname(own.split(":").slice(2).join(":")));
    const dirs = [payload];
    while (dirs.length) {
      const d = dirs.pop()!;
      for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) dirs.push(path.join(d, e.name));
      for (const pid of readFileSync(path.join(d, "cgroup.procs"), "utf8").split("\n").filter(Boolean)) {
        let comm = "";
        try { comm = readFileSync(`/proc/${pid}/comm`, "utf8"); } catch { /* gone meanwhile */ }
        if (comm.trim() === "postgres") return true;
      }
    }
    return false;
  } catch {
    return undefined;
  }
}

/**
 * What the node's postmaster.pid says: its status line, "starting" (until PostgreSQL takes
 * connections: then "ready" or "standby", both "serving" here) or "stopping" (written when a
 * shutdown begins, after the postmaster has begun refusing clients with "the database system is
 * shutting down", which the probe counts as not serving too), read from the host without a
 * process while a node that starts or stops under load is too slow to answer a question in time;
 * and which postmaster it is ("<pid>/<start time>", lines 1 and 3). Undefined when unreadable.
 */
export function postmasterFile(pidFile: string): { status?: "starting" | "stopping" | "serving"; pm: string } | undefined {
  try {
    const lines = readFileSync(pidFile, "utf8").split("\n");
    const status = lines[7]?.trim();
    return {
      status: status === "starting" || status === "stopping" ? status : status ? "serving" : undefined,
      pm: `${lines[0].trim()}/${lines[2]?.trim()}`,
    };
  } catch {
    return undefined;
  }
}

/** What the host can tell of a node whose session cannot answer now (no process started). */
function seenFromHost(init: number): { state: NodeState; why: string; seen?: Seen } | undefined {
  const runs = postgresRuns(init);
  if (runs === false) return { state: "not-serving", why: "no PostgreSQL process" };
  const file = postmasterFile(`/proc/${init}/root${PG_DATA}/postmaster.pid`);
  const status = file?.status;
  if (status === "starting" || status === "stopping") return { state: "not-serving", why: `PostgreSQL ${status} (postmaster.pid): no connection taken`, seen: { pm: file!.pm, phase: status } };
  return undefined;
}

/** The node's postgres uid and gid, from its own /etc/passwd. */
function postgresUser(init: number): { uid: string; gid: string } | undefined {
  try {
    const line = readFileSync(`/proc/${init}/root/etc/passwd`, "utf8").split("\n").find((l) => l.startsWith("postgres:"));
    const [, , uid, gid] = line?.split(":") ?? [];
    return uid && gid ? { uid, gid } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * One psql session inside a node, kept open (a process per sample loads a 2-core machine), one
 * question at a time. A question has no deadline of its own (a slow answer still tells the
 * node's state; the time without answers is what the probe bounds); one open longer than
 * `stuckMs` ends the session, and a new one starts at the next round.
 */
class NodeSession {
  private proc?: ChildProcess;
  private init?: number;
  private out = "";
  private err = "";
  private pending?: { id: number; since: number; answer: Answer };

  constructor(readonly node: string, private readonly stuckMs: number) {}

  /** Asks; `answer` is called once, when the state is known or the question lost. */
  ask(id: number, answer: Answer): void {
    const init = nodeInitPid(this.node);
    if (!init) { this.close(); answer("down", "no PID namespace"); return; }
    if (this.pending && Date.now() - this.pending.since >= this.stuckMs) this.close(`no answer for ${this.stuckMs} ms`);
    if (this.pending) {
      // Still busy with the previous question: what the host can see of the node still counts.
      const seen = seenFromHost(init);
      answer(seen?.state ?? "unknown", seen?.why ?? "previous question still open", seen?.seen);
      return;
    }
    // Which postmaster answers, as postmaster.pid names it (line 1 its PID, line 3 its start):
    // what the host reads there is comparable.
    const question = `select ${id}, pg_is_in_recovery(), replace(split_part(pg_read_file('postmaster.pid'), E'\\n', 1) || '/' || split_part(pg_read_file('postmaster.pid'), E'\\n', 3), ' ', '');\n`;
    this.pending = {
      id, since: Date.now(), answer: (state, why, seen, askedAt) => {
        if (state !== "unknown") return answer(state, why, seen, askedAt);
        // The session broke: did PostgreSQL go away or begin to stop, or only the session end?
        const host = seenFromHost(init);
        answer(host?.state ?? "unknown", host?.why ?? why, host?.seen);
      },
    };
    if (this.proc && this.init === init) { this.proc.stdin!.write(question); return; }
    // A new session only where PostgreSQL runs and takes connections: a process started every
    // round on a node that is booting, starting or stopping loads the machine for nothing.
    const seen = seenFromHost(init);
    if (seen) return this.settle(seen.state, seen.why, seen.seen);
    this.open(init);
    this.proc!.stdin!.write(question);
  }

  private settle(s: NodeState, why?: string, seen?: Seen): void {
    const p = this.pending;
    if (!p) return;
    this.pending = undefined;
    p.answer(s, why, seen, p.since);
  }

  private open(init: number): void {
    this.proc?.kill("SIGKILL");
    this.proc = undefined;
    this.init = init;
    this.out = "";
    this.err = "";
    // As the node's postgres user, set by nsenter itself, and PostgreSQL's own psql: runuser's PAM
    // session and Debian's psql wrapper (perl) were seen to take seconds to start on a loaded machine.
    const user = postgresUser(init);
    const p = spawn("nsenter", ["-t", String(init), "-m", "-u", "-i", "-n", "-p", ...(user ? ["-S", user.uid, "-G", user.gid] : []), "--",
      ...(user ? [] : ["runuser", "-u", "postgres", "--"]), `${PG_BIN}/psql`, "-XAtq", "-F", " "],
      { stdio: ["pipe", "pipe", "pipe"], env: { PATH: "/usr/bin:/bin", PGUSER: "postgres", PGDATABASE: "postgres", HOME: "/var/lib/postgresql", LC_ALL: "C" } });
    p.stdout!.on("data", (d) => {
      this.out += d;
      for (let nl = this.out.indexOf("\n"); nl >= 0; nl = this.out.indexOf("\n")) {
        const [id, v, pm] = this.out.slice(0, nl).trim().split(" ");
        this.out = this.out.slice(nl + 1);
        if (this.pending && Number(id) === this.pending.id) {
          const state: NodeState = v === "f" ? "writable" : v === "t" ? "read-only" : "unknown";
          this.settle(state, `answered ${v}`, state !== "unknown" && pm ? { pm, phase: state === "writable" ? "primary" : "recovery" } : undefined);
        }
      }
    });
    p.stderr!.on("data", (d) => { this.err = (this.err + d).slice(-2000); });
    p.stdin!.on("error", () => {}); // a session that died; its close below answers
    const ended = () => {
      if (this.proc !== p) return;
      this.proc = undefined;
      const why = `session ended: ${this.err.trim().split("\n").slice(-1)[0] ?? ""}`.slice(0, 200);
      // nsenter itself failed: the namespace went away (down) or something else did (unknown).
      if (/^nsenter:/m.test(this.err)) this.settle(nodeInitPid(this.node) ? "unknown" : "down", why);
      else this.settle(NOT_SERVING.test(this.err) ? "not-serving" : "unknown", why);
    };
    p.on("close", ended);
    p.on("error", (e) => { this.err += String(e); ended(); });
    this.proc = p;
  }

  /** Ends the session; an open question is lost (unknown). */
  close(why = "session closed"): void {
    const p = this.proc;
    this.proc = undefined;
    this.settle("unknown", why);
    if (p) p.kill("SIGKILL");
  }
}

export interface ProbeReport {
  rounds: number;
  intervalMs: number;
  /** Longest time between two round starts (the real interval), ms. */
  maxIntervalMs: number;
  /** Per node: rounds without a definite answer, and the last reason. */
  unknown: Record<string, number>;
  unknownWhy: Record<string, string>;
  /** Per node: the longest time without a definite answer, ms, and when it began. */
  longestUnobserved: Record<string, { ms: number; from: number }>;
  /** Per node: gaps longer than the bound that one postmaster's own answers account for (see blindWindows). */
  knownLongGaps: Record<string, number>;
  /** The bound on longestUnobserved (see SplitBrainProbe). */
  unobservedBoundMs: number;
}

type Round = { at: number; states: Record<string, NodeState> };

/** The probe itself (runs in the worker). */
class ProbeCore {
  readonly history: Round[] = [];
  private readonly sessions: NodeSession[];
  private readonly observed: Record<string, Observation[]> = {};
  private t0 = 0;
  private readonly unknownWhy: Record<string, string> = {};
  private maxIntervalMs = 0;
  private stopped = false;
  private loop?: Promise<void>;
  private open = new Set<Promise<void>>();
  private next = 1;

  constructor(private readonly nodes: string[], private readonly intervalMs: number, private readonly boundMs: number,
    private readonly update: (at: number, node: string, state: NodeState) => void) {
    this.sessions = nodes.map((n) => new NodeSession(n, 2 * boundMs));
  }

  private round(at: number): void {
    const id = this.next++;
    const states: Record<string, NodeState> = Object.fromEntries(this.nodes.map((n) => [n, "unknown" as NodeState]));
    this.history.push({ at, states });
    for (const s of this.sessions) {
      const p = new Promise<void>((done) => s.ask(id, (state, why, seen, askedAt) => {
        states[s.node] = state;
        const now = Date.now();
        if (DEFINITE.includes(state)) this.observed[s.node].push({ lo: askedAt ?? now, hi: now, state, seen });
        else if (why) this.unknownWhy[s.node] = why;
        this.update(at, s.node, state);
        done();
      }));
      this.open.add(p);
      void p.then(() => this.open.delete(p));
    }
  }

  start(): void {
    const t0 = this.t0 = Date.now();
    for (const n of this.nodes) this.observed[n] = [];
    this.loop = (async () => {
      let last = t0;
      while (!this.stopped) {
        const at = Date.now();
        this.maxIntervalMs = Math.max(this.maxIntervalMs, at - last);
        last = at;
        this.round(at);
        await new Promise((r) => setTimeout(r, Math.max(0, this.intervalMs - (Date.now() - at))));
      }
    })();
  }

  async stop(): Promise<ProbeReport> {
    this.stopped = true;
    await this.loop;
    // Questions still open get a bounded time to be answered, then are lost.
    await Promise.race([Promise.all([...this.open]), new Promise((r) => setTimeout(r, 2 * this.boundMs))]);
    for (const s of this.sessions) s.close("probe stopped");
    // The time since the last answer counts too: a node that went silent at the end was unobserved.
    const end = Date.now();
    const longest: Record<string, { ms: number; from: number }> = {};
    const known: Record<string, number> = {};
    for (const n of this.nodes) {
      const windows = blindWindows(this.observed[n], this.t0, end);
      const blind = windows.filter((w) => !w.known);
      const top = blind.reduce((m, w) => (w.ms > m.ms ? w : m), { ms: 0, from: this.t0 });
      longest[n] = { ms: top.ms, from: top.from };
      known[n] = windows.filter((w) => w.known && w.ms > this.boundMs).length;
      // Writable throughout by its own postmaster's account: its unanswered rounds were writable too
      // (a second writable node in them is a split brain).
      for (const w of windows.filter((x) => x.known === "writable"))
        for (const h of this.history) if (h.at > w.from && h.at < w.to && h.states[n] === "unknown") h.states[n] = "writable";
    }
    return {
      rounds: this.history.length,
      intervalMs: this.intervalMs,
      maxIntervalMs: this.maxIntervalMs,
      unknown: Object.fromEntries(this.nodes.map((n) => [n, this.history.filter((h) => h.states[n] === "unknown").length])),
      unknownWhy: { ...this.unknownWhy },
      longestUnobserved: longest,
      knownLongGaps: known,
      unobservedBoundMs: this.boundMs,
    };
  }
}

// The worker's side: run the probe, stream every state, report when told to stop.
if (!isMainThread && workerData?.splitBrainProbe) {
  // The observer must not be starved by what it observes (three nodes booting on two cores):
  // this thread, and the psql sessions it starts, run at a higher priority (Linux: per thread).
  try { os.setPriority(os.constants.priority.PRIORITY_HIGH); } catch { /* not root: the bound will tell */ }
  const { nodes, intervalMs, boundMs } = workerData.splitBrainProbe as { nodes: string[]; intervalMs: number; boundMs: number };
  const core = new ProbeCore(nodes, intervalMs, boundMs, (at, node, state) => parentPort!.postMessage({ type: "update", at, node, state }));
  core.start();
  parentPort!.on("message", async (m) => {
    if (m !== "stop") return;
    const report = await core.stop();
    parentPort!.postMessage({ type: "report", report, history: core.history });
  });
}

/**
 * Every `intervalMs` (on the clock, in its own thread: nothing else stretches the rounds) each
 * node that is not still answering the previous round is asked whether it is a writable
 * primary; while it is, the host checks whether a PostgreSQL process runs there at all. A node
 * must give a definite answer at least every `unobservedBoundMs` (1.5 s: a slow answer or a new
 * session costs a few rounds, not more); a longer silence is time in which it could have been a
 * second primary unseen, and the scenario fails on it.
 */
export class SplitBrainProbe {
  private history: Round[] = [];
  private readonly byAt = new Map<number, Round>();
  private worker?: Worker;
  private failure?: Error;
  private report?: Promise<ProbeReport>;

  constructor(private readonly nodes: string[], readonly intervalMs = 200, readonly unobservedBoundMs = 1500) {}

  start(): this {
    // A worker that loads this file through tsx (the tests and the bench run TypeScript).
    const boot = `require(${JSON.stringify(require.resolve("tsx/cjs"))}); require(${JSON.stringify(__filename)});`;
    const w = new Worker(boot, { eval: true, workerData: { splitBrainProbe: { nodes: this.nodes, intervalMs: this.intervalMs, boundMs: this.unobservedBoundMs } } });
    this.report = new Promise<ProbeReport>((resolve, reject) => {
      w.on("message", (m) => {
        if (m.type === "update") {
          let r = this.byAt.get(m.at);
          if (!r) { r = { at: m.at, states: Object.fromEntries(this.nodes.map((n) => [n, "unknown" as NodeState])) }; this.byAt.set(m.at, r); this.history.push(r); }
          r.states[m.node] = m.state;
        } else if (m.type === "report") {
          this.history = m.history;
          resolve(m.report);
        }
      });
      w.on("error", (e) => { this.failure = e; reject(e); });
      w.on("exit", (code) => reject(new Error(`the split-brain probe's worker exited (${code}) before reporting${this.failure ? `: ${this.failure.message}` : ""}`)));
    });
    this.report.catch(() => {}); // surfaced by stop()
    // A scenario that fails before stop() must not keep the process alive; stop() holds it again.
    w.unref();
    this.worker = w;
    return this;
  }

  /** Rounds in which more than one node was a writable primary. */
  get seen(): { at: number; nodes: string[] }[] {
    return this.history.map((h) => ({ at: h.at, nodes: this.nodes.filter((n) => h.states[n] === "writable") })).filter((x) => x.nodes.length > 1);
  }

  /** The last definite state seen of a node (undefined before any). */
  lastState(node: string): NodeState | undefined {
    for (let i = this.history.length - 1; i >= 0; i--) {
      const s = this.history[i].states[node];
      if (DEFINITE.includes(s)) return s;
    }
    return undefined;
  }

  /** How often each state was seen of `node` in the rounds started in [from, to]. */
  statesOf(node: string, from: number, to: number): Partial<Record<NodeState, number>> {
    const out: Partial<Record<NodeState, number>> = {};
    for (const h of this.history) if (h.at >= from && h.at <= to) out[h.states[node]] = (out[h.states[node]] ?? 0) + 1;
    return out;
  }

  /** Stops the rounds; the full record replaces the streamed one. A probe that failed fails here. */
  async stop(): Promise<ProbeReport> {
    if (!this.worker || !this.report) throw new Error("the split-brain probe was not started");
    this.worker.ref();
    this.worker.postMessage("stop");
    try {
      return await this.report;
    } finally {
      await this.worker.terminate();
    }
  }
}
