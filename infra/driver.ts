// The Pulumi driver: one remote.Command per plan step. Script on stdin as a secret, dependsOn
// from the step's `after`, the script's digest as trigger (a changed step runs again). Every
// connection and its bastion hop carry the host's pinned key: pulumi-command then refuses a host
// that presents another one ("ssh: host key mismatch") before anything is sent.
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import type { Plan, StepNode } from "../roles/types";
import { stepScript } from "../roles/script";
import { remoteCommand } from "../roles/transport";
import { requireHostKey } from "../model/sshHostKey";

export interface Connection {
  host: pulumi.Input<string>;
  user: string;
  port: number;
  privateKey: pulumi.Input<string>;
  /** The host's SSH host key, "ssh-ed25519 AAAA…" (see hostKeys.ts for where it comes from). */
  hostKey: pulumi.Input<string>;
  proxy?: { host: pulumi.Input<string>; user: string; privateKey: pulumi.Input<string>; hostKey: pulumi.Input<string> };
}

/** The key, checked once known; a connection without one is refused at registration, naming the host. */
export function pinnedHostKey(key: pulumi.Input<string> | undefined, what: string): pulumi.Output<string> {
  if (key === undefined || key === null || key === "") throw new Error(`${what}: no SSH host key; pgcluster never connects without verifying the host's key`);
  return pulumi.output(key).apply((k) => requireHostKey(k, what));
}

/** Resource name of a step's Command ("pg1/etcd" -> "pg1-etcd"). */
export function commandName(stepId: string): string {
  return stepId.replace(/\//g, "-");
}

/** A step's Command: its resource name and options (parent, aliases, resources it needs besides its steps). */
export type Placement = (step: StepNode) => { name: string; opts: pulumi.CustomResourceOptions };

/**
 * `graph` is the plan's graph in run order (planGraph: ids, hosts, order are known from the spec
 * before any cloud value); `plan` is the compiled plan, an Output, with the same steps.
 * Keyed by step id.
 */
export function applyPlan(graph: StepNode[], plan: pulumi.Output<Plan>, connections: Record<string, Connection>, place: Placement,
  /** What makes a step's Command run again: by default its script's digest (a changed step runs again). */
  triggersOf: (digest: pulumi.Output<string>, step: StepNode) => pulumi.Input<unknown>[] = (digest) => [digest]): Record<string, command.remote.Command> {
  // Every host's connection is checked before the first Command exists.
  const keys: Record<string, { hostKey: pulumi.Output<string>; proxyHostKey?: pulumi.Output<string> }> = {};
  for (const step of graph) {
    const conn = connections[step.host];
    if (!conn) throw new Error(`no connection for host ${step.host} (step ${step.id})`);
    keys[step.host] ??= {
      hostKey: pinnedHostKey(conn.hostKey, `host ${step.host}`),
      proxyHostKey: conn.proxy ? pinnedHostKey(conn.proxy.hostKey, `bastion of host ${step.host}`) : undefined,
    };
  }
  const cmds: Record<string, command.remote.Command> = {};
  for (const step of graph) {
    const conn = connections[step.host];
    const { hostKey, proxyHostKey } = keys[step.host];
    const real = plan.apply((p) => {
      const s = p.steps.find((x) => x.id === step.id);
      if (!s) throw new Error(`step ${step.id} vanished from the compiled plan`);
      return s;
    });
    const { name, opts } = place(step);
    cmds[step.id] = new command.remote.Command(name, {
      connection: {
        host: conn.host,
        user: conn.user,
        port: conn.port,
        privateKey: pulumi.secret(conn.privateKey),
        hostKey,
        dialErrorLimit: 20,
        ...(conn.proxy ? { proxy: { host: conn.proxy.host, user: conn.proxy.user, privateKey: pulumi.secret(conn.proxy.privateKey), hostKey: proxyHostKey } } : {}),
      },
      create: remoteCommand(conn.user),
      stdin: pulumi.secret(real.apply(stepScript)),
      triggers: triggersOf(real.digest, step),
      // The scripts print only their own progress lines (check-mode diffs of secret files are
      // withheld), and the captured output is stored as a secret.
      logging: "stdout",
    }, {
      ...opts,
      // The steps it waits for, and whatever else the placement says it needs (cloud resources).
      dependsOn: [...step.after.map((a) => cmds[a]), ...placedDependencies(opts)],
      additionalSecretOutputs: ["stdout", "stderr"],
    });
  }
  return cmds;
}

function placedDependencies(opts: pulumi.CustomResourceOptions): pulumi.Resource[] {
  const d = opts.dependsOn;
  if (d === undefined) return [];
  if (!Array.isArray(d) && !pulumi.Resource.isInstance(d)) throw new Error(`a placement's dependsOn must be resources, not an Output`);
  return (Array.isArray(d) ? d : [d]) as pulumi.Resource[];
}
