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
  /** The host's pinned SSH host key ("ssh-ed25519 …"): the check refuses a host presenting another. */
  hostKey: string;
  proxy?: { host: string; user: string; privateKey: string; hostKey: string };
  /** What to do when the key no longer matches: depends on where the key came from. */
  retrust?: string;
  /** The host's steps, in plan order: id and script (secret). */
  steps: { id: string; script: string }[];
  /** What differs, "<step>: <item>"; empty when the host matches the plan. */
  drift?: string[];
}

// Grammars re-checked here, where the values meet ssh's argv, its ProxyCommand (a shell line)
// and a known_hosts file: the provider runs from the state, which an older program may have written.
const SSH_USER = /^[a-z_][a-z0-9_-]{0,31}$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const ED25519_KEY = /^ssh-ed25519 [A-Za-z0-9+/]{68}$/;

function checkConnectionValues(p: HostDriftProps): void {
  const bad = (what: string, v: unknown) => { throw new Error(`drift check of ${p.host}: ${what} ${JSON.stringify(v)} is not valid; nothing was run`); };
  if (!SSH_USER.test(p.user)) bad("ssh user", p.user);
  if (!IPV4.test(p.address)) bad("address", p.address);
  if (!Number.isInteger(p.port) || p.port < 1 || p.port > 65535) bad("port", p.port);
  if (!p.hostKey) throw new Error(`drift check of ${p.host}: no pinned SSH host key in this resource's state (an older pgcluster wrote it); run pulumi up once, then refresh. Nothing was run.`);
  if (!ED25519_KEY.test(p.hostKey)) bad("host key", p.hostKey);
  if (p.proxy) {
    if (!SSH_USER.test(p.proxy.user)) bad("bastion ssh user", p.proxy.user);
    if (!IPV4.test(p.proxy.host)) bad("bastion address", p.proxy.host);
    if (!p.proxy.hostKey) throw new Error(`drift check of ${p.host}: no pinned SSH host key for the bastion in this resource's state; run pulumi up once, then refresh. Nothing was run.`);
    if (!ED25519_KEY.test(p.proxy.hostKey)) bad("bastion host key", p.proxy.hostKey);
  }
}

/** A word for /bin/sh, and for ssh's %-expansion of ProxyCommand (a literal % is %%). */
function shellWord(s: string): string {
  return `'${s.replace(/%/g, "%%").replace(/'/g, `'\\''`)}'`;
}

/**
 * ssh's argv for one check, given the files in `dir` (key, proxy-key, known_hosts). Strict host
 * keys on both hops; the destination as -l/-p/--/address, so no value can become an option; the
 * bastion hop as a ProxyCommand of quoted words, never a string spliced from config values.
 */
export function driftSshArgs(p: HostDriftProps, dir: string): string[] {
  checkConnectionValues(p);
  const knownHosts = `${dir}/known_hosts`;
  const common = ["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10", "-o", "StrictHostKeyChecking=yes",
    "-o", `UserKnownHostsFile=${knownHosts}`, "-o", "GlobalKnownHostsFile=/dev/null", "-o", "UpdateHostKeys=no", "-o", "LogLevel=ERROR"];
  const args = ["-i", `${dir}/key`, ...common];
  if (p.proxy) {
    const hop = ["ssh", "-i", `${dir}/proxy-key`, ...common, "-l", p.proxy.user, "-p", "22", "-W", "%h:%p", "--", p.proxy.host];
    args.push("-o", `ProxyCommand=${hop.map((w) => (w === "%h:%p" ? w : shellWord(w))).join(" ")}`);
  }
  args.push("-l", p.user, "-p", String(p.port), "--", p.address, p.user === "root" ? "env PGCLUSTER_CHECK=1 bash -s" : "sudo -n env PGCLUSTER_CHECK=1 bash -s");
  return args;
}

/** The known_hosts lines for the host and its bastion (OpenSSH writes non-22 ports as [a]:p). */
export function driftKnownHosts(p: HostDriftProps): string {
  checkConnectionValues(p);
  const lines = [`${p.port === 22 ? p.address : `[${p.address}]:${p.port}`} ${p.hostKey}`];
  if (p.proxy) lines.push(`${p.proxy.host} ${p.proxy.hostKey}`);
  return lines.join("\n") + "\n";
}

/** Runs the host's steps in check mode; returns what differs. Throws when the host cannot be reached or its key does not match. */
export async function checkHost(p: HostDriftProps): Promise<string[]> {
  const { spawn } = require("child_process") as typeof import("child_process");
  const fs = require("fs") as typeof import("fs");
  const os = require("os") as typeof import("os");
  const path = require("path") as typeof import("path");
  checkConnectionValues(p);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgcluster-drift-"));
  try {
    const withNewline = (k: string) => (k.endsWith("\n") ? k : k + "\n");
    fs.writeFileSync(path.join(dir, "key"), withNewline(p.privateKey), { mode: 0o600 });
    if (p.proxy) fs.writeFileSync(path.join(dir, "proxy-key"), withNewline(p.proxy.privateKey), { mode: 0o600 });
    fs.writeFileSync(path.join(dir, "known_hosts"), driftKnownHosts(p), { mode: 0o600 });
    const args = driftSshArgs(p, dir);
    const drift: string[] = [];
    for (const step of p.steps) {
      const out = await new Promise<{ code: number; text: string }>((resolve, reject) => {
        const c = spawn("ssh", args, { stdio: ["pipe", "pipe", "pipe"] });
        let text = "";
        c.stdout.on("data", (d) => (text += d));
        c.stderr.on("data", (d) => (text += d));
        c.on("error", reject);
        c.on("close", (code) => resolve({ code: code ?? -1, text }));
        c.stdin.on("error", () => {}); // a refused connection closes stdin early
        c.stdin.end(step.script);
      });
      const line = out.text.split("\n").reverse().find((l) => l.startsWith("PGCLUSTER-RESULT "));
      if (out.code !== 0 || !line) {
        const tail = out.text.trim().split("\n").filter((l) => !/^@+$|^@ +WARNING/.test(l)).slice(-3).join(" | ");
        if (/Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|host key for .* has changed|No \S+ host key is known/i.test(out.text)) {
          const hop = p.proxy ? ` (or the bastion ${p.proxy.host})` : "";
          throw new Error(`drift check of ${p.host} (${p.address}) refused: the SSH host key it presents${hop} does not match the pinned one; nothing was run. `
            + `${p.retrust ?? "If the host was rebuilt, verify its new key and pin it again"}; otherwise someone may be intercepting the connection. ssh: ${tail}`);
        }
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
    // Any input but the drift itself: a re-trusted host key (or a new address, user, key) must
    // reach the stored props, or the next refresh would check against the old ones.
    const canonical = (v: unknown): string => (Array.isArray(v) ? `[${v.map(canonical).join(",")}]`
      : v && typeof v === "object" ? `{${Object.keys(v).sort().filter((k) => (v as any)[k] !== undefined).map((k) => `${JSON.stringify(k)}:${canonical((v as any)[k])}`).join(",")}}`
      : JSON.stringify(v) ?? "null");
    const inputs = ({ drift: _d, ...rest }: HostDriftProps) => canonical(rest);
    const changed = inputs(olds) !== inputs(news);
    const drifted = (olds.drift ?? []).length > 0;
    return { changes: changed || drifted, replaces: [], deleteBeforeReplace: false };
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
