// Watches every database node for a second writable primary, from inside each node (nsenter: a
// cut link does not blind it), and says what it could not see. It fails closed: an answer that
// did not come is "unknown", never "not writable".
import { spawn, type ChildProcess } from "child_process";
import { nodeInitPid } from "./hosts";

/**
 * writable: pg_is_in_recovery() = f. read-only: = t. not-serving: PostgreSQL refused the
 * connection (no socket, starting up, shutting down). down: the node's PID namespace is gone
 * (killed or powered off: nothing runs there, so it cannot be a primary). unknown: no answer in
 * time, or the session broke mid-question.
 */
export type NodeState = "writable" | "read-only" | "not-serving" | "down" | "unknown";
const DEFINITE: NodeState[] = ["writable", "read-only", "not-serving", "down"];

/** psql's answers when PostgreSQL itself is not there to be a primary. */
const NOT_SERVING = /No such file or directory|Connection refused|the database system is (starting up|shutting down|in recovery mode|not yet accepting connections)/;

/** One psql session inside a node, kept open (a process per sample would load a 2-core machine), one question at a time. */
class NodeSession {
  private proc?: ChildProcess;
  private init?: number;
  private out = "";
  private err = "";
  private pending?: { id: number; resolve: (s: NodeState) => void; timer: NodeJS.Timeout };

  constructor(readonly node: string) {}

  ask(id: number, timeoutMs: number): Promise<NodeState> {
    const init = nodeInitPid(this.node);
    if (!init) { this.close(); return Promise.resolve("down"); }
    // The previous question is still unanswered: this round does not see the node either.
    if (this.pending) return Promise.resolve("unknown");
    if (!this.proc || this.init !== init) this.open(init);
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.settle("unknown"); this.close(); }, timeoutMs);
      this.pending = { id, resolve, timer };
      this.proc!.stdin!.write(`select ${id}, pg_is_in_recovery();\n`);
    });
  }

  private settle(s: NodeState): void {
    const p = this.pending;
    if (!p) return;
    this.pending = undefined;
    clearTimeout(p.timer);
    p.resolve(s);
  }

  private open(init: number): void {
    this.close();
    this.init = init;
    this.out = "";
    this.err = "";
    const p = spawn("nsenter", ["-t", String(init), "-m", "-u", "-i", "-n", "-p", "--", "runuser", "-u", "postgres", "--", "psql", "-XAtq", "-F", " "],
      { stdio: ["pipe", "pipe", "pipe"] });
    p.stdout!.on("data", (d) => {
      this.out += d;
      for (let nl = this.out.indexOf("\n"); nl >= 0; nl = this.out.indexOf("\n")) {
        const [id, v] = this.out.slice(0, nl).trim().split(" ");
        this.out = this.out.slice(nl + 1);
        if (this.pending && Number(id) === this.pending.id) this.settle(v === "f" ? "writable" : v === "t" ? "read-only" : "unknown");
      }
    });
    p.stderr!.on("data", (d) => { this.err = (this.err + d).slice(-2000); });
    p.stdin!.on("error", () => {}); // a session that died; its close below answers
    const ended = () => {
      if (this.proc !== p) return;
      this.proc = undefined;
      // nsenter itself failed: the namespace went away (down) or something else did (unknown).
      if (/^nsenter:/m.test(this.err)) this.settle(nodeInitPid(this.node) ? "unknown" : "down");
      else this.settle(NOT_SERVING.test(this.err) ? "not-serving" : "unknown");
    };
    p.on("close", ended);
    p.on("error", (e) => { this.err += String(e); ended(); });
    this.proc = p;
  }

  close(): void {
    const p = this.proc;
    this.proc = undefined;
    if (p) p.kill("SIGKILL");
  }
}

