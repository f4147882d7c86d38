// Point-in-time restore of a static inventory's whole cluster (issue #11): Patroni stopped on
// every node (the leader last, its unarchived WAL archived), the cluster's DCS state reset, one
// node restored from the repository to the target and promoted, the others cloned from it, then
// the plan applied (DCS configuration, passwords, balancers). Refused before anything changes
// unless confirmed and possible; a failed phase says where it stopped and how to go on.
import type { LocalCluster } from "./cluster";
import { patroniCluster, patroniGet } from "./cluster";
import { applyPlan, preflight, type StepOutcome } from "./driver";
import { ssh, withReusedConnections } from "./ssh";
import { shq } from "../roles/quote";
import { apply } from "./up";
import { repositoryInfo, type RepositoryInfo } from "./backup";
import { describeTarget, markerTimeline, restoreStep, type Phase, type RestoreOptions } from "../roles/restore";
import { bootstrapHost } from "../roles/hosts";
import { RESTORE, PG_DATA } from "../model/identities";
import type { Host, Step } from "../roles/types";

/** A restore pgcluster will not start; nothing was changed on any host. */
export class RestoreRefused extends Error {}

/** A restore that stopped part-way; the message says where and how to go on. */
export class RestoreStopped extends Error {}

export interface RestorePlan {
  /** The node restored from the repository; the others clone it. */
  restoreNode: Host;
  others: Host[];
  /** The leader when the restore began (stopped last), if one answered. */
  leader?: string;
  /** What the operator is told before anything happens. */
  destroys: string[];
}

/**
 * What the restore will do, checked against what can be checked without changing anything:
 * backups enabled, a backup to start from, a time target within the restorable window.
 */
export function restorePlan(c: Pick<LocalCluster, "spec" | "hosts">, opts: RestoreOptions, info: RepositoryInfo, leader: string | undefined, now = new Date()): RestorePlan {
  const nodes = c.hosts.filter((h) => h.roles.includes("postgres") && !h.leaving);
  const first = bootstrapHost({ hosts: nodes });
  if (!first) throw new RestoreRefused(`stack ${c.spec.stack} has no database node to restore`);
  if (!info.backups.length) throw new RestoreRefused(`the repository (stanza ${info.stanza}: ${info.status}) holds no backup: there is nothing to restore from. Take one with: npm run backup -- --stack ${c.spec.stack}`);
  if (opts.target.kind === "time") {
    const t = Date.parse(opts.target.time);
    const earliest = info.backups[0].stop;
    if (t < earliest.getTime()) throw new RestoreRefused(`--to ${opts.target.time} is before the end of the oldest backup (${earliest.toISOString()}): the earliest time a restore can reach. Nothing was changed.`);
    if (t > now.getTime()) throw new RestoreRefused(`--to ${opts.target.time} is in the future (now ${now.toISOString()}). Nothing was changed.`);
  }
  // Always the first database node: a run again after an interrupted restore picks the same one
  // (its marker keeps the data directory from before the first run).
  const restoreNode = first;
  return {
    restoreNode,
    others: nodes.filter((h) => h.name !== restoreNode.name),
    leader,
    destroys: [
      opts.target.kind === "time"
        ? `every write committed after ${opts.target.time}, on every node`
        : `writes the archive does not hold (none, when the first phase archives the former primary's last WAL)`,
      `the data directory ${PG_DATA} of ${nodes.filter((h) => h.name !== restoreNode.name).map((h) => h.name).join(", ") || "no other node"} (they are cloned again from the restored node)`,
      `on ${restoreNode.name} the current data directory is moved to ${RESTORE.aside} (replacing one kept by an earlier restore) and the restored one takes its place`,
      `Patroni's state of cluster ${c.spec.clusterName} in etcd (leader, members, history; the configuration is written again)`,
      `the database is unavailable from the first step until the restored leader serves (:5000 refuses meanwhile)`,
    ],
  };
}

/** The phases as steps, in order; each list runs in parallel after the one before. */
export function restoreSteps(c: Pick<LocalCluster, "spec" | "hosts" | "pki" | "secrets">, p: RestorePlan, opts: RestoreOptions): { phase: Phase; steps: Step[] }[] {
  const ctx = { spec: c.spec, hosts: c.hosts, pki: c.pki, secrets: c.secrets };
  const all = [p.restoreNode, ...p.others];
  // Replicas stop before the leader: no replica can take over while the leader stops.
  const followers = all.filter((h) => h.name !== p.leader);
  const stopFollowers = followers.map((h) => restoreStep(ctx, h, "stop", opts));
  const leader = all.find((h) => h.name === p.leader);
  const stop = [...stopFollowers, ...(leader ? [restoreStep(ctx, leader, "stop", opts, stopFollowers.map((s) => s.id))] : [])];
  return [
    { phase: "stop", steps: stop },
    { phase: "dcs-reset", steps: [restoreStep(ctx, p.restoreNode, "dcs-reset", opts)] },
    { phase: "data", steps: [restoreStep(ctx, p.restoreNode, "data", opts)] },
    { phase: "lead", steps: [restoreStep(ctx, p.restoreNode, "lead", opts)] },
    { phase: "follow", steps: p.others.map((h) => restoreStep(ctx, h, "follow", opts)) },
  ];
}

