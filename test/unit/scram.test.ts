import { strict as assert } from "assert";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { stepScript } from "../../roles/script";
import { compile } from "../../roles/compile";
import { ROLE_PASSWORDS, saltName, scramVerifier } from "../../roles/scram";
import type { Secrets } from "../../roles/types";
import { ensureSecretsFile } from "../../local/state";
import { localSpec, hostsOf, testPki } from "../support/fixtures";

/** role -> verifier, as the database step hands them to PostgreSQL. */
async function verifiers(secrets: Secrets): Promise<Record<string, string>> {
  const spec = localSpec();
  const hosts = hostsOf(spec);
  const plan = compile(spec, hosts, await testPki(spec, hosts), secrets);
  const script = stepScript(plan.steps.find((s) => s.id === "pg1/database")!);
  const out: Record<string, string> = {};
  for (const m of script.matchAll(/pg_temp\.ensure_role\('([^']+)', \w+, \w+, \w+, '(SCRAM-SHA-256[^']+)'\)/g)) out[m[1]] = m[2];
  assert.deepEqual(Object.keys(out).sort(), ["app", "pgbouncer_auth", "postgres", "replicator", "rewind"]);
  return out;
}

describe("SCRAM verifiers: random salts kept per deployment", () => {
  let dir: string;
  const file = (name: string) => path.join(dir, name);
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgc-scram-")); });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("a verifier still verifies with PostgreSQL's algorithm (RFC 7677's exchange, checked as the server does)", () => {
    const v = scramVerifier("pencil", "W22ZaJ0SNY7soEsUEjb6gQ==");
    const m = /^SCRAM-SHA-256\$4096:W22ZaJ0SNY7soEsUEjb6gQ==\$([^:]+):(.+)$/.exec(v);
    assert.ok(m, "PostgreSQL's rolpassword format");
    const [storedKey, serverKey] = [Buffer.from(m[1], "base64"), Buffer.from(m[2], "base64")];
    const nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const authMessage = `n=user,r=rOprNGfwEbeRWgbNEkqO,r=${nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=${nonce}`;
    const proof = Buffer.from("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", "base64");
    const signature = crypto.createHmac("sha256", storedKey).update(authMessage).digest();
    const clientKey = Buffer.from(proof.map((b, i) => b ^ signature[i]));
    assert.ok(crypto.createHash("sha256").update(clientKey).digest().equals(storedKey), "the RFC's client proof is accepted");
    assert.equal(crypto.createHmac("sha256", serverKey).update(authMessage).digest("base64"), "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", "server signature as in the RFC");
  });

  it("refuses a salt that is not 16 bytes of base64 (a wiring mistake never gives a weak verifier)", () => {
    for (const bad of [undefined, "", "placeholder", Buffer.alloc(8).toString("base64"), "AAAAAAAAAAAAAAAAAAAAAA"])
      assert.throws(() => scramVerifier("pw", bad as unknown as string), /SCRAM salt is not 16 bytes of base64/);
  });

  it("equal passwords give different verifiers: for two roles, and for one role in two deployments", async () => {
    const spec = localSpec();
    const a = ensureSecretsFile(file("a.json"), spec);
    const b = ensureSecretsFile(file("b.json"), spec);
    const same = (s: Secrets): Secrets => ({ ...s, ...Object.fromEntries(ROLE_PASSWORDS.map((p) => [p, "one password for all"])) });
    const va = await verifiers(same(a));
    const vb = await verifiers(same(b));
    assert.equal(new Set(Object.values(va)).size, 5, "five roles, one password, five verifiers");
    for (const role of Object.keys(va)) assert.notEqual(va[role], vb[role], `${role}: two deployments`);
  });

  it("the same state gives the same verifiers on every compile (re-apply changes nothing)", async () => {
    const spec = localSpec();
    const first = await verifiers(ensureSecretsFile(file("s.json"), spec));
    const bytes = fs.readFileSync(file("s.json"), "utf8");
    const again = await verifiers(ensureSecretsFile(file("s.json"), spec));
    assert.deepEqual(again, first);
    assert.equal(fs.readFileSync(file("s.json"), "utf8"), bytes, "state file not rewritten");
    assert.equal(fs.statSync(file("s.json")).mode & 0o777, 0o600);
  });

  it("reads a secrets.json written before salts, keeps its passwords and adds salts; a rotation renews password and salt", () => {
    const spec = localSpec();
    const keepers = { rotation: spec.secrets.rotation, rotate: "" };
    const old = Object.fromEntries(["superuserPassword", "replicationPassword", "rewindPassword", "pgbouncerAuthPassword", "restApiPassword", "appPassword"]
      .map((k) => [k, { value: `old-${k}`, keepers }]));
    fs.writeFileSync(file("old.json"), JSON.stringify(old, null, 2) + "\n", { mode: 0o600 });
    const s = ensureSecretsFile(file("old.json"), spec);
    for (const k of Object.keys(old)) assert.equal(s[k as keyof Secrets], `old-${k}`, k);
    const stored = JSON.parse(fs.readFileSync(file("old.json"), "utf8"));
    for (const p of ROLE_PASSWORDS) {
      assert.equal(Buffer.from(stored[p].scramSalt, "base64").length, 16, p);
      assert.equal(s[saltName(p)], stored[p].scramSalt);
    }
    assert.equal(stored.restApiPassword.scramSalt, undefined, "the REST API password is no PostgreSQL role's");
    assert.equal(fs.statSync(file("old.json")).mode & 0o777, 0o600);

    const rotated = ensureSecretsFile(file("old.json"), { ...spec, secrets: { ...spec.secrets, rotate: { appPassword: "r1" } } });
    assert.notEqual(rotated.appPassword, s.appPassword);
    assert.notEqual(rotated.appPasswordSalt, s.appPasswordSalt, "a new password comes with a new salt");
    assert.equal(rotated.superuserPassword, s.superuserPassword);
    assert.equal(rotated.superuserPasswordSalt, s.superuserPasswordSalt, "other roles keep theirs");
  });
});
