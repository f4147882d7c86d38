// The exporters' login: Prometheus authenticates as METRICS_USER with the secret metricsPassword.
// Exporters (and HAProxy's) hold only a bcrypt hash of it, made here with a salt derived from the
// password itself: the same password gives the same file bytes, so a re-apply changes nothing,
// and a rotated one changes every file that holds its hash.
import { createHash } from "crypto";
import bcrypt from "bcryptjs";
import { render } from "../render";

/** The user Prometheus authenticates as at every exporter and at its own web UI. */
export const METRICS_USER = "prometheus";

/**
 * A bcrypt hash as exporter-toolkit and HAProxy's crypt(3) read it ($2a$/$2b$/$2y$, cost 10-14).
 * Cost 10: HAProxy checks it on every scrape (no cache), about 70 ms of CPU each.
 */
export const BCRYPT_HASH = /^\$2[aby]\$1[0-4]\$[./A-Za-z0-9]{53}$/;
const COST = 10;

const hashes = new Map<string, string>();
export function metricsPasswordHash(password: string): string {
  if (!password) throw new Error("the metrics password (secret metricsPassword) is empty");
  let h = hashes.get(password);
  if (!h) {
    const salt = createHash("sha256").update("pgcluster metrics password salt\0").update(password).digest().subarray(0, 16);
    h = bcrypt.hashSync(password, `$2b$${COST}$${bcrypt.encodeBase64(salt, 16)}`);
    hashes.set(password, h);
  }
  return h;
}

/** exporter-toolkit's --web.config.file: TLS with the node certificate, basic auth by hash. */
export function renderExporterWebConfig(o: { certFile: string; keyFile: string; passwordHash: string }): string {
  if (!BCRYPT_HASH.test(o.passwordHash)) throw new Error("exporter web config: the metrics password hash is not a bcrypt hash ($2b$<cost 10-14>$…)");
  return render("exporters", "web-config.yml", { ...o, username: METRICS_USER });
}
