// restore: the steps of a point-in-time restore of the whole cluster (npm run restore). Not a
// role of the plan: local/restore.ts runs them in phases, then applies the plan. Each phase is
// a step of its own, so the driver reports exactly where a restore stopped.
import { RESTORE_TIME } from "../../model/config";
import { PATRONI_CONFIG, PG_BIN, PG_DATA, ports, RESTORE, tlsDir } from "../../model/identities";
import { checkShellReferences, shellFn, StepBuilder } from "../step";
import { PRELUDE, sha256, stepScript } from "../script";
import { stepId, type Host, type RoleContext, type Step, type StepNode } from "../types";
import type { ClusterSpec } from "../../model/config";
import { bootstrapHost } from "../hosts";
import { patroniFunctions } from "../patroni";
import { stanza } from "../backup";

export const ROLE = "restore";

export const PHASES = ["prepare", "stop-replica", "stop", "dcs-reset", "data", "lead", "follow", "done"] as const;
export type Phase = (typeof PHASES)[number];

const FN: Record<Phase, string> = {
  prepare: "pgc_restore_prepare", "stop-replica": "pgc_restore_stop_replica",
  stop: "pgc_restore_stop", "dcs-reset": "pgc_restore_dcs_reset", data: "pgc_restore_data",
  lead: "pgc_restore_lead", follow: "pgc_restore_follow", done: "pgc_restore_done",
};

/** The restore's target: the end of the archive, or a time (validated: ISO 8601 with a zone). */
export type RestoreTarget = { kind: "latest" } | { kind: "time"; time: string };


/** `--to`: "latest" or an ISO 8601 time with its zone (e.g. 2026-11-28T03:20:00.250Z); anything else refused. */
export function parseRestoreTarget(text: string | undefined): RestoreTarget {
  if (text === "latest") return { kind: "latest" };
  if (text === undefined || !RESTORE_TIME.test(text) || Number.isNaN(Date.parse(text)))
    throw new Error(`--to ${JSON.stringify(text ?? "")}: give "latest" or an ISO 8601 time with its zone, e.g. 2026-11-28T03:20:00Z or 2026-11-28T04:20:00.250+01:00`);
  return { kind: "time", time: text };
}

export function describeTarget(t: RestoreTarget): string {
  return t.kind === "latest" ? "latest (the end of the archived WAL)" : `time ${t.time}`;
}

/** pgBackRest's restore options for the target (recovery then promotes; timeline: the latest). */
export function pgbackrestRestoreArgs(t: RestoreTarget, timeline: number | undefined): string[] {
  // The timeline the cluster lived on when the restore began: a restore follows its history.
  // "latest" could be a timeline an interrupted earlier attempt created, which holds no commit
  // after the target (PostgreSQL then refuses: the target was never reached).
  const tl = timeline === undefined ? [] : [`--target-timeline=${timeline}`];
  return t.kind === "latest"
    ? ["--type=default", ...tl]
    : ["--type=time", `--target=${pgTime(t.time)}`, "--target-action=promote", ...tl];
}

/** The timeline an earlier, interrupted run recorded in its marker file (its `timeline=` line). */
export function markerTimeline(marker: string): number | undefined {
  const m = /^timeline=(\d{1,9})$/m.exec(marker);
  return m ? Number(m[1]) : undefined;
}

/**
 * The time as PostgreSQL and pgBackRest's backup selection both read it: UTC, a space before
 * the clock, the fraction as given (microseconds survive), "+00".
 */
export function pgTime(iso: string): string {
  const fraction = /\.(\d{1,6})/.exec(iso)?.[1];
  const utc = new Date(Date.parse(iso)).toISOString(); // 2026-11-28T03:20:00.250Z
  return `${utc.slice(0, 10)} ${utc.slice(11, 19)}${fraction ? `.${fraction}` : ""}+00`;
}

export interface RestoreOptions {
  target: RestoreTarget;
  /** Go on when a former primary's last WAL cannot be archived (its writes since are lost). */
  loseUnarchived: boolean;
  /** The timeline whose history the restore follows; undefined: the archive's latest. */
  timeline?: number;
  /** The repository's cluster: a data directory of another (a rebuilt node's new, empty cluster) is not archived. */
  systemId?: string;
  /**
   * A restore from the stack config (restore.id): decided on the hosts (its prepare step: the
   * checks, the timeline; each node asks the repository's system id), as no driver looks first.
   */
  id?: string;
}

