// A stack's local state (.pgcluster/<stack>/, mode 0700): SSH key, generated secrets and the
// PKI, so a re-run reuses them. Files holding secrets are 0600. Rotation keepers as in infra:
// a changed secrets.rotation / secrets.rotate.<name> generates that password anew.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { BACKUP_PASSPHRASE, SECRET_KEYS, type ClusterSpec, type SecretName } from "../model/config";
import { PROJECT_ROOT } from "../model/stackFile";
import type { Secrets } from "../roles/types";
import { newScramSalt, ROLE_PASSWORDS, saltName } from "../roles/scram";
import { sh } from "./exec";
import { caRenewalWarnings, ensurePki, toPki, type LocalPkiState } from "./pki";
import type { Pki } from "../roles/types";

export function stateDir(stack: string): string {
  const d = path.join(PROJECT_ROOT, ".pgcluster", stack);
  fs.mkdirSync(d, { recursive: true, mode: 0o700 });
  fs.chmodSync(d, 0o700);
  return d;
}

function readJson<T>(file: string): T | undefined {
  return fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, "utf8")) as T) : undefined;
}

function writeSecretJson(file: string, value: unknown): void {
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(value, null, 2) + "\n", { mode: 0o600 });
  fs.renameSync(tmp, file);
}

/** Random id of this state: hosts built with another state are not trusted with this one's secrets. */
export function stateId(stack: string): string {
  const f = path.join(stateDir(stack), "id");
  if (!fs.existsSync(f)) fs.writeFileSync(f, crypto.randomBytes(8).toString("hex") + "\n");
  return fs.readFileSync(f, "utf8").trim();
}

/** The SSH key the stack names (ssh.privateKeyFile), created if missing. Returns the public key. */
export function ensureSshKey(spec: ClusterSpec): { privateKeyFile: string; publicKey: string } {
  const file = path.resolve(PROJECT_ROOT, spec.ssh.privateKeyFile ?? path.join(".pgcluster", spec.stack, "id_ed25519"));
  if (!fs.existsSync(file)) {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    sh("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", `pgcluster-${spec.stack}`, "-f", file]);
  }
  return { privateKeyFile: file, publicKey: fs.readFileSync(`${file}.pub`, "utf8").trim() };
}

function password(): string {
  // 32 letters and digits, like the Pulumi stack's RandomPassword (special: false).
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  const bytes = crypto.randomBytes(64);
  let out = "";
  for (const b of bytes) if (b < 248 && out.length < 32) out += alphabet[b % 62];
  return out.length === 32 ? out : password();
}

/**
 * secrets.json: { <name>: { value, keepers, scramSalt? } }. A role password's entry also holds its
 * SCRAM salt (roles/scram.ts): random, renewed with the password, kept as long as it is. Files
 * written before salts existed are read as they are and get their salts added.
 */
interface StoredSecret { value: string; keepers: { rotation: string; rotate: string }; scramSalt?: string }

export function ensureSecrets(spec: ClusterSpec): Secrets {
  return ensureSecretsFile(path.join(stateDir(spec.stack), "secrets.json"), spec);
}

/** The secrets kept in `file` (0600), generated or renewed where missing or rotated. */
export function ensureSecretsFile(file: string, spec: ClusterSpec): Secrets {
  const stored = readJson<Record<string, StoredSecret>>(file) ?? {};
  const out = {} as Secrets;
  let changed = false;
  for (const name of SECRET_KEYS as readonly SecretName[]) {
    const keepers = { rotation: spec.secrets.rotation, rotate: spec.secrets.rotate[name] ?? "" };
    const cur = stored[name];
    if (!cur || JSON.stringify(cur.keepers) !== JSON.stringify(keepers)) {
      stored[name] = { value: password(), keepers };
      changed = true;
    }
    out[name] = stored[name].value;
  }
  // The backup repository's passphrase: generated once and kept, never rotated (a new one could
  // not read the repository already written), and kept when backup is switched off and on again.
  if (spec.backup.enabled) {
    if (!stored[BACKUP_PASSPHRASE]) {
      stored[BACKUP_PASSPHRASE] = { value: password(), keepers: { rotation: "never", rotate: "" } };
      changed = true;
    }
    out.backupCipherPassphrase = stored[BACKUP_PASSPHRASE].value;
  }
  for (const name of ROLE_PASSWORDS) {
    const entry = stored[name];
    if (!entry.scramSalt) {
      entry.scramSalt = newScramSalt();
      changed = true;
    }
    out[saltName(name)] = entry.scramSalt;
  }
  if (changed) writeSecretJson(file, stored);
  return out;
}

export async function ensureLocalPki(spec: ClusterSpec, addresses: Record<string, string>): Promise<Pki> {
  const file = path.join(stateDir(spec.stack), "pki.json");
  const before = readJson<LocalPkiState & { ca?: LocalPkiState["cas"][string] }>(file);
  // State written before CA generations existed: its one CA is generation "1".
  if (before && !before.cas && before.ca) before.cas = { "1": before.ca };
  const after = await ensurePki(spec, addresses, before);
  for (const w of caRenewalWarnings(spec, after)) console.error(`warning: ${w}`);
  if (JSON.stringify(before) !== JSON.stringify(after)) writeSecretJson(file, after);
  const pki = toPki(spec, after);
  // What clients should trust: every CA generation in use (both during a CA rotation).
  fs.writeFileSync(path.join(stateDir(spec.stack), "ca.crt"), pki.caBundle);
  return pki;
}
