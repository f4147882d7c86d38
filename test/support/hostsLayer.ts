// The hosts layer needs root and systemd-nspawn. Without them it is pending and says so loudly;
// with CI=true it fails instead: CI must never pass by skipping it.
import * as fs from "fs";
import { spawnSync } from "child_process";
import { loadCluster, type LocalCluster } from "../../local/cluster";
import { apply, bringUp, lastApply, planFingerprint, type ApplyReport } from "../../local/up";
import { ssh } from "../../local/ssh";
import { healthy, settle } from "../../local/chaos";

export function hostsLayerBlocker(): string | undefined {
  if (process.getuid?.() !== 0) return "not running as root";
  if (spawnSync("which", ["systemd-nspawn"]).status !== 0 && !fs.existsSync("/usr/bin/apt-get")) return "systemd-nspawn missing and no apt-get to install it";
  return undefined;
}

/** Call from a `before` hook: skips (pending) or, under CI=true, fails when hosts cannot run. */
export function requireHosts(ctx: Mocha.Context): void {
  const why = hostsLayerBlocker();
  if (!why) return;
  const msg = `HOSTS LAYER NOT RUN: ${why}. These tests need root and systemd-nspawn (real local hosts).`;
  if (process.env.CI === "true") throw new Error(`${msg} CI=true refuses to skip it.`);
  console.warn(`\n  !!! ${msg} Marked pending. !!!\n`);
  ctx.skip();
}

let cluster: Promise<LocalCluster> | undefined;
/** The local cluster, brought up once per test run (hosts built if missing, plan applied). */
export function localCluster(log: (l: string) => void = (l) => console.log(`      ${l}`)): Promise<LocalCluster> {
  cluster ??= (async () => {
    const c = await loadCluster("local");
    const r = await bringUp(c, log);
    if (r.code !== 0) throw new Error(`bringing the local cluster up failed (exit ${r.code})`);
    return c;
  })();
  return cluster;
}

// A failed test may leave the cluster anywhere: the next suite checks the whole plan. (Registered
// on mocha's root suite when a test file imports this module.)
let failedSinceSettled = false;
if (typeof afterEach === "function") afterEach(function () { if (this.currentTest?.state === "failed") failedSinceSettled = true; });

/** Why the cluster is not settled (unhealthy, or something left to change), or undefined. */
async function unsettled(c: LocalCluster): Promise<string | undefined> {
  try { await healthy(c, 60); } catch (e) { return (e as Error).message; }
  const check = await apply(c, () => {}, true);
  if (check.code === 0) return undefined;
  return check.outcomes.filter((o) => o.outcome !== "ok").map((o) => `${o.step.id}: ${o.result?.changed.join(", ") ?? o.reason}`).join("; ") || `check exited ${check.code}`;
}

/**
 * The local cluster as every hosts suite must find it: healthy (one leader, the others streaming,
 * a synchronous standby) and settled (check mode finds nothing to change, no pending handler).
 * What an earlier suite left behind is named loudly and settled here (re-apply, checked again),
 * so that one failure does not fail the next suite too; a cluster that cannot be settled fails
 * this suite here, with the reason.
 */
export async function settledCluster(suite: string): Promise<LocalCluster> {
  const c = await localCluster();
  // The stack file's own config, read again: a suite may have applied overrides (rotated
  // secrets, another inventory) to the shared object; this suite starts from the stack's.
  Object.assign(c, await loadCluster("local"));
  // The last thing applied was this very plan, successfully, and no test failed since: what it
  // left is what the plan makes (a whole-plan check would cost ~25 s per suite). Health is still
  // checked; anything else (another plan, a failed apply or check, a failed test) is checked whole.
  const last = lastApply();
  if (!failedSinceSettled && last?.code === 0 && last.plan === planFingerprint(c.plan)) {
    try {
      await healthy(c, 60);
      console.log(`      (${suite}: the last ${last.check ? "check" : "apply"} was this stack's plan, clean, no test failed since: health checked)`);
      return c;
    } catch (e) {
      console.log(`      !!! ${suite}: the cluster is not healthy at the start (${(e as Error).message})`);
    }
  }
  failedSinceSettled = false;
  const why = await unsettled(c);
  if (why) {
    console.log(`      !!! ${suite}: the cluster was not settled at the start (${why}); settling it`);
    await settle(c, (l) => console.log(`      [settle] ${l}`)).catch((e) => { throw new Error(`${suite}: could not settle the cluster: ${(e as Error).message}`); });
  }
  return c;
}

/** Runs `command` on `node` as root over the cluster's SSH (host key checked); its output, or throws naming both. */
export async function onNode(c: LocalCluster, node: string, command: string): Promise<string> {
  const r = await ssh(c.ssh, c.targets[node], command, "", 60_000);
  if (r.code !== 0) throw new Error(`${node}: ${command}: ${r.out.trim()}`);
  return r.out.trim();
}

/** The failed steps of an apply with their last lines, for an assertion message. */
export function failedSteps(r: ApplyReport): string {
  return r.outcomes.filter((o) => o.outcome === "failed").map((o) => `${o.step.id}: ${o.tail?.join(" | ")}`).join("; ") || `exit ${r.code}`;
}

/** The cluster with a plan of `role`'s steps alone (their waits on other roles dropped): to apply or check one role without the rest of the plan. */
export function onlyRole(c: LocalCluster, role: string): LocalCluster {
  const steps = c.plan.steps.filter((s) => s.role === role);
  const ids = new Set(steps.map((s) => s.id));
  return { ...c, plan: { ...c.plan, steps: steps.map((s) => ({ ...s, after: s.after.filter((a) => ids.has(a)) })) } };
}
