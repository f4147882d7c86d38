// decommission: the step for a database node or an etcd-only member that left the inventory (scale in). Not a role of
// the plan (the node is no longer in it): a driver that knows the previous inventory runs it on
// the leaving node before the remaining plan is applied (local: local/scaleIn.ts), or as the
// delete script of the node's decommission Command (Pulumi: it runs before the instance goes).
import { ETCD_DATA, PATRONI_CONFIG, PG_BIN, PG_DATA, ports, tlsDir } from "../../model/identities";
import { shellFn, StepBuilder } from "../step";
import { checkShellReferences } from "../step";
import { PRELUDE, sha256, stepScript } from "../script";
import { stepId, type Host, type RoleContext, type Step } from "../types";
import { patroniFunctions } from "../patroni";
import { etcdClientShell, ETCD_JOIN_FILE, ETCD_MEMBERSHIP_LOCK } from "../etcd";
import { withRole } from "../hosts";

export const ROLE = "decommission";

export const shell = {
  decommission: shellFn(`${ROLE}/decommission.sh`, "pgc_decommission"),
  etcdLeave: shellFn(`${ROLE}/etcd-leave.sh`, "pgc_etcd_leave"),
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

/**
 * The decommission step of `host`, an etcd-only member (a witness) that is NOT in ctx.hosts any
 * more: it leaves the etcd cluster through the remaining members (ctx's), then stops and loses
 * its data. A database node that is also an etcd member is refused (not supported yet).
 */
export function etcdDecommissionStep(ctx: RoleContext, host: Host): Step {
  if (!host.roles.includes("etcd")) throw new Error(`host ${host.name} is not an etcd member: nothing to decommission`);
  if (host.roles.includes("postgres")) throw new Error(`host ${host.name} is a database node and an etcd member: its decommission is not supported (only etcd-only members leave the etcd cluster)`);
  if (ctx.hosts.some((h) => h.name === host.name)) throw new Error(`host ${host.name} is still in the inventory: it is not decommissioned`);
  const remaining = withRole(ctx, "etcd");
  const s = new StepBuilder();
  etcdClientShell(s, ctx, tlsDir.etcd);
  s.shell(ROLE, "etcd-leave.sh", {
    name: host.name, peerUrl: `https://${host.address}:${ports.etcdPeer}`, count: remaining.length, remaining: remaining.map((h) => h.name),
    clientPort: ports.etcdClient, dataDir: ETCD_DATA, joinFile: ETCD_JOIN_FILE, lock: ETCD_MEMBERSHIP_LOCK,
  });
  s.call(shell.etcdLeave);
  const id = stepId(host.name, ROLE);
  checkShellReferences(id, s.actions, PRELUDE);
  return { id, host: host.name, role: ROLE, after: [], actions: s.actions, digest: sha256(stepScript({ id, actions: s.actions })) };
}
