// The local driver: runs a compiled plan over SSH in the plan's order (independent steps on
// different hosts in parallel), each script on stdin. Prints one line per step; a failed step
// shows its host and last output lines (secrets redacted) and stops the steps that depend on it.
import type { Plan, Step } from "../roles/types";
import { remoteCommand, parseResult, type StepResult } from "../roles/transport";
import { stepScript } from "../roles/script";
import { ssh, explainSshFailure, type SshConfig, type SshTarget } from "./ssh";

export type Outcome = "changed" | "ok" | "drift" | "failed" | "skipped";

export interface StepOutcome {
  step: Step;
  outcome: Outcome;
  seconds: number;
  result?: StepResult;
  /** Last output lines, secrets redacted (failed steps). */
  tail?: string[];
  reason?: string;
}

export interface ApplyOptions {
  check?: boolean;
  /** Values that must never be printed. */
  secrets: string[];
  log: (line: string) => void;
  stepTimeoutMs?: number;
}

export function redact(text: string, secrets: string[]): string {
  let out = text;
  for (const s of secrets) if (s.length >= 4) out = out.split(s).join("****");
  return out;
}

/** Every host answers SSH before anything changes anywhere; else one clear error per host. */
export async function preflight(cfg: SshConfig, targets: SshTarget[]): Promise<string[]> {
  const results = await Promise.all(targets.map(async (t) => {
    const r = await ssh(cfg, t, "true", "", 20_000, 5);
    return r.code === 0 ? undefined : explainSshFailure(t, r.out, cfg);
  }));
  return results.filter((x): x is string => !!x);
}

function line(o: StepOutcome, t0: number): string {
  const at = ((Date.now() - t0) / 1000).toFixed(1).padStart(6);
  const [host, role] = o.step.id.split("/");
  const n = o.result?.changed.length ?? 0;
  const what = o.outcome === "changed" || o.outcome === "drift" ? `${o.outcome} (${n})` : o.outcome;
  return `[${at} s] ${host.padEnd(10)} ${role.padEnd(11)} ${what.padEnd(12)} ${o.seconds.toFixed(1).padStart(6)} s${o.reason ? `  ${o.reason}` : ""}`;
}

export async function applyPlan(plan: Plan, targets: Record<string, SshTarget>, cfg: SshConfig, opts: ApplyOptions): Promise<StepOutcome[]> {
  const t0 = Date.now();
  const outcomes = new Map<string, StepOutcome>();
  const pending = new Map(plan.steps.map((s) => [s.id, s]));
  const running = new Map<string, Promise<void>>();

  const runStep = async (step: Step): Promise<void> => {
    const target = targets[step.host];
    const started = Date.now();
    const r = await ssh(cfg, target, remoteCommand(target.user, opts.check), stepScript(step), opts.stepTimeoutMs ?? 30 * 60_000);
    const seconds = (Date.now() - started) / 1000;
    const out = redact(r.out, opts.secrets);
    const result = parseResult(out);
    let o: StepOutcome;
    if (r.code === 0 && result) {
      const n = result.changed.length;
      o = { step, seconds, result, outcome: n === 0 ? "ok" : opts.check ? "drift" : "changed" };
    } else {
      const reason = r.code === 255 && !result ? explainSshFailure(target, out, cfg) : `exit ${r.code}`;
      o = { step, seconds, outcome: "failed", reason, tail: out.trim().split("\n").slice(-15) };
    }
    outcomes.set(step.id, o);
    opts.log(line(o, t0));
    if (o.outcome === "failed") for (const l of o.tail ?? []) opts.log(`      | ${l}`);
    if (o.outcome === "changed") for (const c of o.result!.changed.slice(0, 12)) opts.log(`      + ${c}`);
    if (opts.check && o.outcome === "drift") for (const l of out.split("\n").filter((x) => /DRIFT|^    /.test(x))) opts.log(`      ${l}`);
  };

  while (pending.size || running.size) {
    for (const [id, step] of pending) {
      const deps = step.after.map((a) => outcomes.get(a));
      const failedDep = step.after.find((a) => { const o = outcomes.get(a); return o && (o.outcome === "failed" || o.outcome === "skipped"); });
      if (failedDep) {
        const o: StepOutcome = { step, seconds: 0, outcome: "skipped", reason: `not run: ${failedDep} did not succeed` };
        outcomes.set(id, o);
        pending.delete(id);
        opts.log(line(o, t0));
        continue;
      }
      if (deps.every((d) => d !== undefined)) {
        pending.delete(id);
        running.set(id, runStep(step).finally(() => running.delete(id)));
      }
    }
    if (running.size) await Promise.race(running.values());
    else if (pending.size) throw new Error(`plan cannot progress: ${[...pending.keys()].join(", ")} wait for steps that never ran`);
  }
  return plan.steps.map((s) => outcomes.get(s.id)!);
}

export function summarize(outcomes: StepOutcome[]): Record<Outcome, number> {
  const c: Record<Outcome, number> = { changed: 0, ok: 0, drift: 0, failed: 0, skipped: 0 };
  for (const o of outcomes) c[o.outcome]++;
  return c;
}