/** The step of `phase` on `host` (a database node of ctx). */
export function restoreStep(ctx: RoleContext, host: Host, phase: Phase, opts: RestoreOptions, after: string[] = []): Step {
  if (!host.roles.includes("postgres")) throw new Error(`restore: ${host.name} is not a database node`);
  const auto = opts.id !== undefined;
  if (auto && !/^[A-Za-z0-9._-]{1,40}$/.test(opts.id!)) throw new Error(`restore: id ${JSON.stringify(opts.id)} is not a token`);
  const s = new StepBuilder();
  patroniFunctions(s, ctx, host);
  s.shell(ROLE, "restore.sh", {
    dataDir: PG_DATA, aside: RESTORE.aside, binDir: PG_BIN, stanza: stanza(ctx.spec), marker: RESTORE.marker,
    targetText: describeTarget(opts.target), loseUnarchived: opts.loseUnarchived,
    restoreArgs: pgbackrestRestoreArgs(opts.target, auto ? undefined : opts.timeline),
    timeline: auto ? "auto" : opts.timeline === undefined ? "latest" : String(opts.timeline),
    systemId: auto ? "auto" : opts.systemId !== undefined && /^\d{1,20}$/.test(opts.systemId) ? opts.systemId : "",
    restoreId: opts.id ?? "", targetTime: opts.target.kind === "time" ? opts.target.time : "", planFile: RESTORE.plan, doneFile: RESTORE.done,
    dcsPrefix: `/pgcluster/${ctx.spec.clusterName}/`, tls: tlsDir.patroni, ports, configFile: PATRONI_CONFIG,
    archiveWaitSeconds: 60, recoverySeconds: 6 * 3600, startSeconds: 300, cloneSeconds: 6 * 3600,
  });
  s.call(shellFn(`${ROLE}/restore.sh`, FN[phase]));
  const id = `${stepId(host.name, ROLE)}-${phase}`;
  checkShellReferences(id, s.actions, PRELUDE);
  return { id, host: host.name, role: ROLE, after, actions: s.actions, digest: sha256(stepScript({ id, actions: s.actions })) };
}

/**
 * A restore from the stack config (spec.restore; the Pulumi CLI's way): its steps, in order by
 * their `after`. Prepare (the restore node: checks, timeline), every node but the leader stopped,
 * then every node (the leader last, as the leader is known only on the hosts), the DCS reset, the
 * data restored and promoted on the restore node, which leads; the others cloned. The plan's
 * steps run after them; restoreDoneStep after those.
 */
export function restoreSequence(ctx: RoleContext): Step[] {
  const r = ctx.spec.restore;
  if (!r) return [];
  const opts: RestoreOptions = { target: parseRestoreTarget(r.to), loseUnarchived: r.loseUnarchived, id: r.id };
  return restoreShape(ctx.spec).map((n) => restoreStep(ctx, ctx.hosts.find((h) => h.name === n.host)!, n.phase, opts, n.after));
}

/** The restore's steps as the spec alone knows them (ids, hosts, order): what Pulumi registers before any value is known. */
export function restoreShape(spec: ClusterSpec): (StepNode & { phase: Phase })[] {
  if (!spec.restore) return [];
  const nodes = spec.hosts.filter((h) => h.roles.includes("postgres") && !h.leaving);
  const first = bootstrapHost({ hosts: nodes });
  if (!first) return [];
  const node = (host: string, phase: Phase, after: string[]) => ({ id: `${stepId(host, ROLE)}-${phase}`, host, role: ROLE, phase, after });
  const prepare = node(first.name, "prepare", []);
  const stopReplicas = nodes.map((h) => node(h.name, "stop-replica", [prepare.id]));
  const stops = nodes.map((h) => node(h.name, "stop", stopReplicas.map((s) => s.id)));
  const dcs = node(first.name, "dcs-reset", stops.map((s) => s.id));
  const data = node(first.name, "data", [dcs.id]);
  const lead = node(first.name, "lead", [data.id]);
  const follow = nodes.filter((h) => h.name !== first.name).map((h) => node(h.name, "follow", [lead.id]));
  return [prepare, ...stopReplicas, ...stops, dcs, data, lead, ...follow];
}

/** The restore's last step as the spec alone knows it. */
export function restoreDoneShape(spec: ClusterSpec): StepNode | undefined {
  const first = bootstrapHost({ hosts: spec.hosts.filter((h) => h.roles.includes("postgres") && !h.leaving) });
  return spec.restore && first ? { id: `${stepId(first.name, ROLE)}-done`, host: first.name, role: ROLE, after: [] } : undefined;
}

/** The restore's last step (its marker removed, its id noted as done), after every step in `after`. */
export function restoreDoneStep(ctx: RoleContext, after: string[]): Step | undefined {
  const r = ctx.spec.restore;
  const first = bootstrapHost({ hosts: ctx.hosts.filter((h) => h.roles.includes("postgres") && !h.leaving) });
  if (!r || !first) return undefined;
  return restoreStep(ctx, first, "done", { target: parseRestoreTarget(r.to), loseUnarchived: r.loseUnarchived, id: r.id }, after);
}
