// decommission: the step for a database node that left the inventory (scale in). Not a role of
// the plan (the node is no longer in it): a driver that knows the previous inventory runs it on
// the leaving node before the remaining plan is applied (local: local/scaleIn.ts), or as the
// delete script of the node's decommission Command (Pulumi: it runs before the instance goes).
import { PATRONI_CONFIG, PG_BIN, PG_DATA, ports, tlsDir } from "../../model/identities";
import { shellFn, StepBuilder } from "../step";
import { checkShellReferences } from "../step";
import { PRELUDE, sha256, stepScript } from "../script";
import { stepId, type Host, type RoleContext, type Step } from "../types";
import { patroniFunctions } from "../patroni";

export const ROLE = "decommission";

export const shell = {
  decommission: shellFn(`${ROLE}/decommission.sh`, "pgc_decommission"),
};

/** Patroni's member key of `name` (namespace /pgcluster/, scope clusterName: templates/patroni/config.yml). */
export function memberKey(clusterName: string, name: string): string {
  return `/pgcluster/${clusterName}/members/${name}`;
}

/**
 * The decommission step of `host`, a database node that is NOT in ctx.hosts any more: ctx is
 * the remaining cluster's (its etcd members are the ones the step talks to).
 */
export function decommissionStep(ctx: RoleContext, host: Host): Step {
  if (!host.roles.includes("postgres")) throw new Error(`host ${host.name} is not a database node: nothing to decommission`);
  if (host.roles.includes("etcd")) throw new Error(`host ${host.name} is an etcd member: removing an etcd member is a membership change, not supported by scale-in`);
  if (ctx.hosts.some((h) => h.name === host.name)) throw new Error(`host ${host.name} is still in the inventory: it is not decommissioned`);
  const s = new StepBuilder();
  patroniFunctions(s, ctx, host);
  s.shell(ROLE, "decommission.sh", {
    tls: tlsDir.patroni, ports, name: host.name, memberKey: memberKey(ctx.spec.clusterName, host.name),
    configFile: PATRONI_CONFIG, dataDir: PG_DATA, binDir: PG_BIN,
  });
  s.call(shell.decommission);
  const id = stepId(host.name, ROLE);
  checkShellReferences(id, s.actions, PRELUDE);
  return { id, host: host.name, role: ROLE, after: [], actions: s.actions, digest: sha256(stepScript({ id, actions: s.actions })) };
}
