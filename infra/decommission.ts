// Scale in on the Pulumi path: every database node that is not an etcd member gets a
// decommission Command. Its create does nothing (it reads and drops its stdin); its delete runs
// the decommission step (roles/decommission) with the script stored at the last create/update,
// so when the node leaves the inventory the delete hands the leader role over, stops and disables
// Patroni and removes its member from the DCS. It depends on the host's step Commands and,
// through its connection, on the instance: Pulumi deletes dependents first, so it runs before
// the instance is deleted. (pulumi-command's delete runs with the stored stdin.)
//
// Known limit: Pulumi runs deletes after every create and update, so HAProxy's update (which drops
// the node) comes before this delete; a leaving node that leads leaves writers without a route
// until its switchover. Switch over first (README, scale-in runbook). GCP database nodes are etcd
// members: removing one is an etcd membership change, which gets no decommission Command.
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import type { ClusterSpec } from "../model/config";
import type { Host, Pki, Secrets, StepNode } from "../roles/types";
import { decommissionStep } from "../roles/decommission";
import { withRole } from "../roles/hosts";
import { sha256, stepScript } from "../roles/script";
import { remoteCommand } from "../roles/transport";
import { pinnedHostKey, type Connection } from "./driver";

/** Hosts that get a decommission Command: database nodes that are not etcd members. */
export function decommissionHosts(spec: ClusterSpec): string[] {
  return withRole(spec, "postgres").filter((h) => !h.roles.includes("etcd")).map((h) => h.name);
}

/** What the decommission step of a host is compiled from (the whole cluster's). */
export interface ClusterInputs { hosts: Host[]; pki: Pki; secrets: Secrets; entryAddress?: string }

/** The decommission script of `host`: run against the cluster without it. */
export function decommissionScript(spec: ClusterSpec, c: ClusterInputs, host: string): string {
  const h = c.hosts.find((x) => x.name === host);
  if (!h) throw new Error(`no host ${host}`);
  const rest = c.hosts.filter((x) => x.name !== host);
  return stepScript(decommissionStep({ spec, hosts: rest, pki: c.pki, secrets: c.secrets, ...(c.entryAddress ? { entryAddress: c.entryAddress } : {}) }, h));
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
