// bench/failover: runs each chaos scenario N times on the local cluster (npm run local first)
// and prints the write gap (seconds between the last acknowledged write before the fault and the
// first after), acknowledged rows, lost rows, whether two writable primaries were ever seen, and
// how well the split-brain probe saw the nodes (unanswered samples, the longest time a node went
// unobserved, the real probe interval).
// Usage: npm run bench:failover -- [N] [scenario ...]
import { loadCluster } from "../local/cluster";
import { SCENARIOS, type ScenarioResult } from "../local/chaos";

const TARGETS: Record<string, string> = {
  "kill-primary-host": "p50 <= 12 s, max <= 15 s",
  "kill-postgres": "<= 6 s",
  "partition-primary": "-",
  "switchover": "<= 3 s",
  "etcd-quorum-loss": "-",
  "patroni-upgrade": "<= 6 s (switchovers, no failover)",
  "pending-restart": "<= 3 s (one switchover per rolling restart)",
  "full-restart": "-",
  "kill-active-balancer": "<= 3 s, the address moved once (issue #12)",
  "kill-haproxy": "<= 3 s, the address moved at most once (issue #12)",
  "stop-haproxy": "<= 3 s, the address moved once (issue #12)",
};

const unobserved = (r: ScenarioResult) => Math.max(...Object.values(r.probe.longestUnobserved).map((g) => g.ms));

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}

async function main() {
  const args = process.argv.slice(2);
  const n = Number(args[0] ?? 5);
  const names = args.slice(1).length ? args.slice(1) : Object.keys(SCENARIOS);
  const c = await loadCluster("local");
  const all: Record<string, ScenarioResult[]> = {};
  for (const name of names) {
    if (!SCENARIOS[name]) throw new Error(`unknown scenario ${name}; known: ${Object.keys(SCENARIOS).join(", ")}`);
    all[name] = [];
    for (let i = 0; i < n; i++) {
      const r = await SCENARIOS[name](c);
      all[name].push(r);
      const p = r.probe;
      console.log(`${name} #${i + 1}: gap ${r.gap.toFixed(1)} s, acked ${r.acked}, lost ${r.lost}, split-brain ${r.splitBrain ? "SEEN" : "none"}, ${r.leaderBefore} -> ${r.leaderAfter}; `
        + `probe ${p.rounds} rounds (longest ${p.maxIntervalMs} ms apart), unknown ${Object.entries(p.unknown).map(([n, k]) => `${n} ${k}`).join(" ")}, `
        + `longest unobserved ${unobserved(r)} ms (bound ${p.unobservedBoundMs} ms)${r.primaryWritableBeforeFault ? "" : ", OLD PRIMARY NOT SEEN WRITABLE BEFORE THE FAULT"}`
        + `${r.notes.length ? `; ${r.notes.join("; ")}` : ""}`);
    }
  }
  const p = c.spec.patroni;
  console.log(`\nfailover benchmark, ${new Date().toISOString()}, ttl ${p.ttl} loop_wait ${p.loopWait} retry_timeout ${p.retryTimeout}, synchronous_mode ${p.synchronousMode}`);
  console.log("| scenario | runs | write gap min / p50 / max (s) | acked | lost | split-brain seen | probe: unknown samples / longest unobserved / longest interval | target |");
  console.log("|---|---|---|---|---|---|---|---|");
  for (const [name, rs] of Object.entries(all)) {
    const g = rs.map((r) => r.gap);
    console.log(`| ${name} | ${rs.length} | ${Math.min(...g).toFixed(1)} / ${pct(g, 50).toFixed(1)} / ${Math.max(...g).toFixed(1)} | ${rs.reduce((a, r) => a + r.acked, 0)} | ${rs.reduce((a, r) => a + r.lost, 0)} | ${rs.some((r) => r.splitBrain) ? "yes" : "no"} | ${rs.reduce((a, r) => a + Object.values(r.probe.unknown).reduce((x, y) => x + y, 0), 0)} / ${Math.max(...rs.map(unobserved))} ms / ${Math.max(...rs.map((r) => r.probe.maxIntervalMs))} ms | ${TARGETS[name] ?? "-"} |`);
  }
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
