import { strict as assert } from "assert";
import { createHash } from "crypto";
import * as pulumi from "@pulumi/pulumi";
import { withMocks, stackConfig, settle, isSecretValue, reveal, runProgram, STACK_PROGRAM } from "../support/pulumiMocks";
import { clusterSecrets } from "../../infra/secrets";
import { Children } from "../../infra/children";
import { loadSpec } from "../../infra/pulumiConfig";

const deploy = () => runProgram(STACK_PROGRAM);

const KEY = { "pgcluster:sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\ntest\n-----END OPENSSH PRIVATE KEY-----\n" };
const ROLE_PASSWORDS = ["superuserPassword", "replicationPassword", "rewindPassword", "pgbouncerAuthPassword", "appPassword"];

describe("Pulumi program: SCRAM salts (mocks)", function () {
  this.timeout(60000);

  it("one RandomBytes(16) per PostgreSQL role password, with that password's rotation keepers", async () => {
    const registered = await withMocks("dev", stackConfig("dev", { ...KEY, "pgcluster:secrets": JSON.stringify({ rotation: "7", rotate: { appPassword: "2" } }) }), ["pgcluster:sshPrivateKey"]);
    deploy();
    await new Promise((r) => setTimeout(r, 300));
    const salts = registered.filter((r) => r.type === "random:index/randomBytes:RandomBytes");
    assert.deepEqual(salts.map((s) => s.name).sort(), ROLE_PASSWORDS.map((p) => `pgdev-${p}-scram-salt`).sort());
    for (const s of salts) assert.equal(s.inputs.length, 16);
    assert.deepEqual(salts.find((s) => s.name.includes("appPassword"))!.inputs.keepers, { rotation: "7", rotate: "2" });
    assert.deepEqual(salts.find((s) => s.name.includes("superuserPassword"))!.inputs.keepers, { rotation: "7", rotate: "" });
  });

  it("salts are secret outputs (kept out of logs like passwords)", async () => {
    await withMocks("local", stackConfig("local", KEY), ["pgcluster:sshPrivateKey"]);
    const parent = new pulumi.ComponentResource("test:index:Parent", "parent");
    const secrets = clusterSecrets(loadSpec(), {}, new Children("pglocal", parent, false));
    for (const p of ROLE_PASSWORDS) {
      const o = secrets[`${p}Salt` as keyof typeof secrets];
      assert.equal(await (o as any).isSecret, true, p);
      assert.equal(Buffer.from(await settle(o!), "base64").length, 16, p);
    }
  });

  it("the salts reach the plan's verifiers", async () => {
    const registered = await withMocks("local", stackConfig("local", KEY), ["pgcluster:sshPrivateKey"]);
    deploy();
    await new Promise((r) => setTimeout(r, 500));
    const db = registered.find((r) => r.type === "command:remote:Command" && r.name === "pglocal-pg1-database")!;
    assert.ok(isSecretValue(db.inputs.stdin));
    const script: string = reveal(db.inputs.stdin);
    const verifiers = [...script.matchAll(/'SCRAM-SHA-256\$4096:([A-Za-z0-9+/=]+)\$/g)].map((m) => m[1]);
    assert.equal(verifiers.length, 5);
    // test/support/pulumiMocks.ts: a RandomBytes' value is the sha256 of its name, cut to length
    const appSalt = createHash("sha256").update("pglocal-appPassword-scram-salt").digest().subarray(0, 16).toString("base64");
    assert.ok(verifiers.includes(appSalt), "the app role's verifier uses its RandomBytes salt");
    assert.equal(new Set(verifiers).size, 5, "a salt per role");
  });
});
