// Chaos on the local cluster: a steady write load through the writer port that records which
// commits were acknowledged, a probe that watches every node for a second writable primary,
// and the scenarios that really break the cluster (kill a host, kill PostgreSQL, cut a link,
// switch over, lose etcd members, restart everything) and check what survived.
import { Client } from "pg";
import { readFileSync } from "fs";
import type { LocalCluster } from "./cluster";
import { clientAddress, loadCluster, loadSpec, patroniCluster, type Member } from "./cluster";
import { compile } from "../roles/compile";
import { killNode, nodeExec, nodeInitPid, poweroffNode, setNodeLink, startNode, nodeRunning } from "./hosts";
import { SplitBrainProbe, type NodeState, type ProbeReport } from "./splitBrainProbe";
import { ssh } from "./ssh";
import { apply } from "./up";
import { redact } from "./driver";
import { ports } from "../model/identities";
import { following } from "../roles/standby";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, seconds: number, probe: () => Promise<T | undefined | false>): Promise<T> {
  const end = Date.now() + seconds * 1000;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (e) { last = e; }
    await sleep(250);
  }
  throw new Error(`timed out after ${seconds} s waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ""}`);
}

export const CHAOS_TABLE = "pgc_chaos";

/** Writes numbered rows, one transaction each, through the writer port; keeps the acknowledged ones. */
export class WriteLoad {
  readonly acked: { id: number; at: number }[] = [];
  failures = 0;
  /** Every failed attempt with its error text (secrets redacted), for the reports that print them. */
  readonly errors: { id: number; at: number; message: string }[] = [];
  private next = 1;
  private stopped = false;
  private loop?: Promise<void>;
  private client?: Client;

  constructor(private readonly c: LocalCluster, readonly run: string, private readonly intervalMs = 50, private readonly port: number = ports.writer) {}

  private connect(): Client {
    return new Client({
      host: clientAddress(this.c), port: this.port, user: this.c.spec.postgresql.appUser, password: this.c.secrets.appPassword,
      database: this.c.spec.postgresql.database, ssl: { ca: this.c.pki.ca, rejectUnauthorized: true },
      connectionTimeoutMillis: 1000, query_timeout: 3000,
    });
  }

  start(): this {
    this.loop = (async () => {
      while (!this.stopped) {
        const t = Date.now();
        const id = this.next++;
        try {
          if (!this.client) {
            const cl = this.connect();
            cl.on("error", () => {}); // a dropped session surfaces on the next query
            this.client = cl;
            await cl.connect();
          }
          await this.client.query(`insert into ${CHAOS_TABLE}(run, id) values ($1, $2)`, [this.run, id]);
          this.acked.push({ id, at: Date.now() });
        } catch (e) {
          this.failures++;
          this.errors.push({ id, at: Date.now(), message: redact(e instanceof Error ? e.message : String(e), Object.values(this.c.secrets)) });
          const old = this.client;
          this.client = undefined;
          old?.end().catch(() => {});
        }
        await sleep(Math.max(0, this.intervalMs - (Date.now() - t)));
      }
    })();
    return this;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    await this.client?.end().catch(() => {});
  }

  /** Longest time between two acknowledged writes after `from` (the write outage), seconds. */
  gapSince(from: number): number {
    const times = [from, ...this.acked.filter((a) => a.at >= from).map((a) => a.at)];
    let gap = 0;
    for (let i = 1; i < times.length; i++) gap = Math.max(gap, times[i] - times[i - 1]);
    return gap / 1000;
  }

  /** Writes are flowing again: an acknowledgement in the last second. */
  flowing(): boolean {
    const last = this.acked[this.acked.length - 1];
    return !!last && Date.now() - last.at < 1000;
  }
}

export interface ScenarioResult {
  scenario: string;
  /** Writer outage: longest gap between acknowledged writes, seconds. */
  gap: number;
  acked: number;
  /** Acknowledged rows missing on some node after the cluster settled. */
  lost: number;
  splitBrain: boolean;
  failures: number;
  leaderBefore: string;
  leaderAfter: string;
  /** What the split-brain probe saw and could not see. */
  probe: ProbeReport;
  /** The old primary was observed writable right before the fault. */
  primaryWritableBeforeFault: boolean;
  /** The old primary's states from the fault until the scenario's recovery ended. */
  primaryDuringFault: Partial<Record<NodeState, number>>;
  notes: string[];
}

