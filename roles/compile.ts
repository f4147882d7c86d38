// compile(spec, hosts, pki, secrets[, entryAddress]) -> Plan. Pure: no I/O, no Pulumi, no clock; the same inputs
// give the same bytes. Both drivers (Pulumi, local SSH) run exactly this plan.
import type { ClusterSpec, HostSpec } from "../model/config";
import type { Host, Pki, Plan, RoleContext, Secrets, Step, StepNode } from "./types";
import { stepId } from "./types";
import type { RoleUnit } from "./role";
import { needsNodeCert } from "../model/certs";
import { checkShellReferences } from "./step";
import { PRELUDE, sha256, stepScript } from "./script";
import { common } from "./common";
import { firewall } from "./firewall";
import { etcd } from "./etcd";
import { postgresql } from "./postgresql";
import { patroni } from "./patroni";
import { pgbouncer } from "./pgbouncer";
import { database } from "./database";
import { haproxy } from "./haproxy";
import { restart } from "./restart";
import { keepalived } from "./keepalived";
import { pgbackrest } from "./pgbackrest";
import { backup } from "./backup";
import { stanzaRole } from "./stanza";
import { drill } from "./drill";
import { dump } from "./dump";
import { update } from "./update";
import { exporters } from "./exporters";
import { monitoring } from "./monitoring";
import { decommissionStep, ROLE as DECOMMISSION } from "./decommission";

/**
 * The roles, in plan order. Every host's firewall comes before any host starts talking to the
 * others (etcd first, the rest after etcd): a host new to the inventory is admitted everywhere
 * before it joins. postgresql is listed before etcd so that the plan's order stays the order the
 * steps run in. The repository host (backup) serves before the database nodes' pgbackrest, and
 * that before their patroni, so archiving and restoring work from the start; the stanza (on the
 * repository host) last, once every node runs and archives.
 */
export const ROLES: readonly RoleUnit[] = [common, firewall, postgresql, etcd, backup, pgbackrest, patroni, database, restart, pgbouncer, haproxy, keepalived, stanzaRole, drill, dump, exporters, monitoring, update];

/**
 * The plan's graph (step ids, hosts, what each waits for) from the spec alone: a driver learns it
 * before any address, certificate or password exists. compile() gives the same steps.
 */
export function planGraph(spec: ClusterSpec): StepNode[] {
  const { remaining, leaving } = splitLeaving(spec);
  const nodes: StepNode[] = [];
  for (const role of ROLES) {
    for (const h of role.hosts(remaining)) nodes.push({ id: stepId(h.name, role.name), host: h.name, role: role.name, after: [...role.after(remaining, h)].sort() });
  }
  // Leaving hosts are decommissioned one at a time, before any step of the others: HAProxy and
  // the remaining members forget a node only once it neither leads nor votes.
  const decommissions = leaving.map((h, i) => ({ id: stepId(h.name, DECOMMISSION), host: h.name, role: DECOMMISSION, after: i ? [stepId(leaving[i - 1].name, DECOMMISSION)] : [] }));
  for (const n of nodes) n.after = [...n.after, ...decommissions.map((d) => d.id)].sort();
  for (const role of ROLES.filter((r) => r.lastOnHost)) {
    for (const n of nodes.filter((x) => x.role === role.name)) {
      n.after = [...new Set([...n.after, ...nodes.filter((x) => x.host === n.host && x.id !== n.id).map((x) => x.id)])].sort();
    }
  }
  const all = [...decommissions, ...nodes];
  const ids = new Set(all.map((s) => s.id));
  for (const s of all) for (const a of s.after) if (!ids.has(a)) throw new Error(`step ${s.id} waits for unknown step ${a}`);
  return all;
}

/**
 * The inventory the roles see (without the hosts that are leaving) and the leaving hosts. Every
 * role is compiled for the remaining cluster, as if the leaving hosts were gone; only the
 * firewall still admits them (RoleContext.leaving), so that their decommission reaches the others.
 */
export function splitLeaving<S extends { hosts: HostSpec[] }>(spec: S): { remaining: S; leaving: HostSpec[] } {
  const leaving = spec.hosts.filter((h) => h.leaving);
  return { remaining: leaving.length ? { ...spec, hosts: spec.hosts.filter((h) => !h.leaving) } : spec, leaving };
}

/** `entryAddress`: see RoleContext (GCP: the internal load balancer's address, required). */
export function compile(spec: ClusterSpec, hosts: Host[], pki: Pki, secrets: Secrets, entryAddress?: string): Plan {
  if (spec.provider === "gcp" && !entryAddress)
    throw new Error(`a GCP plan needs the internal load balancer's address: the balancers bind it and answer its health checks`);
  if (spec.backup.enabled && !secrets.backupCipherPassphrase)
    throw new Error(`backup.enabled needs the repository's cipher passphrase among the secrets (${"backupCipherPassphrase"})`);
  // A static inventory's entry address is its balancers' floating address, when it has one.
  const entry = entryAddress ?? spec.network.floatingAddress;
  const { remaining } = splitLeaving(spec);
  const leaving = hosts.filter((h) => h.leaving);
  const ctx: RoleContext = {
    spec: remaining, hosts: hosts.filter((h) => !h.leaving), pki, secrets, ...(entry ? { entryAddress: entry } : {}), ...(leaving.length ? { leaving } : {}),
  };
  const byName = new Map(hosts.map((h) => [h.name, h]));
  for (const h of spec.hosts) if (!byName.has(h.name)) throw new Error(`host ${h.name} has no address`);
  for (const h of hosts) {
    if (!h.address) throw new Error(`host ${h.name} has no address`);
    if (needsNodeCert(spec, h) && !pki.nodes[h.name])
      throw new Error(`no TLS certificate for host ${h.name}`);
  }
  const roles = new Map(ROLES.map((r) => [r.name, r]));
  const steps: Step[] = planGraph(spec).map((node) => {
    if (node.role === DECOMMISSION) {
      const step = decommissionStep(ctx, byName.get(node.host)!);
      return { ...node, actions: step.actions, digest: step.digest };
    }
    const actions = roles.get(node.role)!.step(ctx, byName.get(node.host)!).actions;
    checkShellReferences(node.id, actions, PRELUDE);
    return { ...node, actions, digest: sha256(stepScript({ id: node.id, actions })) };
  });
  return { cluster: spec.clusterName, steps };
}

/** Steps in an order that respects `after` (stable: plan order among ready steps). */
export function topoOrder<S extends StepNode>(steps: S[]): S[] {
  const done = new Set<string>();
  const out: S[] = [];
  let rest = [...steps];
  while (rest.length) {
    const ready = rest.filter((s) => s.after.every((a) => done.has(a)));
    if (!ready.length) throw new Error(`plan has a dependency cycle among: ${rest.map((s) => s.id).join(", ")}`);
    for (const s of ready) { out.push(s); done.add(s.id); }
    rest = rest.filter((s) => !done.has(s.id));
  }
  return out;
}
