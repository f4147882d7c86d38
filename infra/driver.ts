// The Pulumi driver: one remote.Command per plan step. Script on stdin as a secret, dependsOn
// from the step's `after`, the script's digest as trigger (a changed step runs again).
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import type { Plan } from "../roles/types";
import { remoteCommand } from "../roles/transport";

export interface Connection {
  host: pulumi.Input<string>;
  user: string;
  port: number;
  privateKey: pulumi.Input<string>;
  proxy?: { host: pulumi.Input<string>; user: string; privateKey: pulumi.Input<string> };
}

/** Resource name of a step's Command ("pg1/etcd" -> "pg1-etcd"). */
export function commandName(stepId: string): string {
  return stepId.replace(/\//g, "-");
}

/**
 * `shape` is the plan compiled from placeholders (ids, hosts, order are known before any cloud
 * value); `plan` is the real one, an Output. Same compile(), so the two agree step for step.
 */
export function applyPlan(shape: Plan, plan: pulumi.Output<Plan>, connections: Record<string, Connection>, opts: pulumi.CustomResourceOptions = {}): Record<string, command.remote.Command> {
  const cmds: Record<string, command.remote.Command> = {};
  for (const step of shape.steps) {
    const conn = connections[step.host];
    if (!conn) throw new Error(`no connection for host ${step.host} (step ${step.id})`);
    const real = plan.apply((p) => {
      const s = p.steps.find((x) => x.id === step.id);
      if (!s) throw new Error(`step ${step.id} vanished from the compiled plan`);
      return s;
    });
    cmds[step.id] = new command.remote.Command(commandName(step.id), {
      connection: {
        host: conn.host,
        user: conn.user,
        port: conn.port,
        privateKey: pulumi.secret(conn.privateKey),
        dialErrorLimit: 20,
        ...(conn.proxy ? { proxy: { host: conn.proxy.host, user: conn.proxy.user, privateKey: pulumi.secret(conn.proxy.privateKey) } } : {}),
      },
      create: remoteCommand(conn.user),
      stdin: pulumi.secret(real.script),
      triggers: [real.digest],
      // The scripts print only their own progress lines (check-mode diffs of secret files are
      // withheld), and the captured output is stored as a secret.
      logging: "stdout",
    }, {
      ...opts,
      dependsOn: step.after.map((a) => cmds[a]),
      additionalSecretOutputs: ["stdout", "stderr"],
    });
  }
  return cmds;
}