/** The database nodes the cluster should have (a leaving one is being, or has been, decommissioned). */
const dbNodes = (c: LocalCluster) => c.hosts.filter((h) => h.roles.includes("postgres") && !h.leaving).map((h) => h.name);

export async function leader(c: LocalCluster): Promise<string> {
  return until("a leader", 60, async () => (await patroniCluster(c)).find((m) => m.role === "leader")?.name);
}

/**
 * Every database node running under Patroni, one leader, the others streaming — and, in
 * synchronous mode, a synchronous standby assigned: until then Patroni would (rightly) refuse to
 * fail over, since commits were being acknowledged without a standby.
 */
export async function healthy(c: LocalCluster, seconds = 120): Promise<Member[]> {
  const what = `a healthy cluster (1 leader, all others streaming${c.spec.patroni.synchronousMode ? ", a synchronous standby" : ""})`;
  // A standby cluster's leader is its standby leader (it follows the primary cluster).
  const lead = following(c.spec) ? "standby_leader" : "leader";
  return until(what, seconds, async () => {
    const ms = await patroniCluster(c);
    const names = dbNodes(c);
    const ok = ms.length === names.length && ms.filter((m) => m.role === lead).length === 1
      && ms.every((m) => m.state === "running" || m.state === "streaming") && ms.every((m) => m.role === lead || (typeof m.lag === "number" && m.lag < 1_048_576))
      && (!c.spec.patroni.synchronousMode || ms.some((m) => m.role === "sync_standby"));
    return ok ? ms : undefined;
  });
}

async function sshReady(c: LocalCluster, node: string): Promise<boolean> {
  const r = await ssh(c.ssh, c.targets[node], "systemctl is-system-running", "", 5000, 1);
  return /^(running|degraded)/m.test(r.out);
}

export async function ensureChaosTable(c: LocalCluster): Promise<void> {
  const w = new WriteLoad(c, "setup");
  const cl = (w as any).connect() as Client;
  await cl.connect();
  await cl.query(`create table if not exists ${CHAOS_TABLE}(run text not null, id int not null, at timestamptz not null default now(), primary key (run, id))`);
  await cl.end();
}

/**
 * Acknowledged ids of `run` missing on `node` (read inside the node over its socket), or the
 * reason it could not be read right now: PostgreSQL restarting under Patroni (a rejoining node
 * may restart right after the cluster looked healthy) answers "shutting down" / "starting up".
 */
async function missingOn(node: string, run: string, acked: number[]): Promise<number | string> {
  const r = await nodeExec(node, ["runuser", "-u", "postgres", "--", "psql", "-XAtq", "-d", "app", "-c", `select id from ${CHAOS_TABLE} where run = '${run}'`], 10_000);
  if (r.code !== 0) return r.out.trim();
  const have = new Set(r.out.split("\n").filter(Boolean).map(Number));
  return acked.filter((id) => !have.has(id)).length;
}

/**
 * Acked rows missing on the worst node, once replicas had a bounded time (30 s) to catch up and
 * to answer. A node that could not be read within it fails closed (an error naming it), never 0.
 */
export async function lostRows(c: LocalCluster, run: string, acked: number[]): Promise<number> {
  let worst = 0;
  for (const n of dbNodes(c)) {
    let missing = await missingOn(n, run, acked);
    const end = Date.now() + 30_000;
    while (missing !== 0 && Date.now() < end) {
      await sleep(500);
      missing = await missingOn(n, run, acked);
    }
    if (typeof missing === "string") throw new Error(`cannot read ${n} within 30 s: ${missing}`);
    worst = Math.max(worst, missing);
  }
  return worst;
}

type Action = (c: LocalCluster, leader: string, notes: string[]) => Promise<void>;