export interface ProbeReport {
  rounds: number;
  intervalMs: number;
  /** Longest time between two round starts (the real interval), ms. */
  maxIntervalMs: number;
  /** Per node: rounds without an answer. */
  unknown: Record<string, number>;
  /** Per node: the longest time without a definite answer, ms, and when it began. */
  longestUnobserved: Record<string, { ms: number; from: number }>;
  /** The bound on longestUnobserved that the probe promises (see SplitBrainProbe). */
  unobservedBoundMs: number;
}

/**
 * Every `intervalMs` (on the clock: a slow node does not stretch the rounds) each node is asked
 * whether it is a writable primary; an answer must come within `timeoutMs`. One lost answer costs
 * a node the timeout plus a new session and its first answer (a few rounds), so a node is never
 * left unobserved longer than `unobservedBoundMs`; a longer gap is a probe that could have missed
 * a second primary, and the scenario fails on it.
 */
export class SplitBrainProbe {
  /** Rounds in which more than one node was a writable primary. */
  readonly seen: { at: number; nodes: string[] }[] = [];
  readonly history: { at: number; states: Record<string, NodeState> }[] = [];
  readonly unobservedBoundMs: number;
  private readonly sessions: NodeSession[];
  private readonly lastSeen: Record<string, number> = {};
  private readonly longest: Record<string, { ms: number; from: number }> = {};
  private maxIntervalMs = 0;
  private stopped = false;
  private loop?: Promise<void>;
  private rounds: Promise<void>[] = [];
  private next = 1;

  constructor(private readonly nodes: string[], readonly intervalMs = 200, private readonly timeoutMs = 500) {
    this.sessions = nodes.map((n) => new NodeSession(n));
    this.unobservedBoundMs = timeoutMs + 5 * intervalMs;
  }

  private async round(at: number): Promise<void> {
    const id = this.next++;
    const states = await Promise.all(this.sessions.map(async (s) => {
      const state = await s.ask(id, this.timeoutMs);
      if (DEFINITE.includes(state)) this.track(s.node, Date.now());
      return state;
    }));
    const byNode = Object.fromEntries(this.nodes.map((n, i) => [n, states[i]]));
    this.history.push({ at, states: byNode });
    const writable = this.nodes.filter((n) => byNode[n] === "writable");
    if (writable.length > 1) this.seen.push({ at, nodes: writable });
  }

  private track(node: string, at: number): void {
    const gap = at - this.lastSeen[node];
    if (gap > (this.longest[node]?.ms ?? 0)) this.longest[node] = { ms: gap, from: this.lastSeen[node] };
    this.lastSeen[node] = at;
  }

  start(): this {
    const t0 = Date.now();
    for (const n of this.nodes) { this.lastSeen[n] = t0; this.longest[n] = { ms: 0, from: t0 }; }
    this.loop = (async () => {
      let last = t0;
      while (!this.stopped) {
        const at = Date.now();
        this.maxIntervalMs = Math.max(this.maxIntervalMs, at - last);
        last = at;
        this.rounds.push(this.round(at));
        await new Promise((r) => setTimeout(r, Math.max(0, this.intervalMs - (Date.now() - at))));
      }
    })();
    return this;
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

  async stop(): Promise<ProbeReport> {
    this.stopped = true;
    await this.loop;
    await Promise.all(this.rounds);
    for (const s of this.sessions) s.close();
    // The time since the last answer counts too: a node that went silent at the end was unobserved.
    const end = Date.now();
    for (const n of this.nodes) {
      const gap = end - this.lastSeen[n];
      if (gap > this.longest[n].ms) this.longest[n] = { ms: gap, from: this.lastSeen[n] };
    }
    return {
      rounds: this.history.length,
      intervalMs: this.intervalMs,
      maxIntervalMs: this.maxIntervalMs,
      unknown: Object.fromEntries(this.nodes.map((n) => [n, this.history.filter((h) => h.states[n] === "unknown").length])),
      longestUnobserved: { ...this.longest },
      unobservedBoundMs: this.unobservedBoundMs,
    };
  }
}
