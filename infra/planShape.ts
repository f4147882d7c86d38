// The plan's shape: compiled from placeholders, so step ids, hosts and order are known when the
// Commands are registered, before any cloud value (an address, a certificate) exists.
import { SECRET_KEYS, type ClusterSpec } from "../model/config";
import { compile, topoOrder } from "../roles/compile";
import type { Host, Pki, Plan, Secrets } from "../roles/types";
import { placeholderSalts } from "../roles/scram";

export function planShape(spec: ClusterSpec): Plan {
  const hosts: Host[] = spec.hosts.map((h, i) => ({ ...h, address: h.address ?? `192.0.2.${i + 1}` }));
  const pair = { cert: "placeholder", key: "placeholder" };
  const pki: Pki = { ca: "placeholder", caBundle: "placeholder", nodes: Object.fromEntries(hosts.map((h) => [h.name, pair])), replication: pair, pooler: pair };
  const secrets = { ...Object.fromEntries(SECRET_KEYS.map((k) => [k, "placeholder"])), ...placeholderSalts() } as Secrets;
  const plan = compile(spec, hosts, pki, secrets);
  return { ...plan, steps: topoOrder(plan) };
}
