// What "an existing cluster is not disturbed by a new version" means, as verdicts over two
// snapshots of the cluster (before and after the new version's apply) and the write load that
// ran across it. Pure: bench/upgrade.ts gathers the figures, this judges them. It fails closed:
// a figure that could not be read is undefined, shown as "unknown", and fails its verdict.

export interface NodeSnapshot {
  /** pg_postmaster_start_time() as PostgreSQL printed it: a change is a PostgreSQL restart. */
  postmasterStart?: string;
  /** Patroni's role and state for the member (leader/sync_standby/replica; running/streaming...). */
  role?: string;
  state?: string;
}

export interface ClusterSnapshot {
  /** The one member Patroni reports as leader (undefined when none or more than one). */
  leader?: string;
  /** The leader's timeline: a change is a promotion (failover or switchover). */
  timeline?: number;
  nodes: Record<string, NodeSnapshot>;
}

export interface LoadFigures {
  acked?: number;
  failed?: number;
  /** Acknowledged rows missing on the worst node after the load. */
  lost?: number;
  /** Longest time between two acknowledged writes, seconds. */
  longestGapS?: number;
}

export interface ApplyFigures {
  /** The apply's exit code (local/up.ts ApplyReport.code): 0 = every step succeeded. */
  code?: number;
  /** Steps that reported changes. */
  changed?: number;
  seconds?: number;
}

export interface UpgradeFigures {
  /** The database nodes that must appear in both snapshots. */
  nodes: string[];
  before: ClusterSnapshot;
  after: ClusterSnapshot;
  load: LoadFigures;
  /** The new version's apply, under the load. */
  apply: ApplyFigures;
  /** A second apply of the new version: nothing may be left to change. */
  reapply: ApplyFigures;
}

export interface Verdict {
  figure: string;
  before: string;
  after: string;
  ok: boolean;
}

export const UNKNOWN = "unknown";

/** States of a member that serves (Patroni 3.0: "running" leader or replica, "streaming" replica). */
const SERVING = new Set(["running", "streaming"]);

const show = (v: string | number | undefined): string => (v === undefined ? UNKNOWN : String(v));
const known = <T>(...vs: (T | undefined)[]): boolean => vs.every((v) => v !== undefined);

function unchanged(figure: string, before: string | number | undefined, after: string | number | undefined): Verdict {
  return { figure, before: show(before), after: show(after), ok: known(before, after) && before === after };
}

function applied(a: ApplyFigures): string {
  return a.code === undefined ? UNKNOWN : `exit ${a.code}, ${show(a.changed)} changed${a.seconds === undefined ? "" : `, ${a.seconds.toFixed(1)} s`}`;
}

export function upgradeVerdicts(f: UpgradeFigures): Verdict[] {
  const v: Verdict[] = [
    unchanged("leader", f.before.leader, f.after.leader),
    unchanged("leader timeline", f.before.timeline, f.after.timeline),
  ];
  for (const n of f.nodes) {
    const b = f.before.nodes[n] ?? {};
    const a = f.after.nodes[n] ?? {};
    v.push(unchanged(`${n} postmaster start`, b.postmasterStart, a.postmasterStart));
    // A replica that is not serving afterwards (stopped, starting, rebuilding) was disturbed.
    const member = (s: NodeSnapshot) => (known(s.role, s.state) ? `${s.role} ${s.state}` : UNKNOWN);
    v.push({ figure: `${n} member`, before: member(b), after: member(a), ok: known(b.state, a.state, b.role, a.role) && SERVING.has(b.state!) && SERVING.has(a.state!) });
  }
  const { acked, failed, lost, longestGapS } = f.load;
  v.push(
    // A load that acknowledged nothing proves nothing.
    { figure: "writes acknowledged", before: "-", after: show(acked), ok: acked !== undefined && acked > 0 },
    { figure: "failed writes", before: "-", after: show(failed), ok: failed === 0 },
    { figure: "acknowledged rows lost", before: "-", after: show(lost), ok: lost === 0 },
    { figure: "longest gap between acks (s)", before: "-", after: longestGapS === undefined ? UNKNOWN : longestGapS.toFixed(2), ok: longestGapS !== undefined },
    { figure: "apply of the new version", before: "-", after: applied(f.apply), ok: f.apply.code === 0 && f.apply.changed !== undefined },
    { figure: "second apply", before: "-", after: applied(f.reapply), ok: f.reapply.code === 0 && f.reapply.changed === 0 },
  );
  return v;
}

export function passed(verdicts: Verdict[]): boolean {
  return verdicts.length > 0 && verdicts.every((x) => x.ok);
}

/** A small aligned table: figure, before, after, ok/FAIL. */
export function verdictTable(verdicts: Verdict[]): string {
  const rows = [["figure", "before", "after", "result"], ...verdicts.map((x) => [x.figure, x.before, x.after, x.ok ? "ok" : "FAIL"])];
  const widths = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i < 3 ? c.padEnd(widths[i]) : c)).join("  ").trimEnd()).join("\n");
}
