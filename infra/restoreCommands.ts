// Point-in-time restore through the Pulumi CLI (spec.restore): the restore's steps
// (roles/restore restoreSequence) as Commands that run before the plan's, then the plan's
// Commands again, then the restore's last step. A Command runs when created or replaced, so a
// restore Command is keyed on the restore alone (its id, target, loseUnarchived): a changed
// certificate or password in its script, or a new host key, never runs a restore again
// (ignoreChanges), and the same id restores once. A new id runs the whole sequence again and,
// through the plan Commands' triggers, the whole plan after it.
import * as pulumi from "@pulumi/pulumi";
import type * as command from "@pulumi/command";
import type { ClusterSpec } from "../model/config";
import type { RoleContext } from "../roles/types";
import { restoreDoneShape, restoreDoneStep, restoreSequence, restoreShape } from "../roles/restore";
import { applyPlan, type Connection } from "./driver";
import { hostLabel, type Children } from "./children";

export interface RestoreCommands {
  /** What every plan Command waits for: the restore's last steps (none without spec.restore). */
  before: command.remote.Command[];
  /** The plan Commands' triggers: their digest, and the restore's key while spec.restore is set. */
  planTriggers: (digest: pulumi.Output<string>) => pulumi.Input<unknown>[];
  /** Registers the restore's last step after the plan's Commands. */
  finish(plan: command.remote.Command[]): void;
}

export function restoreCommands(spec: ClusterSpec, ctx: pulumi.Output<RoleContext>, connections: Record<string, Connection>, c: Children, parents: Record<string, pulumi.Resource>): RestoreCommands {
  const shape = restoreShape(spec);
  if (!spec.restore || !shape.length) return { before: [], planTriggers: (d) => [d], finish: () => {} };
  const r = spec.restore;
  const key = `restore ${r.id} to ${r.to}${r.loseUnarchived ? " losing unarchived WAL" : ""}`;
  pulumi.log.warn(`pgcluster:restore (id ${r.id}): unless this id was restored already, this update restores cluster ${spec.clusterName} to ${r.to}: it destroys ${r.to === "latest" ? "writes the archive does not hold" : `every write committed after ${r.to}`}, every replica's data directory (cloned again) and Patroni's state in etcd; the database is unavailable until the restored leader serves`);
  const placeWith = (extra: pulumi.CustomResourceOptions) => (step: { id: string; host: string }) => ({
    name: c.name(`${hostLabel(spec, step.host)}-${step.id.split("/")[1]}`),
    opts: { ...c.optsNew(parents[step.host]), ...extra, ignoreChanges: ["stdin", "connection"] },
  });
  const keyed = () => [key];
  const steps = applyPlan(shape, pulumi.secret(ctx.apply((x) => ({ cluster: spec.clusterName, steps: restoreSequence(x) }))), connections, placeWith({}), keyed);
  // The plan waits for the steps nothing else waits for (the clones, or the lead on one node).
  const waited = new Set(shape.flatMap((s) => s.after));
  const before = shape.filter((s) => !waited.has(s.id)).map((s) => steps[s.id]);
  return {
    before,
    planTriggers: (digest) => [digest, key],
    finish(plan) {
      const done = pulumi.secret(ctx.apply((x) => ({ cluster: spec.clusterName, steps: [restoreDoneStep(x, [])!] })));
      applyPlan([restoreDoneShape(spec)!], done, connections, placeWith({ dependsOn: plan }), keyed);
    },
  };
}