async function scenario(c: LocalCluster, name: string, act: Action, opts: { recover?: Action; settleMs?: number; cleanup?: (c: LocalCluster, leader: string) => Promise<void> } = {}): Promise<ScenarioResult> {
  await healthy(c);
  await ensureChaosTable(c);
  const before = await leader(c);
  const run = `${name}-${Date.now()}`;
  const notes: string[] = [];
  const probe = new SplitBrainProbe(dbNodes(c)).start();
  const load = new WriteLoad(c, run).start();
  let t0 = 0, tRecovered = 0, writableBefore = false;
  try {
    await until("writes flowing", 30, async () => load.flowing());
    // The probe must see the primary as what it is before the fault: else it proves nothing after.
    await until(`the probe to observe ${before} writable`, 10, async () => probe.lastState(before) === "writable");
    await sleep(1000);
    writableBefore = probe.lastState(before) === "writable";
    t0 = Date.now();
    await act(c, before, notes);
    // Past the acknowledgements that were already in flight when the fault hit.
    await sleep(1500);
    await until("writes flowing again after the fault", 120, async () => load.flowing());
    await sleep(opts.settleMs ?? 3000);
    if (opts.recover) await opts.recover(c, before, notes);
    tRecovered = Date.now();
  } catch (e) {
    // Leave the cluster whole for what runs next, or say loudly that it is not.
    await finish(c, name, opts.cleanup, before, load, probe, e as Error);
    throw e;
  }
  const report = await finish(c, name, opts.cleanup, before, load, probe);
  const gap = load.gapSince(t0);
  for (const x of probe.seen.slice(0, 5)) notes.push(`two writable at ${new Date(x.at).toISOString().slice(11, 23)}: ${x.nodes.join(", ")}`);
  const after = await leader(c);
  await healthy(c, 180);
  const acked = load.acked.map((a) => a.id);
  const lost = await lostRows(c, run, acked);
  return {
    scenario: name, gap, acked: acked.length, lost, splitBrain: probe.seen.length > 0, failures: load.failures, leaderBefore: before, leaderAfter: after,
    probe: report, primaryWritableBeforeFault: writableBefore, primaryDuringFault: probe.statesOf(before, t0, tRecovered), notes,
  };
}

/**
 * Stops the load and the probe and runs the scenario's clean-up. After a failed scenario the
 * cluster is settled (every node up, healthy, re-applied, nothing left to change); a clean-up or
 * a settle that fails is an error that names the scenario, never swallowed.
 */
async function finish(c: LocalCluster, name: string, cleanup: ((c: LocalCluster, leader: string) => Promise<void>) | undefined, before: string,
  load: WriteLoad, probe: SplitBrainProbe, failed?: Error): Promise<ProbeReport> {
  const problems: string[] = [];
  let report: ProbeReport | undefined;
  try { await cleanup?.(c, before); } catch (e) { problems.push(`clean-up failed: ${(e as Error).message}`); }
  await load.stop();
  try { report = await probe.stop(); } catch (e) { problems.push(`the split-brain probe failed: ${(e as Error).message}`); }
  if (failed) {
    try { await settle(c, (l) => console.log(`      [settle after ${name}] ${l}`)); } catch (e) { problems.push(`could not settle the cluster: ${(e as Error).message}`); }
  }
  if (problems.length || !report) throw new Error(`scenario ${name}${failed ? ` failed (${failed.message}), and` : ":"} ${problems.join("; ")}`);
  return report;
}

/**
 * Brings the cluster back to a settled state after a failure: every database host running,
 * links up, etcd started, a healthy Patroni cluster, a re-apply (which runs any handler a failed
 * step left pending) and a check that finds nothing left to change. Throws when it cannot.
 */
export async function settle(c: LocalCluster, log: (l: string) => void = () => {}): Promise<void> {
  await startStopped(c);
  for (const n of dbNodes(c)) setNodeLink(n, true);
  await Promise.all(dbNodes(c).map(async (n) => {
    const r = await ssh(c.ssh, c.targets[n], "systemctl start --no-block etcd", "", 30_000);
    if (r.code !== 0) throw new Error(`etcd on ${n} did not start: ${r.out.trim()}`);
  }));
  await healthy(c, 180);
  const applied = await apply(c, log);
  if (applied.code !== 0) throw new Error(`the re-apply failed: ${failedSteps(applied)}`);
  const check = await apply(c, () => {}, true);
  if (check.code !== 0) throw new Error(`after a re-apply, check mode still finds: ${check.outcomes.filter((o) => o.outcome !== "ok").map((o) => `${o.step.id}: ${o.result?.changed.join(", ") ?? o.reason}`).join("; ")}`);
  await healthy(c, 180);
}

/** The stack's spec with one PostgreSQL parameter set. */
function withParameter(c: LocalCluster, name: string, value: string) {
  return loadSpec(c.spec.stack, { postgresql: { parameters: { ...c.spec.postgresql.parameters, [name]: value } } });
}

