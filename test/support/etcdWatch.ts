// Watches the etcd cluster's quorum during an apply: every member's /health (with a client
// certificate), a round every `intervalMs` on the clock, in a worker thread of its own (the test's
// main thread runs the apply and client load, and was seen to stall for over a second).
import * as https from "https";
import * as os from "os";
import { Worker, isMainThread, parentPort, workerData } from "worker_threads";

export interface EtcdRound { at: number; states: string[]; majority: boolean; undetermined: boolean }

interface WatchConfig { members: string[]; tls: { ca: string; cert: string; key: string }; intervalMs: number; timeoutMs: number }

// One kept-alive TLS connection per member: a round is then a request on it, not three TLS
// handshakes with client certificates (the worker's CPU per round was what made rounds late on
// the busy machine). A member that restarts closes it; the next round connects again.
const agent = new https.Agent({ keepAlive: true, maxSockets: 2 });

/** healthy | unhealthy(...) | down(...) | unknown, for one member. */
function memberState(host: string, c: WatchConfig): Promise<string> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (s: string) => { if (!done) { done = true; resolve(s); } };
    const req = https.get({ host, port: 2379, path: "/health", ...c.tls, agent, timeout: c.timeoutMs }, (res) => {
      let text = "";
      res.on("data", (d) => (text += d));
      res.on("end", () => finish(res.statusCode === 200 && /"health":\s*"true"/.test(text) ? "healthy" : `unhealthy(${res.statusCode} ${text.trim().slice(0, 60)})`));
      res.on("error", () => finish("down(response cut)"));
    });
    req.on("timeout", () => { finish("unknown"); req.destroy(); });
    req.on("error", (e: NodeJS.ErrnoException) => finish(`down(${e.code ?? e.message})`));
  });
}

// The worker's side: rounds on the clock until told to stop, then every round and the longest interval.
if (!isMainThread && workerData?.etcdWatch) {
  try { os.setPriority(os.constants.priority.PRIORITY_HIGH); } catch { /* not root: the interval check will tell */ }
  const c = workerData.etcdWatch as WatchConfig;
  const rounds: EtcdRound[] = [];
  const pending: Promise<void>[] = [];
  let stop = false, maxIntervalMs = 0;
  const majority = Math.floor(c.members.length / 2) + 1;
  const loop = (async () => {
    let last = Date.now();
    while (!stop) {
      const at = Date.now();
      maxIntervalMs = Math.max(maxIntervalMs, at - last);
      last = at;
      pending.push((async () => {
        const states = await Promise.all(c.members.map((m) => memberState(m, c)));
        const healthy = states.filter((s) => s === "healthy").length;
        const unknown = states.filter((s) => s === "unknown").length;
        rounds.push({ at, states, majority: healthy >= majority, undetermined: healthy < majority && healthy + unknown >= majority });
      })());
      await new Promise((r) => setTimeout(r, Math.max(0, c.intervalMs - (Date.now() - at))));
    }
  })();
  parentPort!.on("message", async (m) => {
    if (m !== "stop") return;
    stop = true;
    await loop;
    await Promise.all(pending);
    parentPort!.postMessage({ rounds: rounds.sort((x, y) => x.at - y.at), maxIntervalMs, ended: Date.now() });
  });
}

/**
 * Each member is "healthy", "unhealthy" (it answered, but not healthy: no leader, or its quorum
 * read failed), "down" (it refused or dropped the connection) or "unknown" (no answer within
 * `timeoutMs`; etcd 3.4 answers /health within about a second even without quorum, so this is a
 * member that did not answer at all, not a slow "no"). A round has no healthy majority when fewer
 * than a majority answered healthy; it is "undetermined" when counting the unknown ones as healthy
 * would give one (fail closed: such a round counts as one without).
 *
 * What "never without quorum" can mean: at every change of etcd leader (etcd hands its leadership
 * over when a leader member stops, ~100 ms in the journal) the followers answer /health "no
 * leader" for a few milliseconds before they hear from the new leader (seen: pg3 "lost leader" at
 * .5737, "elected leader" at .5780, a /health "no leader" in between), while a majority of
 * members is up and agrees. A round that lands in those milliseconds sees no healthy majority. A
 * real loss of quorum (two members down together: a restart takes over a second) or a leader lost
 * without a handover (an election: at least the 1 s election timeout) lasts several rounds. So a
 * window without a healthy majority may be one round (rounds at most `windowLimitMs` apart: 2
 * intervals), never two in a row, and every such round is reported.
 */
export class EtcdWatch {
  rounds: EtcdRound[] = [];
  /** Longest time between two round starts (the real interval), ms. */
  maxIntervalMs = 0;
  private ended = 0;
  private worker?: Worker;

  constructor(private readonly members: string[], private readonly tls: { ca: string; cert: string; key: string },
    readonly intervalMs = 250, private readonly timeoutMs = 2500) {}

  get windowLimitMs(): number { return 2 * this.intervalMs; }

  start(): this {
    const boot = `require(${JSON.stringify(require.resolve("tsx/cjs"))}); require(${JSON.stringify(__filename)});`;
    const config: WatchConfig = { members: this.members, tls: this.tls, intervalMs: this.intervalMs, timeoutMs: this.timeoutMs };
    this.worker = new Worker(boot, { eval: true, workerData: { etcdWatch: config } });
    // A test that fails before finish() must not keep the process alive; finish() holds it again.
    this.worker.unref();
    return this;
  }

  async finish(): Promise<void> {
    const w = this.worker;
    if (!w) throw new Error("the etcd watch was not started");
    w.ref();
    const result = await new Promise<{ rounds: EtcdRound[]; maxIntervalMs: number; ended: number }>((resolve, reject) => {
      w.once("message", resolve);
      w.once("error", reject);
      w.once("exit", (code) => reject(new Error(`the etcd watch's worker exited (${code}) before reporting`)));
      w.postMessage("stop");
    });
    await w.terminate();
    Object.assign(this, result);
  }

  get samples(): number { return this.rounds.length; }
  get withoutMajority(): number { return this.rounds.filter((r) => !r.majority).length; }
  get undetermined(): number { return this.rounds.filter((r) => r.undetermined).length; }

  /** Runs of consecutive rounds without a healthy majority: from the first one's start to the next good round's start. */
  windows(): { from: number; ms: number; rounds: number }[] {
    const out: { from: number; ms: number; rounds: number }[] = [];
    let open: { from: number; rounds: number } | undefined;
    for (const r of this.rounds) {
      if (!r.majority) { if (open) open.rounds++; else open = { from: r.at, rounds: 1 }; continue; }
      if (open) { out.push({ from: open.from, ms: r.at - open.from, rounds: open.rounds }); open = undefined; }
    }
    if (open) out.push({ from: open.from, ms: this.ended - open.from, rounds: open.rounds });
    return out;
  }

  describe(): string[] {
    return this.rounds.filter((r) => !r.majority).slice(0, 10)
      .map((r) => `${new Date(r.at).toISOString().slice(11, 23)} ${this.members.map((m, i) => `${m}=${r.states[i]}`).join(" ")}${r.undetermined ? " (undetermined)" : ""}`);
  }
}
