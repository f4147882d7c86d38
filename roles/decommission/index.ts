// decommission: the step for a database node, an etcd member, or both, that left the inventory (scale in). Not a role of
// the plan (the node is no longer in it): a driver that knows the previous inventory runs it on
// the leaving node before the remaining plan is applied (local: local/scaleIn.ts), or as the
// delete script of the node's decommission Command (Pulumi: it runs before the instance goes).
import { DECOMMISSIONED_MARKER, ETCD_DATA, PATRONI_CONFIG, PG_BIN, PG_DATA, ports, tlsDir } from "../../model/identities";
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
  mark: shellFn(`${ROLE}/done.sh`, "pgc_decom_mark"),
};

/** Patroni's member key of `name` (namespace /pgcluster/, scope clusterName: templates/patroni/config.yml). */
export function memberKey(clusterName: string, name: string): string {
  return `/pgcluster/${clusterName}/members/${name}`;
}

/**
 * The decommission step of `host`, a host that is NOT in ctx.hosts any more (ctx is the
 * remaining cluster's: its etcd members are the ones the step talks to). A database node hands
 * over, stops Patroni and PostgreSQL and leaves the DCS; an etcd member then leaves the etcd
 * cluster through the remaining members, stops and loses its data. A database node that is also
 * an etcd member does both in that order, in one step: Patroni leaves while etcd still has every
 * member, so the DCS keeps its quorum throughout.
 */
export function decommissionStep(ctx: RoleContext, host: Host): Step {
  const db = host.roles.includes("postgres");
  const member = host.roles.includes("etcd");
  if (!db && !member) throw new Error(`host ${host.name} is neither a database node nor an etcd member: nothing to decommission`);
  if (ctx.hosts.some((h) => h.name === host.name)) throw new Error(`host ${host.name} is still in the inventory (not leaving): it is not decommissioned`);
  const s = new StepBuilder();
  // The etcd client of either kind of host: Patroni's certificate on a database node, etcd's on a witness.
  if (db) patroniFunctions(s, ctx, host);
  else etcdClientShell(s, ctx, tlsDir.etcd);
  s.shell(ROLE, "done.sh", { marker: DECOMMISSIONED_MARKER });
  if (db) {
    s.shell(ROLE, "decommission.sh", {
      tls: tlsDir.patroni, ports, name: host.name, memberKey: memberKey(ctx.spec.clusterName, host.name),
      configFile: PATRONI_CONFIG, dataDir: PG_DATA, binDir: PG_BIN,
    });
  }
  if (member) {
    const remaining = withRole(ctx, "etcd");
    s.shell(ROLE, "etcd-leave.sh", {
      name: host.name, peerUrl: `https://${host.address}:${ports.etcdPeer}`, count: remaining.length, remaining: remaining.map((h) => h.name),
      clientPort: ports.etcdClient, dataDir: ETCD_DATA, joinFile: ETCD_JOIN_FILE, lock: ETCD_MEMBERSHIP_LOCK,
    });
  }
  if (db) s.call(shell.decommission);
  if (member) s.call(shell.etcdLeave);
  s.call(shell.mark);
  const id = stepId(host.name, ROLE);
  checkShellReferences(id, s.actions, PRELUDE);
  return { id, host: host.name, role: ROLE, after: [], actions: s.actions, digest: sha256(stepScript({ id, actions: s.actions })) };
}
