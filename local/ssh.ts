// SSH transport for the local driver: OpenSSH's client, the step script on stdin (never argv),
// known host keys, short timeouts so a dead host fails fast.
import * as fs from "fs";
import * as path from "path";
import { run } from "./exec";

export interface SshTarget {
  name: string;
  address: string;
  user: string;
  port: number;
}

export interface SshConfig {
  privateKeyFile: string;
  knownHostsFile: string;
  /** true: host keys must already be in knownHostsFile (local hosts: we wrote them). */
  strictHostKeys: boolean;
}

export function sshArgs(cfg: SshConfig, t: SshTarget, connectTimeout = 5): string[] {
  return [
    "-i", cfg.privateKeyFile,
    "-p", String(t.port),
    "-o", "BatchMode=yes",
    "-o", "IdentitiesOnly=yes",
    "-o", `ConnectTimeout=${connectTimeout}`,
    "-o", "ServerAliveInterval=5",
    "-o", "ServerAliveCountMax=3",
    "-o", `StrictHostKeyChecking=${cfg.strictHostKeys ? "yes" : "accept-new"}`,
    "-o", `UserKnownHostsFile=${cfg.knownHostsFile}`,
    "-o", "LogLevel=ERROR",
    `${t.user}@${t.address}`,
  ];
}

export function writeKnownHosts(file: string, entries: { address: string; key: string }[]): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, entries.map((e) => `${e.address} ${e.key}`).join("\n") + "\n");
}

export async function ssh(cfg: SshConfig, t: SshTarget, command: string, input = "", timeoutMs = 30 * 60_000, connectTimeout = 5): Promise<{ code: number; out: string }> {
  return run("ssh", [...sshArgs(cfg, t, connectTimeout), command], { input, timeoutMs });
}

/** A clear sentence for a failed connection (exit 255), naming the host and what to check. */
export function explainSshFailure(t: SshTarget, out: string, keyFile: string): string {
  const where = `${t.name} (${t.user}@${t.address}:${t.port})`;
  if (/Permission denied|publickey/i.test(out)) return `${where}: the SSH key was refused. Check that ${keyFile} is the key authorized for ${t.user} on that host (stack key ssh.privateKeyFile / sshPrivateKey).`;
  if (/Host key verification failed|REMOTE HOST IDENTIFICATION/i.test(out)) return `${where}: its host key does not match the one known in ${keyFile.replace(/[^/]+$/, "known_hosts")}; if the host was rebuilt, remove its line there.`;
  if (/timed out|No route to host|Network is unreachable/i.test(out)) return `${where}: unreachable (no answer within the connect timeout). Is the host up and the address right?`;
  if (/Connection refused/i.test(out)) return `${where}: connection refused: the host is up but nothing listens on port ${t.port} (sshd not running?).`;
  return `${where}: SSH failed: ${out.trim().split("\n").slice(-3).join(" | ")}`;
}
