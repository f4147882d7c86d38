// SSH host keys as pgcluster handles them: one ed25519 public key per host, "ssh-ed25519 <base64>"
// exactly (no options, no comment, no second line), so a key can go into a known_hosts file or a
// Pulumi connection without carrying anything else with it. Pure: no I/O, no Pulumi.

export const HOST_KEY_TYPE = "ssh-ed25519";

/** The grammar of a host key value: ed25519's 51-byte wire blob is 68 base64 characters. */
export const HOST_KEY_PATTERN = /^ssh-ed25519 [A-Za-z0-9+/]{68}$/;

/**
 * The key if `value` is a well-formed ed25519 public key line, else undefined. Checks the blob
 * itself (type name inside it, 32-byte key), not only the characters.
 */
export function parseHostKey(value: unknown): string | undefined {
  if (typeof value !== "string" || !HOST_KEY_PATTERN.test(value)) return undefined;
  const blob = Buffer.from(value.slice(HOST_KEY_TYPE.length + 1), "base64");
  if (blob.length !== 51) return undefined;
  const typeLen = blob.readUInt32BE(0);
  if (typeLen !== HOST_KEY_TYPE.length || blob.subarray(4, 4 + typeLen).toString("latin1") !== HOST_KEY_TYPE) return undefined;
  return blob.readUInt32BE(4 + typeLen) === 32 ? value : undefined;
}

/** A host key from config or a platform, or an error naming where it came from and what is wrong. */
export function requireHostKey(value: unknown, what: string): string {
  const key = parseHostKey(value);
  if (key) return key;
  throw new Error(`${what}: ${value === undefined || value === "" ? "no SSH host key" : "is not an ed25519 SSH host key"}; expected one line "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5…" (68 base64 characters, no comment), as in the host's /etc/ssh/ssh_host_ed25519_key.pub`);
}

/** The host field of a known_hosts line: OpenSSH writes non-default ports as [address]:port. */
export function knownHostsName(address: string, port: number): string {
  return port === 22 ? address : `[${address}]:${port}`;
}

/** known_hosts text for validated keys; the addresses are IPv4 (config grammar), re-checked here. */
export function knownHostsText(entries: { address: string; port: number; key: string }[]): string {
  return entries.map((e) => {
    if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(e.address)) throw new Error(`known_hosts: ${JSON.stringify(e.address)} is not an IPv4 address`);
    return `${knownHostsName(e.address, e.port)} ${requireHostKey(e.key, `known_hosts entry for ${e.address}`)}`;
  }).join("\n") + "\n";
}
