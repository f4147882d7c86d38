// A standby cluster through the Pulumi CLI (mocks): the primary stack exports standbyTrust (a
// secret); the standby stack (Pulumi.local-standby.yaml) reads it with a StackReference and
// builds its plan on it: the primary's CA trusted, its replication certificate, its role
// passwords, Patroni's standby_cluster at the primary's entry.
import { strict as assert } from "assert";
import * as pulumi from "@pulumi/pulumi";
import { withMocks, stackConfig, settle, reveal, runProgram, STACK_PROGRAM, stackOutputs, type Registered } from "../support/pulumiMocks";
import { standbySlot, type StandbyTrust } from "../../roles/standby";

const KEY = { "pgcluster:sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\ntest\n-----END OPENSSH PRIVATE KEY-----\n" };
type Program = typeof import("../../infra/index");

async function deploy(stack: string): Promise<{ out: Program; registered: Registered[] }> {
  const registered = await withMocks(stack, stackConfig(stack, KEY), ["pgcluster:sshPrivateKey"]);
  const out = runProgram(STACK_PROGRAM) as Program;
  // promise() (not apply) so that a failed output rejects instead of never settling.
  await (pulumi.all([out.DATABASE_URL_PRIMARY, out.nodes, out.caCert]) as any).promise();
  await new Promise((r) => setTimeout(r, 200));
  return { out, registered };
}

/** The bash a step's Command sends (its stdin), by step id. */
function script(rs: Registered[], host: string, role: string): string {
  const c = rs.find((r) => r.type === "command:remote:Command" && r.name.endsWith(`-${host}-${role}`));
  assert.ok(c, `no Command for ${host}/${role}`);
  return reveal(c.inputs.stdin) as string;
}

describe("standby cluster through the Pulumi CLI (mocks): stack local-standby follows stack local", function () {
  this.timeout(60000);
  let trust: StandbyTrust;
  let primary: Awaited<ReturnType<typeof deploy>>;

  before(async () => {
    primary = await deploy("local");
    trust = await settle(primary.out.standbyTrust);
  });
  after(() => { for (const k of Object.keys(stackOutputs)) delete stackOutputs[k]; });

  it("the primary exports standbyTrust as a secret: its CA bundle, replication certificate and the database roles' passwords", async () => {
    assert.equal(await (primary.out.standbyTrust as any).isSecret, true);
    assert.match(trust.caBundle, /BEGIN CERTIFICATE/);
    assert.match(trust.replication.key, /PRIVATE KEY/);
    assert.deepEqual(Object.keys(trust.rolePasswords).sort(), ["appPassword", "appPasswordSalt", "pgbouncerAuthPassword", "pgbouncerAuthPasswordSalt", "replicationPassword", "replicationPasswordSalt", "rewindPassword", "rewindPasswordSalt", "superuserPassword", "superuserPasswordSalt"]);
    // Its own slot and admission for the standby: the permanent slot in the DCS configuration.
    assert.ok(script(primary.registered, "pg1", "patroni").includes(`"slots":{"${standbySlot("pgstandby")}":{"type":"physical"}}`));
  });

  it("the standby reads it through a StackReference and builds on it: primary CA trusted, its replication identity and passwords, standby_cluster at its entry", async () => {
    stackOutputs.local = { standbyTrust: trust };
    const { out, registered } = await deploy("local-standby");
    const refs = registered.filter((r) => r.type === "pulumi:pulumi:StackReference");
    assert.deepEqual(refs.map((r) => r.name), ["local"]);
    const patroni = script(registered, "sb1", "patroni");
    assert.ok(patroni.includes(trust.replication.cert.trim().split("\n")[1]), "sb1 logs in with the primary's replication certificate");
    assert.ok(patroni.includes(`"standby_cluster":{"host":"10.213.0.5","port":5002,"primary_slot_name":"${standbySlot("pgstandby")}","create_replica_methods":["basebackup"],"restore_command":"pgbackrest --stanza=pglocal archive-get %f \\"%p\\""}`), "Patroni's standby_cluster");
    for (const line of trust.caBundle.trim().split("\n").filter((l) => !l.startsWith("-----"))) assert.ok(patroni.includes(line), "the primary's CA is in the standby's bundle");
    assert.match(script(registered, "sb1", "database"), /standby cluster: roles and databases are those of the primary cluster/);
    // Clients of the standby log in as they do on the primary: its app password.
    const url = await settle(out.DATABASE_URL_REPLICA);
    assert.ok(url.includes(`:${encodeURIComponent(trust.rolePasswords.appPassword)}@`), "the standby's URL carries the primary's app password");
    assert.equal(await (out.DATABASE_URL_REPLICA as any).isSecret, true);
    // No writer on a standby's balancer; readers fall back to the standby leader.
    assert.match(script(registered, "sb2", "haproxy"), /backend readers_fallback\n    option httpchk OPTIONS \/standby-leader/);
  });

  it("a primary stack without the output stops the standby's deployment, naming it", async () => {
    stackOutputs.local = {};
    const e = await deploy("local-standby").then(() => undefined, (x) => x);
    assert.ok(e instanceof Error, "deployed without the primary's trust");
    assert.match(String(e), /standbyTrust/);
  });
});
