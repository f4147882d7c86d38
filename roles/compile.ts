// compile(spec, hosts, pki, secrets) -> Plan. Pure: no I/O, no Pulumi, no clock; the same inputs
// give the same bytes. Both drivers (Pulumi, local SSH) run exactly this plan.
import type { ClusterSpec, Host, Pki, Plan, RoleContext, Secrets, Step } from "./types";
import { stepId } from "./types";
import { sha256, StepScript } from "./script";
import { withRole, bootstrapHost } from "./hosts";
import { commonStep } from "./common";
import { firewallStep } from "./firewall";
import { etcdStep } from "./etcd";
import { postgresqlStep } from "./postgresql";
import { patroniStep } from "./patroni";
import { pgbouncerStep } from "./pgbouncer";
import { databaseStep } from "./database";
import { haproxyStep } from "./haproxy";

export function compile(spec: ClusterSpec, hosts: Host[], pki: Pki, secrets: Secrets): Plan {
  const ctx: RoleContext = { spec, hosts, pki, secrets };
  for (const h of hosts) {
    if (!h.address) throw new Error(`host ${h.name} has no address`);
    if ((h.roles.includes("etcd") || h.roles.includes("postgres")) && !pki.nodes[h.name])
      throw new Error(`no TLS certificate for host ${h.name}`);
  }
  const steps: Step[] = [];
  const add = (script: StepScript, role: string, host: Host, after: string[]) => {
    const text = script.build();
    steps.push({ id: script.id, host: host.name, role, script: text, after: [...after].sort(), digest: sha256(text) });
  };
  const etcdHosts = withRole(ctx, "etcd");
  const dbHosts = withRole(ctx, "postgres");
  const first = dbHosts.length ? bootstrapHost(ctx) : undefined;
  const etcdIds = etcdHosts.map((h) => stepId(h.name, "etcd"));
  const patroniIds = dbHosts.map((h) => stepId(h.name, "patroni"));

  for (const h of hosts) add(commonStep(ctx, h), "common", h, []);
  // Every host's firewall before any host starts talking to the others (etcd first, the rest
  // after etcd): a host new to the inventory is admitted everywhere before it joins. (postgresql
  // is listed before etcd so that the plan's order stays the order the steps run in.)
  for (const h of hosts) add(firewallStep(ctx, h), "firewall", h, [stepId(h.name, "common")]);
  const firewallIds = hosts.map((h) => stepId(h.name, "firewall"));
  for (const h of dbHosts) add(postgresqlStep(ctx, h), "postgresql", h, [stepId(h.name, "common")]);
  for (const h of etcdHosts) add(etcdStep(ctx, h), "etcd", h, [stepId(h.name, "common"), ...firewallIds]);
  for (const h of dbHosts) {
    // Every etcd member configured before any Patroni starts; the bootstrap member before the
    // replicas, so exactly one node runs initdb and the others clone it.
    const after = [stepId(h.name, "postgresql"), ...etcdIds];
    if (first && h.name !== first.name) after.push(stepId(first.name, "patroni"));
    add(patroniStep(ctx, h), "patroni", h, after);
  }
  for (const h of dbHosts) add(databaseStep(ctx, h), "database", h, [...patroniIds]);
  const databaseIds = dbHosts.map((h) => stepId(h.name, "database"));
  // pgBouncer after the database step: its auth user, auth function and the pooled roles must
  // exist before it serves, and a changed auth-user password is in PostgreSQL before its file.
  for (const h of dbHosts) add(pgbouncerStep(ctx, h), "pgbouncer", h, [stepId(h.name, "patroni"), ...databaseIds]);
  for (const h of withRole(ctx, "balancer"))
    add(haproxyStep(ctx, h), "haproxy", h, [stepId(h.name, "common"), ...dbHosts.map((d) => stepId(d.name, "pgbouncer"))]);

  const ids = new Set(steps.map((s) => s.id));
  for (const s of steps) for (const a of s.after) if (!ids.has(a)) throw new Error(`step ${s.id} waits for unknown step ${a}`);
  return { cluster: spec.clusterName, steps };
}

/** Steps in an order that respects `after` (stable: plan order among ready steps). */
export function topoOrder(plan: Plan): Step[] {
  const done = new Set<string>();
  const out: Step[] = [];
  let rest = [...plan.steps];
  while (rest.length) {
    const ready = rest.filter((s) => s.after.every((a) => done.has(a)));
    if (!ready.length) throw new Error(`plan has a dependency cycle among: ${rest.map((s) => s.id).join(", ")}`);
    for (const s of ready) { out.push(s); done.add(s.id); }
    rest = rest.filter((s) => !done.has(s.id));
  }
  return out;
}
