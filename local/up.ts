// The main job: local hosts up (built if missing), then the plan applied over SSH.
import { createHash } from "crypto";
import type { Plan } from "../roles/types";
import { stepScript } from "../roles/script";
import { applyPlan, preflight, summarize, type StepOutcome } from "./driver";
import { hostsUp, hostKey } from "./hosts";
import { ssh, withReusedConnections, writeKnownHosts } from "./ssh";
import { stateId } from "./state";
import type { LocalCluster } from "./cluster";
import { finishScaleIn, scaleIn } from "./scaleIn";

export type Log = (line: string) => void;

export async function bringUpHosts(c: LocalCluster, log: Log): Promise<void> {
  const t = Date.now();
  await hostsUp(c.spec, {
    authorizedKey: c.publicKey,
    stateId: stateId(c.spec.stack),
    log,
    sshReady: async (n) => {
      // The nodes' host keys are known exactly (we generated them): strict checking.
      writeKnownHosts(c.ssh.knownHostsFile, c.hosts.map((h) => ({ address: h.address, port: h.sshPort, key: hostKey(h.name) })));
      const r = await ssh(c.ssh, c.targets[n.name], "systemctl is-system-running", "", 5000, 1);
      return /^(running|degraded)/m.test(r.out);
    },
  });
  log(`hosts ready in ${((Date.now() - t) / 1000).toFixed(1)} s`);
}

export interface ApplyReport {
  /** 0 all applied (check: no drift), 1 a step failed, 2 a host unreachable (nothing changed), 3 drift found (check). */
  code: number;
  changed: number;
  outcomes: StepOutcome[];
  seconds: number;
}

/** A plan's identity: its steps, their order and the exact scripts they send. */
export function planFingerprint(plan: Plan): string {
  const h = createHash("sha256");
  for (const s of plan.steps) h.update(JSON.stringify([s.id, s.after])).update(stepScript(s));
  return h.digest("hex");
}

/** The last apply (or check) this process ran: its plan's fingerprint and exit code. */
let lastApplied: { plan: string; check: boolean; code: number } | undefined;
export const lastApply = () => lastApplied;

export async function apply(c: LocalCluster, log: Log, check = false): Promise<ApplyReport> {
  lastApplied = undefined;
  // One SSH connection per host for the whole apply, not one per step (a new connection costs
  // the 2-core test machine about 0.3 CPU-seconds: key exchange, sshd, PAM session).
  const r = await withReusedConnections(c.ssh, Object.values(c.targets), (cfg) => applyOver({ ...c, ssh: cfg }, log, check));
  lastApplied = { plan: planFingerprint(c.plan), check, code: r.code };
  return r;
}

async function applyOver(c: LocalCluster, log: Log, check: boolean): Promise<ApplyReport> {
  const t = Date.now();
  const problems = await preflight(c.ssh, Object.values(c.targets));
  if (problems.length) {
    for (const p of problems) log(`error: ${p}`);
    log("nothing was changed on any host.");
    return { code: 2, changed: 0, outcomes: [], seconds: (Date.now() - t) / 1000 };
  }
  // Database nodes that left the inventory: decommissioned first (refused before any change).
  const leaving = await scaleIn(c, log, check);
  if (leaving.code) {
    log(`INCOMPLETE: the decommission failed; the remaining plan was not applied. Fix the cause and run again: steps are idempotent.`);
    return { code: 1, changed: summarize(leaving.outcomes).changed, outcomes: leaving.outcomes, seconds: (Date.now() - t) / 1000 };
  }
  log(check ? `checking ${c.plan.steps.length} steps (no changes are made)` : `applying ${c.plan.steps.length} steps`);
  const outcomes = [...leaving.outcomes, ...await applyPlan(c.plan, c.targets, c.ssh, { check, log, secrets: Object.values(c.secrets) })];
  const s = summarize(outcomes);
  const seconds = (Date.now() - t) / 1000;
  log(`${check ? "check" : "apply"} finished in ${seconds.toFixed(1)} s: ${s.changed} changed, ${s.drift} drifted, ${s.ok} ok, ${s.failed} failed, ${s.skipped} not run`);
  if (s.failed) {
    const done = outcomes.filter((o) => o.outcome === "changed").map((o) => o.step.id);
    log(`INCOMPLETE: failed: ${outcomes.filter((o) => o.outcome === "failed").map((o) => o.step.id).join(", ")}; applied before the failure: ${done.join(", ") || "nothing"}. Fix the cause and run again: steps are idempotent.`);
    return { code: 1, changed: s.changed, outcomes, seconds };
  }
  if (!check) await finishScaleIn(c, leaving, log);
  return { code: check && s.drift ? 3 : 0, changed: check ? s.drift : s.changed, outcomes, seconds };
}

export async function bringUp(c: LocalCluster, log: Log): Promise<ApplyReport> {
  await bringUpHosts(c, log);
  return apply(c, log);
}
