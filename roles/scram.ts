// PostgreSQL SCRAM-SHA-256 verifiers computed here, so plaintext passwords never reach a
// server's statement log, and so "is the password current?" is a string comparison on the host.
import * as crypto from "crypto";
import type { SecretName } from "../model/config";

const ITERATIONS = 4096; // PostgreSQL's default scram_iterations
const SALT_BYTES = 16; // as PostgreSQL's own (SCRAM_DEFAULT_SALT_LEN)

/** The passwords that belong to PostgreSQL roles: each has its own SCRAM salt. */
export const ROLE_PASSWORDS = ["superuserPassword", "replicationPassword", "rewindPassword", "pgbouncerAuthPassword", "appPassword"] as const satisfies readonly SecretName[];
export type RolePassword = (typeof ROLE_PASSWORDS)[number];

/** Key of a role password's salt among the Secrets: "appPassword" -> "appPasswordSalt". */
export type SaltName = `${RolePassword}Salt`;
export function saltName(p: RolePassword): SaltName {
  return `${p}Salt`;
}

/**
 * A new random salt (base64). Salts are random, not derived from the password: equal passwords
 * (two roles, two deployments) never give equal verifiers. Each deployment keeps its salts
 * (local state file, @pulumi/random in Pulumi state), so a plan stays deterministic and a
 * re-apply changes nothing; a salt is renewed with its password (same rotation keepers).
 */
export function newScramSalt(): string {
  return crypto.randomBytes(SALT_BYTES).toString("base64");
}

/** Salts for compiling the plan's shape only (Pulumi registration), never applied. */
export function placeholderSalts(): Record<SaltName, string> {
  return Object.fromEntries(ROLE_PASSWORDS.map((p) => [saltName(p), Buffer.alloc(SALT_BYTES).toString("base64")])) as Record<SaltName, string>;
}

/** The verifier PostgreSQL stores in pg_authid.rolpassword, for `password` with `salt` (base64). */
export function scramVerifier(password: string, salt: string): string {
  const raw = typeof salt === "string" ? Buffer.from(salt, "base64") : Buffer.alloc(0);
  // A wiring mistake (a missing or mangled salt) must not silently give a weak verifier.
  if (raw.length !== SALT_BYTES || raw.toString("base64") !== salt) throw new Error(`SCRAM salt is not ${SALT_BYTES} bytes of base64`);
  const salted = crypto.pbkdf2Sync(password.normalize("NFKC"), raw, ITERATIONS, 32, "sha256");
  const clientKey = crypto.createHmac("sha256", salted).update("Client Key").digest();
  const storedKey = crypto.createHash("sha256").update(clientKey).digest();
  const serverKey = crypto.createHmac("sha256", salted).update("Server Key").digest();
  return `SCRAM-SHA-256$${ITERATIONS}:${salt}$${storedKey.toString("base64")}:${serverKey.toString("base64")}`;
}
