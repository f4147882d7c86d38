// restore: the steps of a point-in-time restore of the whole cluster (npm run restore). Not a
// role of the plan: local/restore.ts runs them in phases, then applies the plan. Each phase is
// a step of its own, so the driver reports exactly where a restore stopped.
import { PATRONI_CONFIG, PG_BIN, PG_DATA, ports, RESTORE, tlsDir } from "../../model/identities";
import { checkShellReferences, shellFn, StepBuilder } from "../step";
import { PRELUDE, sha256, stepScript } from "../script";
import { stepId, type Host, type RoleContext, type Step } from "../types";
import { patroniFunctions } from "../patroni";
import { stanza } from "../backup";

export const ROLE = "restore";

export const PHASES = ["stop", "dcs-reset", "data", "lead", "follow", "done"] as const;
export type Phase = (typeof PHASES)[number];

const FN: Record<Phase, string> = {
  stop: "pgc_restore_stop", "dcs-reset": "pgc_restore_dcs_reset", data: "pgc_restore_data",
  lead: "pgc_restore_lead", follow: "pgc_restore_follow", done: "pgc_restore_done",
};

/** The restore's target: the end of the archive, or a time (validated: ISO 8601 with a zone). */
export type RestoreTarget = { kind: "latest" } | { kind: "time"; time: string };

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$/;

/** `--to`: "latest" or an ISO 8601 time with its zone (e.g. 2026-11-28T03:20:00.250Z); anything else refused. */
export function parseRestoreTarget(text: string | undefined): RestoreTarget {
  if (text === "latest") return { kind: "latest" };
  if (text === undefined || !ISO_TIME.test(text) || Number.isNaN(Date.parse(text)))
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
}

/** The step of `phase` on `host` (a database node of ctx). */
export function restoreStep(ctx: RoleContext, host: Host, phase: Phase, opts: RestoreOptions, after: string[] = []): Step {
  if (!host.roles.includes("postgres")) throw new Error(`restore: ${host.name} is not a database node`);
  const s = new StepBuilder();
  patroniFunctions(s, ctx, host);
  s.shell(ROLE, "restore.sh", {
    dataDir: PG_DATA, aside: RESTORE.aside, binDir: PG_BIN, stanza: stanza(ctx.spec), marker: RESTORE.marker,
    targetText: describeTarget(opts.target), restoreArgs: pgbackrestRestoreArgs(opts.target, opts.timeline), loseUnarchived: opts.loseUnarchived,
    timeline: opts.timeline === undefined ? "latest" : String(opts.timeline),
    systemId: opts.systemId !== undefined && /^\d{1,20}$/.test(opts.systemId) ? opts.systemId : "",
    dcsPrefix: `/pgcluster/${ctx.spec.clusterName}/`, tls: tlsDir.patroni, ports, configFile: PATRONI_CONFIG,
    archiveWaitSeconds: 60, recoverySeconds: 6 * 3600, startSeconds: 300, cloneSeconds: 6 * 3600,
  });
  s.call(shellFn(`${ROLE}/restore.sh`, FN[phase]));
  const id = `${stepId(host.name, ROLE)}-${phase}`;
  checkShellReferences(id, s.actions, PRELUDE);
  return { id, host: host.name, role: ROLE, after, actions: s.actions, digest: sha256(stepScript({ id, actions: s.actions })) };
}
