// Where the Pulumi driver gets each host's SSH host key, so that every Command (and its bastion
// hop) verifies the host it talks to before sending a script full of passwords and keys.
//
// GCP: the guest agent of Google's images generates the host keys at an instance's first boot
// and, with metadata enable-guest-attributes=TRUE, publishes the public halves as guest
// attributes (namespace "hostkeys/", one key per type: hostkeys/ssh-ed25519 = base64 blob). We
// read them through the Compute API, i.e. over Google's authenticated channel, not over the
// network path we are about to trust. Chosen over generating host keys in the program and
// injecting them: injected private keys would sit in instance metadata (readable by anyone with
// compute.instances.get and by every process on the VM through the metadata server) and in the
// Pulumi state; with guest attributes no private key ever leaves the VM.
//
// Static inventory: "pinned" takes hosts[].hostKey from the config; "trust-on-first-use" records
// the first key seen in a HostKeyScan resource (below), explicitly and once.
import * as pulumi from "@pulumi/pulumi";
import * as gcp from "@pulumi/gcp";
import { requireHostKey, HOST_KEY_TYPE } from "../model/sshHostKey";

/** How long an instance may take to publish its host key after creation; how often to ask. */
export const GUEST_ATTRIBUTE_WAIT = { timeoutMs: 5 * 60_000, intervalMs: 5_000 };

/**
 * Asks `fetch` until it returns a value, for at most `wait.timeoutMs`. A thrown error or an empty
 * answer both mean "not published yet" (the API answers 404 before the agent wrote it).
 */
export async function pollHostKey(fetch: () => Promise<string | undefined>, what: string, wait = GUEST_ATTRIBUTE_WAIT): Promise<string> {
  const deadline = Date.now() + wait.timeoutMs;
  let last = "no answer";
  for (;;) {
    try {
      const v = await fetch();
      if (v) return requireHostKey(v, what);
      last = "the attribute is empty or missing";
    } catch (e) {
      if (/is not an ed25519 SSH host key/.test((e as Error).message)) throw e;
      last = (e as Error).message;
    }
    if (Date.now() + wait.intervalMs > deadline)
      throw new Error(`${what}: no SSH host key published after ${Math.round(wait.timeoutMs / 1000)} s (${last}). `
        + `The guest agent writes hostkeys/${HOST_KEY_TYPE} at the instance's first boot when metadata enable-guest-attributes is TRUE; `
        + `an instance created before pgcluster set it never publishes one: replace it (pulumi up --replace <its urn>). `
        + `Check also that the guest agent runs (serial console: google_guest_agent). No Command was run without a verified key.`);
    await new Promise((r) => setTimeout(r, wait.intervalMs));
  }
}

/** The instance's ed25519 host key, read from its guest attributes once it exists. */
export function guestAttributeHostKey(vm: gcp.compute.Instance, project: string, provider: gcp.Provider, label: string): pulumi.Output<string> {
  return pulumi.all([vm.name, vm.zone]).apply(([name, zone]) =>
    pollHostKey(async () => {
      const r = await gcp.compute.getInstanceGuestAttributes({ name, zone, project, variableKey: `hostkeys/${HOST_KEY_TYPE}` }, { provider });
      // Published as the bare base64 blob; the key type is the attribute's name.
      return r.variableValue ? `${HOST_KEY_TYPE} ${r.variableValue.trim()}` : undefined;
    }, `GCP instance ${label} (${name}, ${zone}) guest attribute hostkeys/${HOST_KEY_TYPE}`));
}

export interface HostKeyScanProps {
  host: string;
  address: string;
  port: number;
  /** The recorded key ("ssh-ed25519 …"), an output. */
  hostKey?: string;
}

/** One ssh-keyscan of `address`: its ed25519 key, or an error naming the host. Bounded in time. */
export async function scanHostKey(p: { host: string; address: string; port: number }, attempts = 3): Promise<string> {
  const { spawn } = require("child_process") as typeof import("child_process");
  if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(p.address) || !Number.isInteger(p.port) || p.port < 1 || p.port > 65535)
    throw new Error(`${p.host}: cannot scan ${JSON.stringify(p.address)}:${p.port} (not an IPv4 address and port)`);
  let last = "";
  for (let i = 0; i < attempts; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, 5000));
    const out = await new Promise<string>((resolve) => {
      // argv only; "--" so that nothing after it is read as an option.
      const c = spawn("ssh-keyscan", ["-T", "10", "-t", "ed25519", "-p", String(p.port), "--", p.address], { stdio: ["ignore", "pipe", "pipe"] });
      let text = "";
      const timer = setTimeout(() => c.kill("SIGKILL"), 30_000);
      c.stdout.on("data", (d) => (text += d));
      c.stderr.on("data", () => {});
      c.on("error", (e) => { clearTimeout(timer); resolve(`error: ${e.message}`); });
      c.on("close", () => { clearTimeout(timer); resolve(text); });
    });
    const line = out.split("\n").map((l) => l.trim().split(/\s+/)).find((f) => f.length === 3 && f[1] === "ssh-ed25519");
    if (line) return requireHostKey(`${line[1]} ${line[2]}`, `${p.host} (${p.address}:${p.port}) ssh-keyscan`);
    last = out.trim() || "no key in the answer";
  }
  throw new Error(`${p.host} (${p.address}:${p.port}): could not record its SSH host key (ssh.hostKeys: trust-on-first-use): ssh-keyscan -t ed25519 got none after ${attempts} attempts (${last}). `
    + `Is the host up, sshd listening on port ${p.port} and offering an ed25519 key? Or pin it: pgcluster:hosts[].hostKey.`);
}

/**
 * Trust on first use, recorded: create() scans the host once and stores the key in the state.
 * There is no read(): a refresh keeps the stored key (a refresh that re-scanned would silently
 * accept a new one). A new address (or port) replaces the resource: a deliberate re-trust. To
 * re-trust a rebuilt host at the same address: pulumi up --replace <urn of <component>-<host>-hostkey> (the re-trust hint of its HostDrift names it).
 */
export const hostKeyScanProvider: pulumi.dynamic.ResourceProvider = {
  async create(inputs: HostKeyScanProps) {
    const hostKey = await scanHostKey(inputs);
    return { id: `${inputs.host}-hostkey`, outs: { host: inputs.host, address: inputs.address, port: inputs.port, hostKey } };
  },
  async diff(_id: string, olds: HostKeyScanProps, news: HostKeyScanProps) {
    const replaces = (["address", "port"] as const).filter((k) => olds[k] !== news[k]);
    return { changes: replaces.length > 0 || olds.host !== news.host, replaces, deleteBeforeReplace: false };
  },
  async update(_id: string, olds: HostKeyScanProps, news: HostKeyScanProps) {
    // Only the host's name changed: the recorded key stays.
    return { outs: { ...news, hostKey: olds.hostKey } };
  },
};

export class HostKeyScan extends pulumi.dynamic.Resource {
  declare readonly hostKey: pulumi.Output<string>;
  constructor(name: string, props: { host: string; address: pulumi.Input<string>; port: number }, opts?: pulumi.CustomResourceOptions) {
    super(hostKeyScanProvider, name, { hostKey: undefined, ...props }, opts);
  }
}
