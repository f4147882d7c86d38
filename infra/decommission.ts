// Scale in on the Pulumi path: every database node that is not an etcd member gets a
// decommission Command. Its create does nothing (it reads and drops its stdin); its delete runs
// the decommission step (roles/decommission) with the script stored at the last create/update,
// so when the node leaves the inventory the delete hands the leader role over, stops and disables
// Patroni and removes its member from the DCS. It depends on the host's step Commands and,
// through its connection, on the instance: Pulumi deletes dependents first, so it runs before
// the instance is deleted. (pulumi-command's delete runs with the stored stdin.)
//
// Pulumi runs deletes after every create and update, so the remaining hosts' updates (HAProxy and
// the firewalls drop the node) come before this delete: the firewalls would cut the node off from
// the etcd members it must reach. So a host leaves in two applies: marked leaving (hosts[].leaving,
// gcp.dbNodesLeaving / witnessNodesLeaving), its decommission is a step of the plan that runs first,
// while every host still admits it; removed afterwards, this delete finds it done (its marker). A
// member removed without the first apply is refused by the remaining hosts' firewall step, which
// will not drop a host the cluster still counts as a member (roles/firewall/members.sh).
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import type { ClusterSpec } from "../model/config";
import type { Host, Pki, Secrets, StepNode } from "../roles/types";
import { decommissionStep } from "../roles/decommission";
import { withRole } from "../roles/hosts";
import { splitLeaving } from "../roles/compile";
import { sha256, stepScript } from "../roles/script";
import { remoteCommand } from "../roles/transport";
import { pinnedHostKey, type Connection } from "./driver";

/**
 * Hosts that get a decommission Command: database nodes that are not etcd members, while they are
 * not leaving (a leaving host's decommission is a step of the plan, under the same name: its
 * create runs it, and the delete afterwards has nothing to do).
 */
export function decommissionHosts(spec: ClusterSpec): string[] {
  return withRole(spec, "postgres").filter((h) => !h.roles.includes("etcd") && !h.leaving).map((h) => h.name);
}

/** What the decommission step of a host is compiled from (the whole cluster's). */
export interface ClusterInputs { hosts: Host[]; pki: Pki; secrets: Secrets; entryAddress?: string }

/** The decommission script of `host`: run against the cluster without it. */
export function decommissionScript(spec: ClusterSpec, c: ClusterInputs, host: string): string {
  const h = c.hosts.find((x) => x.name === host);
  if (!h) throw new Error(`no host ${host}`);
  const { remaining } = splitLeaving({ ...spec, hosts: spec.hosts.filter((x) => x.name !== host) });
  const rest = c.hosts.filter((x) => x.name !== host && !x.leaving);
  return stepScript(decommissionStep({ spec: remaining, hosts: rest, pki: c.pki, secrets: c.secrets, ...(c.entryAddress ? { entryAddress: c.entryAddress } : {}) }, h));
}

export function decommissionCommands(spec: ClusterSpec, inputs: pulumi.Output<ClusterInputs>, graph: StepNode[], steps: Record<string, command.remote.Command>,
  connections: Record<string, Connection>, place: (host: string) => { name: string; opts: pulumi.CustomResourceOptions }): Record<string, command.remote.Command> {
  const out: Record<string, command.remote.Command> = {};
  for (const host of decommissionHosts(spec)) {
    const conn = connections[host];
    const script = inputs.apply((c) => decommissionScript(spec, c, host));
    const { name, opts } = place(host);
    out[host] = new command.remote.Command(name, {
      connection: {
        host: conn.host, user: conn.user, port: conn.port, privateKey: pulumi.secret(conn.privateKey),
        hostKey: pinnedHostKey(conn.hostKey, `host ${host}`), dialErrorLimit: 20,
        ...(conn.proxy ? { proxy: { host: conn.proxy.host, user: conn.proxy.user, privateKey: pulumi.secret(conn.proxy.privateKey), hostKey: pinnedHostKey(conn.proxy.hostKey, `bastion of host ${host}`) } } : {}),
      },
      // The stdin is the delete's: the create only consumes it.
      create: "cat >/dev/null",
      delete: remoteCommand(conn.user),
      stdin: pulumi.secret(script),
      // A changed script is stored (the create runs again, harmlessly), so a delete runs the current one.
      triggers: [script.apply(sha256)],
      logging: "stdout",
    }, {
      ...opts,
      dependsOn: graph.filter((s) => s.host === host).map((s) => steps[s.id]),
      additionalSecretOutputs: ["stdout", "stderr"],
    });
  }
  return out;
}
