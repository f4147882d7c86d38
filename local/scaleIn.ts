// Scale in for static inventories: a database node that left the stack's hosts is decommissioned
// (roles/decommission) before the remaining plan is applied, so that HAProxy and the firewalls
// drop it only once it neither leads nor can be elected; an etcd-only member leaves the etcd
// cluster (member remove) before the remaining members' firewalls drop it. The local driver knows a host left by
// the inventory it last applied, kept in the local state (<state>/applied-hosts.json).
import * as fs from "fs";
import * as path from "path";
import type { ClusterSpec, HostSpec } from "../model/config";
import { decommissionStep } from "../roles/decommission";
import { applyPlan, preflight, type StepOutcome } from "./driver";
import { onLocalHosts, patroniCluster, type LocalCluster } from "./cluster";
import { hostKey, nodeExists, removeNode } from "./hosts";
import { ssh, writeKnownHosts, type SshConfig, type SshTarget } from "./ssh";

/** What the local state keeps of each host of the last applied inventory. */
export interface AppliedHost {
  name: string;
  address: string;
  roles: HostSpec["roles"];
  sshUser: string;
  sshPort: number;
  hostKey?: string;
}

const APPLIED = "applied-hosts.json";

export function readAppliedHosts(stateDir: string): AppliedHost[] | undefined {
  const f = path.join(stateDir, APPLIED);
  return fs.existsSync(f) ? (JSON.parse(fs.readFileSync(f, "utf8")) as AppliedHost[]) : undefined;
}

export function recordAppliedHosts(c: LocalCluster): void {
  const hosts: AppliedHost[] = c.hosts.map((h) => ({
    name: h.name, address: h.address, roles: h.roles, sshUser: h.sshUser, sshPort: h.sshPort, ...(h.hostKey ? { hostKey: h.hostKey } : {}),
  }));
  const f = path.join(c.stateDir, APPLIED);
  fs.writeFileSync(`${f}.tmp`, JSON.stringify(hosts, null, 2) + "\n", { mode: 0o600 });
  fs.renameSync(`${f}.tmp`, f);
}

/** A scale-in pgcluster will not do; raised before anything changes on any host. */
export class ScaleInRefused extends Error {}

export interface ScaleInPlan {
  /** Database nodes and etcd members that left the inventory, in their old inventory order (decommissioned one at a time). */
  decommission: AppliedHost[];
  /** Hosts that left and need nothing from pgcluster (balancers: the remaining plan drops them). */
  dropped: AppliedHost[];
}

/**
 * What leaving the previous inventory for `spec` takes. The new inventory itself was validated
 * with the stack config (at least one database node, two in prod, two with synchronous mode, an
 * odd etcd count of 3 or more: an even or smaller etcd cluster is refused when the stack is
 * read); what only the change can show is refused here. A database node leaves Patroni, an etcd
 * member (a witness or a database node) leaves the etcd cluster (membership change, issue 13
 * item 2), a node that is both does both in one step.
 */
export function scaleInPlan(previous: AppliedHost[] | undefined, spec: ClusterSpec): ScaleInPlan {
  const now = new Set(spec.hosts.map((h) => h.name));
  const gone = (previous ?? []).filter((h) => !now.has(h.name));
  const leaves = (h: AppliedHost) => h.roles.includes("postgres") || h.roles.includes("etcd");
  return { decommission: gone.filter(leaves), dropped: gone.filter((h) => !leaves(h)) };
}