const NEXT: Record<Phase, string> = {
  prepare: "nothing was changed",
  "stop-replica": "Patroni is stopped on some replicas; the data is untouched",
  stop: "Patroni is stopped on some nodes; the data is untouched",
  "dcs-reset": "Patroni is stopped on every node; the data is untouched",
  data: "Patroni is stopped on every node and the DCS state is reset; the restore node's data directory is incomplete (the one from before is kept aside)",
  lead: "the restore node holds the restored data; Patroni on it did not take the lead",
  follow: "the restored leader serves; some replicas did not finish cloning",
  done: "the data is restored and the plan applied",
};

/**
 * The restore. `log` gets the plan, then one line per step. Throws RestoreRefused before any
 * change, RestoreStopped (where it stopped, what state the cluster is in, how to go on) after.
 */
export async function restoreCluster(c: LocalCluster, opts: RestoreOptions & { confirmed: boolean }, log: (l: string) => void): Promise<RestorePlan> {
  if (!c.spec.backup.enabled) throw new RestoreRefused(`stack ${c.spec.stack}: backup.enabled is false: there is no repository to restore from`);
  const unreachable = await preflight(c.ssh, Object.values(c.targets));
  if (unreachable.length) throw new RestoreRefused(`not every host answers SSH; nothing was changed:\n${unreachable.join("\n")}`);
  const info = await repositoryInfo(c);
  const members = await patroniCluster(c).catch(() => []);
  const leaderMember = members.find((m) => m.role === "leader");
  const p = restorePlan(c, opts, info, leaderMember?.name);
  // The history to follow: an interrupted run's (its marker), else the live leader's timeline,
  // if the live cluster is the repository's (a rebuilt cluster's new one is not).
  const marker = await ssh(c.ssh, c.targets[p.restoreNode.name], `cat ${shq(RESTORE.marker)} 2>/dev/null || true`, "", 30_000);
  const liveSystemId = leaderMember ? await patroniGet(c, leaderMember.host, "/patroni").then((b) => String(JSON.parse(b).database_system_identifier ?? ""), () => "") : "";
  const liveIsRepositorys = !!leaderMember && !!info.systemId && liveSystemId === info.systemId;
  if (leaderMember && !liveIsRepositorys) log(`the running cluster (system id ${liveSystemId || "unknown"}) is not the one in the repository (${info.systemId ?? "unknown"}): following the archive's latest timeline`);
  const timeline = markerTimeline(marker.out) ?? (liveIsRepositorys && typeof leaderMember?.timeline === "number" ? leaderMember.timeline : undefined);
  opts = { ...opts, timeline, systemId: info.systemId };
  if (markerTimeline(marker.out) !== undefined) log(`an earlier restore was interrupted (${p.restoreNode.name}:${RESTORE.marker}): going on, following its timeline ${timeline}`);
  log(`restore of cluster ${c.spec.clusterName} to ${describeTarget(opts.target)} on ${timeline === undefined ? "the archive's latest timeline (no running cluster of the repository's to follow)" : `timeline ${timeline}'s history`} from stanza ${info.stanza} (${info.backups.length} backups, newest ${info.backups.at(-1)!.label}); restored on ${p.restoreNode.name}, cloned by ${p.others.map((h) => h.name).join(", ") || "none"}`);
  log("this destroys:");
  for (const d of p.destroys) log(`  - ${d}`);
  if (!opts.confirmed) throw new RestoreRefused(`not confirmed: nothing was changed. To go on, run it again with --yes-destroy-data`);

  const secrets = Object.values(c.secrets);
  await withReusedConnections(c.ssh, Object.values(c.targets), async (cfg) => {
    for (const { phase, steps } of restoreSteps(c, p, opts)) {
      log(`phase ${phase}:`);
      const out: StepOutcome[] = await applyPlan({ cluster: c.plan.cluster, steps }, c.targets, cfg, { log, secrets, stepTimeoutMs: 7 * 3600_000 });
      const failed = out.filter((o) => o.outcome !== "ok" && o.outcome !== "changed");
      if (failed.length) throw new RestoreStopped(stoppedMessage(c, phase, failed.map((o) => o.step.host), NEXT[phase]));
    }
  });
  log("phase apply: the plan (DCS configuration, passwords, balancers, backups)");
  const r = await apply(c, log);
  if (r.code !== 0) throw new RestoreStopped(stoppedMessage(c, "done", [], `the data is restored and the restored cluster serves, but the apply after it failed (exit ${r.code})`, `npm run apply -- --stack ${c.spec.stack}, then npm run restore … again only if the data is wrong`));
  const ctx = { spec: c.spec, hosts: c.hosts, pki: c.pki, secrets: c.secrets };
  const done = await applyPlan({ cluster: c.plan.cluster, steps: [restoreStep(ctx, p.restoreNode, "done", opts)] }, c.targets, c.ssh, { log, secrets });
  if (done.some((o) => o.outcome === "failed"))
    throw new RestoreStopped(stoppedMessage(c, "done", [p.restoreNode.name], `the data is restored and the plan applied, but the restore's marker ${RESTORE.marker} was not removed`, `remove it by hand (a later restore would take this one for interrupted)`));
  return p;
}

function stoppedMessage(c: LocalCluster, phase: Phase, hosts: string[], state: string, next?: string): string {
  return [
    `the restore stopped in phase "${phase}"${hosts.length ? ` on ${hosts.join(", ")}` : ""} (its output is above).`,
    `state: ${state}.`,
    `to go on: fix the cause, then ${next ?? `run the same command again (npm run restore -- --stack ${c.spec.stack} --to <the same target> --yes-destroy-data): every phase repeats safely, and the data directory kept from before the restore is not replaced`}.`,
  ].join("\n");
}