async function psqlOn(c: LocalCluster, node: string, sql: string): Promise<string> {
  const r = await ssh(c.ssh, c.targets[node], `cd / && runuser -u postgres -- psql -XAtqc ${JSON.stringify(sql)}`, "", 30_000);
  if (r.code !== 0) throw new Error(`${node}: ${sql}: ${r.out}`);
  return r.out.trim();
}

function failedSteps(r: Awaited<ReturnType<typeof apply>>): string {
  return r.outcomes.filter((o) => o.outcome === "failed").map((o) => `${o.step.id}: ${o.tail?.join(" | ")}`).join("; ") || `exit ${r.code}`;
}

async function rejoin(c: LocalCluster, node: string, notes: string[]): Promise<void> {
  const m = await until(`${node} to rejoin as a streaming replica`, 180, async () => {
    const x = (await patroniCluster(c)).find((y) => y.name === node);
    return x && x.role !== "leader" && (x.state === "running" || x.state === "streaming") && x.timeline !== undefined && typeof x.lag === "number" ? x : undefined;
  });
  notes.push(`${node} rejoined as ${m.role} (timeline ${m.timeline})`);
}

async function patronictl(c: LocalCluster, node: string, args: string): Promise<string> {
  const r = await ssh(c.ssh, c.targets[node], `patronictl -c /etc/patroni/config.yml ${args}`, "", 60_000);
  if (r.code !== 0) throw new Error(`patronictl ${args} on ${node}: ${r.out.trim()}`);
  return r.out;
}