/** How to reach a host that left the inventory: its recorded address and a key it must present. */
function leavingSsh(c: LocalCluster, h: AppliedHost): SshConfig | undefined {
  if (c.ssh.hostKeys === "trust-on-first-use") return c.ssh; // its first key is still recorded there
  const key = c.ssh.hostKeys === "generated" ? (nodeExists(h.name) ? hostKey(h.name) : undefined) : h.hostKey;
  if (!key) return undefined;
  const file = path.join(c.stateDir, "known_hosts.leaving");
  writeKnownHosts(file, [{ address: h.address, port: h.sshPort, key }]);
  return { ...c.ssh, knownHostsFile: file };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Patroni's slot name for a member (patroni/dcs: lower case, anything else than [a-z0-9_] as _). */
export function slotName(member: string): string {
  return member.toLowerCase().replace(/[^a-z0-9_]/g, "_");
}

/**
 * After the step: the member is gone from Patroni's view and the leader dropped its slot (Patroni
 * does it in its next loop once the member key is gone). Bounded; fails closed (a leader that
 * cannot be read is a failure, not a pass).
 */
async function confirmGone(c: LocalCluster, name: string, log: (l: string) => void): Promise<void> {
  const end = Date.now() + 60_000;
  let last = "";
  while (Date.now() < end) {
    try {
      const members = await patroniCluster(c);
      const leader = members.find((m) => m.role === "leader");
      if (members.some((m) => m.name === name)) last = `${name} still listed by Patroni`;
      else if (!leader) last = "no leader";
      else {
        const r = await ssh(c.ssh, c.targets[leader.name], "cd / && runuser -u postgres -- psql -XAtqc 'select slot_name from pg_replication_slots'", "", 30_000);
        if (r.code !== 0) last = `pg_replication_slots on ${leader.name}: ${r.out.trim().slice(0, 200)}`;
        else if (r.out.split("\n").map((l) => l.trim()).includes(slotName(name))) last = `slot ${slotName(name)} still on ${leader.name}`;
        else {
          log(`${name}: gone from Patroni's members; no slot ${slotName(name)} on the leader ${leader.name}`);
          return;
        }
      }
    } catch (e) { last = (e as Error).message; }
    await sleep(1000);
  }
  throw new Error(`${name} decommissioned, but after 60 s: ${last}`);
}

export interface ScaleInResult {
  /** 0 done (or nothing to do), 1 a decommission failed (the remaining plan must not run). */
  code: number;
  outcomes: StepOutcome[];
  /** Decommissioned database nodes (local stack: their hosts are removed after the apply). */
  decommissioned: AppliedHost[];
}

/**
 * Decommissions, one at a time, every database node and etcd member that left the inventory. Check mode only
 * reports (drift). A leaving node that does not answer SSH is accepted only when Patroni no
 * longer lists it (it is dead and its member key expired); a listed one is refused.
 */
export async function scaleIn(c: LocalCluster, log: (l: string) => void, check = false): Promise<ScaleInResult> {
  const plan = scaleInPlan(readAppliedHosts(c.stateDir), c.spec);
  for (const h of plan.dropped) log(`${h.name}: left the inventory (${h.roles.join(", ")}); the remaining plan no longer refers to it`);
  const outcomes: StepOutcome[] = [];
  const decommissioned: AppliedHost[] = [];
  for (const h of plan.decommission) {
    const target: SshTarget = { name: h.name, address: h.address, user: h.sshUser, port: h.sshPort };
    const cfg = leavingSsh(c, h);
    const unreachable = !cfg || (await preflight(cfg, [target])).length > 0;
    if (unreachable && h.roles.includes("etcd"))
      throw new ScaleInRefused(`${h.name} left the inventory but does not answer SSH at ${h.address}: its etcd membership cannot be removed from there. Bring it back and apply again (it was not changed, nor the remaining plan applied).`);
    if (unreachable) {
      const member = (await patroniCluster(c)).find((m) => m.name === h.name);
      if (member) throw new ScaleInRefused(`${h.name} left the inventory but does not answer SSH at ${h.address} while Patroni still lists it (${member.role}, ${member.state}): it cannot be decommissioned safely. Bring it back, or stop it, and apply again (nothing was changed on any host).`);
      log(`${h.name}: left the inventory; unreachable and no longer a Patroni member: nothing to decommission`);
      decommissioned.push(h);
      continue;
    }
    log(`${h.name}: left the inventory: ${check ? "checking its decommission" : "decommissioning it before the remaining plan runs"}`);
    const ctx = { spec: c.spec, hosts: c.hosts, pki: c.pki, secrets: c.secrets };
    const step = decommissionStep(ctx, { ...h, kind: "static" });
    const out = await applyPlan({ cluster: c.plan.cluster, steps: [step] }, { [h.name]: target }, cfg!, { check, log, secrets: Object.values(c.secrets) });
    outcomes.push(...out);
    if (out.some((o) => o.outcome === "failed")) return { code: 1, outcomes, decommissioned };
    if (!check && h.roles.includes("postgres")) await confirmGone(c, h.name, log);
    decommissioned.push(h);
  }
  return { code: 0, outcomes, decommissioned };
}

/**
 * After the remaining plan applied: the local stack's leaving hosts are removed (the container
 * with its disk); every stack records the inventory it applied.
 */
export async function finishScaleIn(c: LocalCluster, r: ScaleInResult, log: (l: string) => void): Promise<void> {
  if (onLocalHosts(c.spec.stack)) for (const h of r.decommissioned) if (nodeExists(h.name)) await removeNode(h.name, log);
  recordAppliedHosts(c);
}

/** The spec's hosts as the local state records them (for tests). */
export function appliedFromSpec(spec: ClusterSpec): AppliedHost[] {
  return spec.hosts.map((h) => ({ name: h.name, address: h.address!, roles: h.roles, sshUser: h.sshUser, sshPort: h.sshPort }));
}
