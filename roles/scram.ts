// PostgreSQL SCRAM-SHA-256 verifiers computed here, so plaintext passwords never reach a
// server's statement log, and so "is the password current?" is a string comparison on the host.
import * as crypto from "crypto";

const ITERATIONS = 4096; // PostgreSQL's default scram_iterations

/**
 * The verifier PostgreSQL stores in pg_authid.rolpassword. The salt is derived from the
 * password and role, so the same inputs give the same bytes (plans are deterministic) while
 * two roles with one password still get different salts.
 */
export function scramVerifier(role: string, password: string): string {
  const salt = crypto.createHmac("sha256", password).update(`pgcluster-scram-salt:${role}`).digest().subarray(0, 16);
  const salted = crypto.pbkdf2Sync(password.normalize("NFKC"), salt, ITERATIONS, 32, "sha256");
  const clientKey = crypto.createHmac("sha256", salted).update("Client Key").digest();
  const storedKey = crypto.createHash("sha256").update(clientKey).digest();
  const serverKey = crypto.createHmac("sha256", salted).update("Server Key").digest();
  return `SCRAM-SHA-256$${ITERATIONS}:${salt.toString("base64")}$${storedKey.toString("base64")}:${serverKey.toString("base64")}`;
}