export const SCENARIOS: Record<string, (c: LocalCluster) => Promise<ScenarioResult>> = {
  /** 1 + 7: power cut on the primary's host; it comes back and rejoins as a replica. */
  "kill-primary-host": (c) => scenario(c, "kill-primary-host", async (_c, l) => killNode(l), {
    recover: async (c2, l, notes) => {
      await startNode(c2.spec, l, () => sshReady(c2, l));
      await rejoin(c2, l, notes);
    },
    cleanup: (c2) => startStopped(c2),
  }),
  /** 2: PostgreSQL killed on the primary; Patroni stays and restarts it. */
  "kill-postgres": (c) => scenario(c, "kill-postgres", async (_c, l, notes) => {
    const r = await nodeExec(l, ["bash", "-c", "kill -9 $(head -1 /var/lib/postgresql/15/main/postmaster.pid)"]);
    if (r.code !== 0) throw new Error(`could not kill PostgreSQL on ${l}: ${r.out}`);
    notes.push(`postmaster on ${l} killed`);
  }),
  /** 3 + 7: the primary's link is cut (it keeps running); it must demote itself, then rejoin. */
  "partition-primary": (c) => scenario(c, "partition-primary", async (_c, l) => setNodeLink(l, false), {
    recover: async (c2, l, notes) => {
      const demoted = await until(`${l} (isolated) to demote itself`, 60, async () => {
        const r = await nodeExec(l, ["runuser", "-u", "postgres", "--", "psql", "-XAtqc", "select pg_is_in_recovery()"], 2000);
        return r.code === 0 && r.out.trim() === "t" ? true : r.code !== 0 ? "stopped" : false;
      });
      notes.push(`isolated ${l}: ${demoted === true ? "demoted to read-only" : "PostgreSQL stopped"}`);
      setNodeLink(l, true);
      await rejoin(c2, l, notes);
    },
    cleanup: async (_c, l) => setNodeLink(l, true),
  }),
  /** 4: planned switchover to a replica. */
  "switchover": (c) => scenario(c, "switchover", async (c2, l, notes) => {
    // In synchronous mode only the synchronous standby may take over without losing commits.
    const ms = await patroniCluster(c2);
    const candidate = (ms.find((m) => m.role === "sync_standby") ?? ms.find((m) => m.role === "replica"))!.name;
    const out = await patronictl(c2, l, `switchover --leader ${l} --candidate ${candidate} --force`);
    notes.push(`switchover ${l} -> ${candidate}: ${out.trim().split("\n")[0]}`);
  }, { settleMs: 2000 }),
  /**
   * A pgcluster upgrade that changes the Patroni launcher: simulated by editing the launcher on
   * every database node, then re-applying (which restores it and restarts Patroni node by node,
   * the leader last after a switchover).
   */
  "patroni-upgrade": (c) => scenario(c, "patroni-upgrade", async (c2, _l, notes) => {
    const launcher = "/usr/local/lib/pgcluster/pgcluster-patroni";
    const pids = async () => Object.fromEntries(await Promise.all(dbNodes(c2).map(async (n) =>
      [n, (await ssh(c2.ssh, c2.targets[n], "systemctl show -p MainPID --value patroni", "", 30_000)).out.trim()] as const)));
    const before = await pids();
    for (const n of dbNodes(c2)) await ssh(c2.ssh, c2.targets[n], `echo '# an older pgcluster' >> ${launcher}`, "", 30_000);
    const r = await apply(c2, () => {});
    if (r.code !== 0) throw new Error(`re-apply failed: ${failedSteps(r)}`);
    const after = await pids();
    const restarted = dbNodes(c2).filter((n) => after[n] && after[n] !== before[n]);
    notes.push(`Patroni restarted on ${restarted.join(", ") || "no node"}`);
  }),
  /**
   * A setting PostgreSQL takes only on a restart (shared_buffers) changed in the stack: the apply
   * restarts the nodes one at a time, the leader last after a switchover to its synchronous
   * standby. The clean-up applies the stack as it was (a second rolling restart).
   */
  "pending-restart": (c) => scenario(c, "pending-restart", async (c2, l, notes) => {
    const spec = withParameter(c2, "shared_buffers", "256MB");
    const starts = async () => Object.fromEntries(await Promise.all(dbNodes(c2).map(async (n) => [n, await psqlOn(c2, n, "select pg_postmaster_start_time()")] as const)));
    const before = await starts();
    const r = await apply({ ...c2, spec, plan: compile(spec, c2.hosts, c2.pki, c2.secrets) }, () => {});
    if (r.code !== 0) throw new Error(`apply with shared_buffers 256MB failed: ${failedSteps(r)}`);
    const after = await starts();
    notes.push(`leader after the apply: ${await leader(c2)}`);
    const order = dbNodes(c2).filter((n) => after[n] !== before[n]).sort((a, b) => Date.parse(after[a]) - Date.parse(after[b]));
    notes.push(`restarted in order: ${order.join(", ") || "none"} (leader before: ${l})`);
    const values = await Promise.all(dbNodes(c2).map(async (n) => `${n} ${await psqlOn(c2, n, "show shared_buffers")}`));
    notes.push(`shared_buffers: ${values.join(", ")}`);
    const reported = r.outcomes.filter((o) => o.result?.changed.some((x) => x.startsWith("postgresql:restart pending"))).map((o) => o.step.id).sort();
    notes.push(`restart reported by: ${reported.join(", ") || "none"}`);
  }, {
    settleMs: 2000,
    cleanup: async (c2) => {
      const r = await apply(c2, () => {});
      if (r.code !== 0) throw new Error(`apply of the stack as it was failed: ${failedSteps(r)}`);
    },
  }),
  /**
   * A rolling minor update of PostgreSQL (issue 13 item 4): the cluster moved to the other
   * postgresql-15 the mirror carries (bookworm's if it runs bookworm-security's, and back), one
   * node at a time, the leader last after a switchover. The clean-up brings it back to the newest.
   */
  "minor-update": (c) => scenario(c, "minor-update", async (c2, l, notes) => {
    const running = await psqlOn(c2, l, "show server_version");
    const madison = (await ssh(c2.ssh, c2.targets[l], "apt-cache madison postgresql-15", "", 30_000)).out;
    const other = madison.split("\n").map((x) => x.split("|")[1]?.trim()).filter((v) => v && !running.startsWith(v.split("-")[0] + " "))[0];
    if (!other) throw new Error(`the mirror carries no other postgresql-15 than the one running (${running}): apt-cache madison says ${madison}`);
    const u = await loadCluster(c2.spec.stack, { packages: { versions: { postgresql: other } } });
    const r = await apply(u, () => {});
    if (r.code !== 0) throw new Error(`apply with packages.versions.postgresql ${other} failed: ${failedSteps(r)}`);
    const versions = await Promise.all(dbNodes(c2).map(async (n) => `${n} ${await psqlOn(c2, n, "show server_version")}`));
    notes.push(`from ${running} to ${other}: ${versions.join(", ")}; leader after: ${await leader(c2)}; apply ${r.seconds.toFixed(1)} s`);
  }, {
    settleMs: 2000,
    cleanup: async (c2) => {
      const r = await apply(await loadCluster(c2.spec.stack, { packages: { newest: true } }), () => {});
      if (r.code !== 0) throw new Error(`apply back to the newest packages failed: ${failedSteps(r)}`);
    },
  }),
  /** 5: one etcd member lost (quorum kept), then a second (quorum lost): failsafe_mode keeps the primary. */
  "etcd-quorum-loss": (c) => scenario(c, "etcd-quorum-loss", async (c2, l, notes) => {
    const others = dbNodes(c2).filter((n) => n !== l);
    await ssh(c2.ssh, c2.targets[others[0]], "systemctl stop etcd", "", 30_000);
    notes.push(`etcd stopped on ${others[0]}`);
    await sleep(5000);
    await ssh(c2.ssh, c2.targets[others[1]], "systemctl stop etcd", "", 30_000);
    notes.push(`etcd stopped on ${others[1]}: quorum lost`);
    await sleep(Math.max(15_000, c2.spec.patroni.ttl * 1500));
  }, {
    recover: async (c2, _l, notes) => {
      for (const n of dbNodes(c2)) await ssh(c2.ssh, c2.targets[n], "systemctl start etcd", "", 60_000);
      notes.push("etcd started again on all members");
    },
    cleanup: async (c2) => { await Promise.all(dbNodes(c2).map((n) => ssh(c2.ssh, c2.targets[n], "systemctl start --no-block etcd", "", 30_000))); },
  }),
  /** #12: the balancer holding the floating address loses power; the other one takes the address. */
  "kill-active-balancer": balancerScenario("kill-active-balancer", async (_c, holder, notes) => {
    killNode(holder);
    notes.push(`${holder} killed (power cut)`);
  }, async (c2, holder, notes) => {
    const t = Date.now();
    await startNode(c2.spec, holder, () => sshReady(c2, holder));
    await balancerServing(holder);
    notes.push(`${holder} back and serving after ${((Date.now() - t) / 1000).toFixed(1)} s`);
  }),
  /** #12: HAProxy alone killed (-9, every process of it) on the balancer holding the floating address. */
  "kill-haproxy": balancerScenario("kill-haproxy", async (_c, holder, notes) => {
    const r = await nodeExec(holder, ["pkill", "-9", "-x", "haproxy"]);
    if (r.code !== 0) throw new Error(`pkill haproxy on ${holder}: ${r.out.trim()}`);
    notes.push(`every haproxy process on ${holder} killed (SIGKILL)`);
  }, async (_c2, holder, notes) => {
    const t = Date.now();
    await balancerServing(holder);
    notes.push(`HAProxy on ${holder} serving again ${((Date.now() - t) / 1000).toFixed(1)} s after the writes resumed`);
  }),
  /** #12: HAProxy stopped and staying down on the holder: keepalived's check gives the address up. */
  "stop-haproxy": balancerScenario("stop-haproxy", async (_c, holder, notes) => {
    const r = await nodeExec(holder, ["systemctl", "stop", "haproxy"], 30_000);
    if (r.code !== 0) throw new Error(`systemctl stop haproxy on ${holder}: ${r.out.trim()}`);
    notes.push(`HAProxy stopped on ${holder} (it stays down until started again)`);
  }, async (_c2, holder, notes) => {
    const r = await nodeExec(holder, ["systemctl", "start", "haproxy"], 30_000);
    if (r.code !== 0) throw new Error(`systemctl start haproxy on ${holder}: ${r.out.trim()}`);
    await balancerServing(holder);
    notes.push(`HAProxy started again on ${holder}`);
  }),
  /** 6: every database host powered off, then started: same data, a leader, writes resume. */
  "full-restart": (c) => scenario(c, "full-restart", async (c2, _l, notes) => {
    await Promise.all(dbNodes(c2).map((n) => poweroffNode(n)));
    notes.push("all database hosts powered off");
    await Promise.all(dbNodes(c2).map((n) => startNode(c2.spec, n, () => sshReady(c2, n))));
    notes.push("all database hosts started");
  }, { cleanup: (c2) => startStopped(c2) }),
};

