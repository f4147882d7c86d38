// SSH transport for the local driver: OpenSSH's client, the step script on stdin (never argv),
// verified host keys, short timeouts so a dead host fails fast.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { run } from "./exec";
import { knownHostsName, knownHostsText } from "../model/sshHostKey";

export interface SshTarget {
  name: string;
  address: string;
  user: string;
  port: number;
}

/**
 * Where host keys come from, and so what a mismatch means:
 *  - "generated": the local hosts, whose keys pgcluster generated; knownHostsFile is rewritten
 *    from them by `npm run local`; strict.
 *  - "pinned": hosts[].hostKey from the stack config, written to knownHostsFile; strict.
 *  - "trust-on-first-use": an unknown host's first key is recorded in knownHostsFile
 *    (accept-new); a changed one is refused, never replaced.
 */
export type HostKeyTrust = "generated" | "pinned" | "trust-on-first-use";

export interface SshConfig {
  privateKeyFile: string;
  knownHostsFile: string;
  hostKeys: HostKeyTrust;
  /**
   * A private directory for connection reuse: the first connection to a host stays open as a
   * master (host key verified once, when it opens) and later ones run as sessions over it, as
   * Ansible's ControlPersist does. Unset: a new connection per command.
   */
  controlDir?: string;
}

/**
 * ssh's argv for one target (the remote command is appended after it). Only this known_hosts
 * counts (no global file, no hashing, no host-key updates pushed by the server), and the
 * destination is -l user, -p port, "--", address: no value can turn into an ssh option.
 */
export function sshArgs(cfg: SshConfig, t: SshTarget, connectTimeout = 5): string[] {
  return [
    "-i", cfg.privateKeyFile,
    "-o", "BatchMode=yes",
    "-o", "IdentitiesOnly=yes",
    "-o", `ConnectTimeout=${connectTimeout}`,
    "-o", "ServerAliveInterval=5",
    "-o", "ServerAliveCountMax=3",
    "-o", `StrictHostKeyChecking=${cfg.hostKeys === "trust-on-first-use" ? "accept-new" : "yes"}`,
    "-o", `UserKnownHostsFile=${cfg.knownHostsFile}`,
    "-o", "GlobalKnownHostsFile=/dev/null",
    "-o", "HashKnownHosts=no",
    "-o", "UpdateHostKeys=no",
    "-o", "LogLevel=ERROR",
    // Reused connections: a master idle for 60 s ends by itself (an apply that was killed leaves
    // none behind for long); `withReusedConnections` ends them when the apply is done.
    ...(cfg.controlDir ? ["-o", "ControlMaster=auto", "-o", `ControlPath=${cfg.controlDir}/%C`, "-o", "ControlPersist=60"] : []),
    "-l", t.user,
    "-p", String(t.port),
    "--", t.address,
  ];
}

/** Writes a known_hosts file of exactly these (validated) keys. */
export function writeKnownHosts(file: string, entries: { address: string; port: number; key: string }[]): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, knownHostsText(entries), { mode: 0o600 });
}

/**
 * Trust on first use with some keys pinned in the config: the pinned ones replace whatever was
 * recorded for those hosts; every other recorded line stays as it is.
 */
export function mergeKnownHosts(file: string, pinned: { address: string; port: number; key: string }[]): void {
  const names = new Set(pinned.map((e) => knownHostsName(e.address, e.port)));
  const recorded = fs.existsSync(file) ? fs.readFileSync(file, "utf8").split("\n").filter((l) => l.trim() && !names.has(l.trim().split(/\s+/)[0])) : [];
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, [...recorded, ...(pinned.length ? [knownHostsText(pinned).trimEnd()] : [])].join("\n") + (recorded.length || pinned.length ? "\n" : ""), { mode: 0o600 });
}

export async function ssh(cfg: SshConfig, t: SshTarget, command: string, input = "", timeoutMs = 30 * 60_000, connectTimeout = 5): Promise<{ code: number; out: string }> {
  return run("ssh", [...sshArgs(cfg, t, connectTimeout), command], { input, timeoutMs });
}

/**
 * Runs `work` with connection reuse (see SshConfig.controlDir): one master per host for the
 * whole of it, ended afterwards, the directory removed.
 */
export async function withReusedConnections<T>(cfg: SshConfig, targets: SshTarget[], work: (cfg: SshConfig) => Promise<T>): Promise<T> {
  if (cfg.controlDir) return work(cfg);
  const controlDir = fs.mkdtempSync(path.join(os.tmpdir(), "pgc-ssh-"));
  const reused = { ...cfg, controlDir };
  try {
    return await work(reused);
  } finally {
    // sshArgs ends with "--", address: the control command goes before them.
    await Promise.all(targets.map((t) => run("ssh", [...sshArgs(reused, t).slice(0, -2), "-O", "exit", "--", t.address], { timeoutMs: 10_000 }).catch(() => undefined)));
    fs.rmSync(controlDir, { recursive: true, force: true });
  }
}

/** What to do about a host whose key no longer matches, by where the key came from. */
function retrustAdvice(cfg: SshConfig, t: SshTarget): string {
  switch (cfg.hostKeys) {
    case "generated": return "If the local hosts were rebuilt, `npm run local` writes their new keys";
    case "pinned": return `If the host was rebuilt, verify its new key out of band and set it as its hosts[].hostKey in the stack config`;
    case "trust-on-first-use": return `If the host was rebuilt, verify its new key out of band, then forget the old one: ssh-keygen -R '${knownHostsName(t.address, t.port)}' -f ${cfg.knownHostsFile} (the next run records the new key)`;
  }
}

/** A clear sentence for a failed connection (exit 255), naming the host and what to check. */
export function explainSshFailure(t: SshTarget, out: string, cfg: SshConfig): string {
  const where = `${t.name} (${t.user}@${t.address}:${t.port})`;
  if (/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key for .* has changed/i.test(out))
    return `${where}: its SSH host key has changed: it does not match the one in ${cfg.knownHostsFile}. Nothing was run on it. ${retrustAdvice(cfg, t)}; otherwise someone may be intercepting the connection.`;
  if (/Host key verification failed|No \S+ host key is known/i.test(out))
    return `${where}: its SSH host key could not be verified: ${cfg.knownHostsFile} holds no ${cfg.hostKeys === "generated" ? "generated" : "pinned"} key for it. Nothing was run on it. ${cfg.hostKeys === "generated" ? "`npm run local` writes the local hosts' keys" : "Set its hosts[].hostKey in the stack config"}.`;
  if (/Permission denied|publickey/i.test(out)) return `${where}: the SSH key was refused. Check that ${cfg.privateKeyFile} is the key authorized for ${t.user} on that host (stack key ssh.privateKeyFile / sshPrivateKey).`;
  if (/timed out|No route to host|Network is unreachable/i.test(out)) return `${where}: unreachable (no answer within the connect timeout). Is the host up and the address right?`;
  if (/Connection refused/i.test(out)) return `${where}: connection refused: the host is up but nothing listens on port ${t.port} (sshd not running?).`;
  return `${where}: SSH failed: ${out.trim().split("\n").slice(-3).join(" | ")}`;
}
