// Host drift inside `pulumi preview --refresh`: remote.Command has no Read, so the hosts' state
// is invisible to a refresh. One HostDrift resource per host carries that host's plan steps; its
// read() runs them in check mode over SSH (PGCLUSTER_CHECK=1: nothing is changed) and records
// what differs. A non-empty `drift` makes the next preview show an update for that host, so
// `pulumi preview --refresh --expect-no-changes` fails on drift. `pulumi up` re-runs the steps
// (the Commands) and resets it.
//
// The provider is serialized by Pulumi into its own process: it uses only Node built-ins.
import * as pulumi from "@pulumi/pulumi";

export interface HostDriftProps {
  host: string;
  address: string;
  user: string;
  port: number;
  privateKey: string;
  proxy?: { host: string; user: string; privateKey: string };
  /** The host's steps, in plan order: id and script (secret). */
  steps: { id: string; script: string }[];
  /** What differs, "<step>: <item>"; empty when the host matches the plan. */
  drift?: string[];
}

/** Runs the host's steps in check mode; returns what differs. Throws when the host cannot be reached. */
export async function checkHost(p: HostDriftProps): Promise<string[]> {
  const { spawn } = require("child_process") as typeof import("child_process");
  const fs = require("fs") as typeof import("fs");
  const os = require("os") as typeof import("os");
  const path = require("path") as typeof import("path");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgcluster-drift-"));
  try {
    const key = path.join(dir, "key");
    fs.writeFileSync(key, p.privateKey.endsWith("\n") ? p.privateKey : p.privateKey + "\n", { mode: 0o600 });
    const base = ["-i", key, "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10", "-o", "StrictHostKeyChecking=accept-new", "-o", `UserKnownHostsFile=${path.join(dir, "known_hosts")}`, "-o", "LogLevel=ERROR"];
    const args = [...base, "-p", String(p.port)];
    if (p.proxy) {
      const pkey = path.join(dir, "proxy-key");
      fs.writeFileSync(pkey, p.proxy.privateKey.endsWith("\n") ? p.proxy.privateKey : p.proxy.privateKey + "\n", { mode: 0o600 });
      args.push("-o", `ProxyCommand=ssh -i ${pkey} -o BatchMode=yes -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=${path.join(dir, "known_hosts")} -W %h:%p ${p.proxy.user}@${p.proxy.host}`);
    }
    args.push(`${p.user}@${p.address}`, p.user === "root" ? "env PGCLUSTER_CHECK=1 bash -s" : "sudo -n env PGCLUSTER_CHECK=1 bash -s");
    const drift: string[] = [];
    for (const step of p.steps) {
      const out = await new Promise<{ code: number; text: string }>((resolve, reject) => {
        const c = spawn("ssh", args, { stdio: ["pipe", "pipe", "pipe"] });
        let text = "";
        c.stdout.on("data", (d) => (text += d));
        c.stderr.on("data", (d) => (text += d));
        c.on("error", reject);
        c.on("close", (code) => resolve({ code: code ?? -1, text }));
        c.stdin.end(step.script);
      });
      const line = out.text.split("\n").reverse().find((l) => l.startsWith("PGCLUSTER-RESULT "));
      if (out.code !== 0 || !line) {
        const tail = out.text.trim().split("\n").slice(-3).join(" | ");
        throw new Error(`drift check of ${step.id} on ${p.host} (${p.address}) failed (exit ${out.code}): ${tail}`);
      }
      for (const item of (JSON.parse(line.slice("PGCLUSTER-RESULT ".length)).changed as string[])) drift.push(`${step.id}: ${item}`);
    }
    return drift;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export const hostDriftProvider: pulumi.dynamic.ResourceProvider = {
  async create(inputs: HostDriftProps) {
    // Created after the host's Commands ran: it matches the plan by construction.
    return { id: inputs.host, outs: { ...inputs, drift: [] } };
  },
  async read(id: string, props: HostDriftProps) {
    return { id, props: { ...props, drift: await checkHost(props) } };
  },
  async diff(_id: string, olds: HostDriftProps, news: HostDriftProps) {
    const stepsChanged = JSON.stringify(olds.steps) !== JSON.stringify(news.steps);
    const drifted = (olds.drift ?? []).length > 0;
    return { changes: stepsChanged || drifted, replaces: [], deleteBeforeReplace: false };
  },
  async update(_id: string, _olds: HostDriftProps, news: HostDriftProps) {
    // The Commands this resource depends on have re-applied the host's steps.
    return { outs: { ...news, drift: [] } };
  },
};

export class HostDrift extends pulumi.dynamic.Resource {
  declare readonly drift: pulumi.Output<string[]>;
  constructor(name: string, props: { [K in keyof HostDriftProps]: pulumi.Input<HostDriftProps[K]> }, opts?: pulumi.CustomResourceOptions) {
    super(hostDriftProvider, name, { drift: undefined, ...props }, { ...opts, additionalSecretOutputs: ["steps", "privateKey", "proxy"] });
  }
}