const balancerNodes = (c: LocalCluster) => c.hosts.filter((h) => h.roles.includes("balancer")).map((h) => h.name);

/** The addresses a network namespace's routing trie marks as its own ("/32 host LOCAL" leaves). */
export function localAddresses(fibTrie: string): Set<string> {
  const own = new Set<string>();
  let leaf = "";
  for (const line of fibTrie.split("\n")) {
    const l = /^\s*\|-- (\S+)$/.exec(line);
    if (l) leaf = l[1];
    else if (leaf && /^\s*\/32 host LOCAL\b/.test(line)) own.add(leaf);
  }
  return own;
}

/**
 * Which running balancers carry the floating address now, read from the host: each balancer's
 * routing trie (/proc/<its init>/net/fib_trie), one after the other with no process in between,
 * so that the balancers are read within microseconds of each other (two reads apart in time would
 * show the address on both during a handover that never overlapped). A stopped balancer holds
 * nothing; one that runs and cannot be read makes the answer unknown: an error, never "free".
 */
/**
 * A process exiting or exited, from its /proc/<pid>/stat line ("pid (comm) state ppid pgrp
 * session tty tpgid flags …"; the comm may hold spaces and parentheses, the fields follow the
 * last ")"): a zombie or dead state, or the kernel's PF_EXITING flag (0x4), set at the start of
 * its exit, before it lets go of its namespaces (its /proc/<pid>/net then reads ENOENT).
 */
export function exitingFromStat(stat: string): boolean {
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const [state, flags] = [fields[0], Number(fields[6])];
  return state === "Z" || state === "X" || state === "x" || (Number.isInteger(flags) && (flags & 0x4) !== 0);
}

/** The process is gone, exiting or a zombie: its network namespace is gone or going. */
function initDead(pid: number): boolean {
  try {
    return exitingFromStat(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return true;
  }
}

export function floatingHolders(c: LocalCluster): string[] {
  const floating = c.spec.network.floatingAddress;
  if (!floating) throw new Error(`stack ${c.spec.stack} has no network.floatingAddress`);
  const holders: string[] = [];
  const unknown: string[] = [];
  for (const b of balancerNodes(c)) {
    // A node whose init is gone (killed: its PID namespace dies with it, and its network with
    // that) holds nothing; a read that fails while the same init still lives is unknown. The
    // init may die between finding it and reading: asked again, with the init found then.
    let read: "holds" | "free" | string = "free";
    for (let attempt = 0, init = nodeInitPid(b); init && attempt < 3; attempt++, init = nodeInitPid(b)) {
      try {
        read = localAddresses(readFileSync(`/proc/${init}/net/fib_trie`, "utf8")).has(floating) ? "holds" : "free";
        break;
      } catch (e) {
        read = initDead(init) ? "free" : `${b} (${(e as Error).message})`;
        if (read === "free") continue;
      }
    }
    if (read === "holds") holders.push(b);
    else if (read !== "free") unknown.push(read);
  }
  if (unknown.length) throw new Error(`cannot read the addresses of ${unknown.join(", ")}`);
  return holders;
}

/** A change of the floating address's holders: seen at `at`, last seen as before at `before`. */
export type HolderChange = { at: number; before: number; holders: string[] };

/**
 * The times two balancers held the floating address at once, each as an upper bound: from the
 * last sample before it was seen twice to the first sample after (to `end` if it never ended).
 */
export function doubleHolds(changes: HolderChange[], end: number): { from: number; ms: number }[] {
  const out: { from: number; ms: number }[] = [];
  for (let i = 0; i < changes.length; i++) {
    if (changes[i].holders.length < 2 || (i > 0 && changes[i - 1].holders.length >= 2)) continue;
    const next = changes.slice(i + 1).find((x) => x.holders.length < 2);
    out.push({ from: changes[i].at, ms: (next?.at ?? end) - changes[i].before });
  }
  return out;
}

/** Samples the floating address's holder(s) every ~50 ms (host reads, no process); every change is kept. */
export class FloatingWatch {
  readonly changes: HolderChange[] = [];
  readonly errors: string[] = [];
  private stopped = false;
  private stoppedAt = 0;
  private loop?: Promise<void>;
  constructor(private readonly c: LocalCluster) {}
  start(): this {
    this.loop = (async () => {
      let lastAt = Date.now();
      while (!this.stopped) {
        try {
          const h = floatingHolders(this.c).sort();
          const at = Date.now();
          const last = this.changes[this.changes.length - 1];
          if (!last || last.holders.join() !== h.join()) this.changes.push({ at, before: lastAt, holders: h });
          lastAt = at;
        } catch (e) { this.errors.push((e as Error).message); }
        await sleep(50);
      }
      this.stoppedAt = Date.now();
    })();
    return this;
  }
  async stop(): Promise<void> { this.stopped = true; await this.loop; }
  /** Times the address arrived on a balancer other than the one before it (gaps with no holder skipped). */
  moves(): number {
    const owners = this.changes.filter((x) => x.holders.length === 1).map((x) => x.holders[0]);
    return owners.filter((o, i) => i > 0 && o !== owners[i - 1]).length;
  }
  /** The longest time two balancers held it at once (an upper bound, ms; 0 if never seen). */
  longestDoubleHold(): number { return Math.max(0, ...doubleHolds(this.changes, this.stoppedAt || Date.now()).map((d) => d.ms)); }
  describe(): string {
    const t0 = this.changes[0]?.at ?? 0;
    return this.changes.map((x) => `+${((x.at - t0) / 1000).toFixed(2)} s ${x.holders.join("+") || "nobody"}`).join(", ");
  }
}

/** The one balancer holding the floating address (bounded wait). */
async function soleHolder(c: LocalCluster, seconds = 30): Promise<string> {
  return until("exactly one balancer holding the floating address", seconds, async () => {
    const h = await floatingHolders(c);
    return h.length === 1 ? h[0] : undefined;
  });
}

async function keepalivedState(node: string): Promise<string> {
  const r = await nodeExec(node, ["bash", "-c", "journalctl -b -u keepalived -o cat --no-pager | grep -oE 'Entering (MASTER|BACKUP|FAULT) STATE' | tail -n 1"], 10_000);
  return r.code === 0 ? r.out.trim().replace(/^Entering | STATE$/g, "") || "none" : `unknown (${r.out.trim()})`;
}

/**
 * Balancer faults: the floating address must move once to the other balancer (writes through it
 * resume), and stay there when the failed one is back (no second move); the pair is whole again
 * (the returned one BACKUP, HAProxy serving on it).
 */
function balancerScenario(name: string, fault: (c: LocalCluster, holder: string, notes: string[]) => Promise<void>, returns: (c: LocalCluster, holder: string, notes: string[]) => Promise<void>) {
  return (c: LocalCluster) => {
    let watch: FloatingWatch | undefined;
    let victim = "";
    let said: string[] = [];
    return scenario(c, name, async (c2, _l, notes) => {
      said = notes;
      victim = await soleHolder(c2);
      watch = new FloatingWatch(c2).start();
      await sleep(500);
      notes.push(`floating address on ${victim}`);
      await fault(c2, victim, notes);
    }, {
      recover: async (c2, _l, notes) => {
        const now = await soleHolder(c2);
        notes.push(`floating address on ${now} after the fault`);
        await returns(c2, victim, notes);
        // The returned balancer must not take the address back (nopreempt): watch for a while.
        await sleep(8000);
        notes.push(`${victim} keepalived state: ${await keepalivedState(victim)}`);
      },
      cleanup: async (c2) => {
        await watch?.stop();
        if (watch) {
          said.push(`address holders: ${watch.describe()}`);
          said.push(`moves: ${watch.moves()}`);
          said.push(`held by two balancers at once: ${watch.longestDoubleHold() ? `at most ${watch.longestDoubleHold()} ms` : "never seen"}`);
          said.push(`unreadable samples: ${watch.errors.length}${watch.errors.length ? ` (last: ${watch.errors[watch.errors.length - 1]})` : ""}`);
        }
        await startStoppedBalancers(c2);
      },
    });
  };
}

/** Boot every balancer that is not running (a balancer scenario that failed half-way). */
async function startStoppedBalancers(c: LocalCluster): Promise<void> {
  await Promise.all(balancerNodes(c).filter((n) => !nodeRunning(n)).map((n) => startNode(c.spec, n, () => sshReady(c, n))));
}

/** Both HAProxy and keepalived active on `node` (bounded wait). */
async function balancerServing(node: string, seconds = 60): Promise<void> {
  await until(`HAProxy and keepalived active on ${node}`, seconds, async () => (await nodeExec(node, ["systemctl", "is-active", "haproxy", "keepalived"])).code === 0);
}

/** Boot every database host that is not running (a scenario that failed half-way). */
async function startStopped(c: LocalCluster): Promise<void> {
  await Promise.all(dbNodes(c).filter((n) => !nodeRunning(n)).map((n) => startNode(c.spec, n, () => sshReady(c, n))));
}
