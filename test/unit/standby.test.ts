// Standby cluster (issue #11, item 6): the config keys on both sides (hostile values refused), and
// what the plan makes of them: the primary's permanent slot and admission, the standby's
// standby_cluster, trust of the primary's CA, its replication identity and role passwords.
import { strict as assert } from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ConfigError, parseClusterSpec, type ClusterSpec } from "../../model/config";
import { readStackFile } from "../../model/stackFile";
import { compile } from "../../roles/compile";
import { dcsConfig } from "../../roles/patroni";
import { hostFirewall } from "../../roles/firewall";
import { asStandbyOf, standbySlot, standbyTrustOf } from "../../roles/standby";
import { ports } from "../../model/identities";
import { stepScript } from "../../roles/script";
import type { Pki, RoleContext, Secrets } from "../../roles/types";
import { fileOf, hostsOf, TEST_SECRETS, testPki } from "../support/fixtures";
import { ensurePki, toPki } from "../../local/pki";

const PEM = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU=\n-----END OPENSSH PRIVATE KEY-----\n";

function stackWith(stack: string, edit: (raw: Record<string, any>) => void = () => {}): ClusterSpec {
  const raw = structuredClone(readStackFile(stack).values) as Record<string, any>;
  edit(raw);
  return parseClusterSpec({ sshPrivateKey: PEM, ...raw }, { stack, secretKeys: new Set(["sshPrivateKey"]), source: `Pulumi.${stack}.yaml` });
}

function problems(stack: string, edit: (raw: Record<string, any>) => void): string {
  try {
    stackWith(stack, edit);
  } catch (e) {
    if (e instanceof ConfigError) return e.message;
    throw e;
  }
  return "";
}

const PATRONI_CONFIG = "/etc/patroni/config.yml";

describe("standby cluster: config", () => {
  it("the example stacks parse: local keeps a slot for pgstandby, local-standby follows local at its floating address", () => {
    const p = stackWith("local");
    assert.deepEqual(p.standbyClusters, [{ clusterName: "pgstandby", cidrs: ["10.213.0.48/29"] }]);
    const s = stackWith("local-standby");
    assert.deepEqual(s.standby, { primaryStack: "local", host: "10.213.0.5", port: ports.writerDirect, promoted: false, repository: { host: "10.213.0.30", name: "backup1", port: 8432, stanza: "pglocal" } });
  });

  it("refuses what would not work or would do harm, naming the key", () => {
    const cases: [string, (raw: Record<string, any>) => void, RegExp][] = [
      ["local-standby", (r) => { r.backup = { enabled: true }; }, /backup\.enabled: is true, but this cluster is a standby/],
      ["local-standby", (r) => { r.standby.primaryStack = "local-standby"; }, /standby\.primaryStack: names this stack/],
      ["local-standby", (r) => { r.standby.host = "10.213.0.50"; }, /standby\.host: 10\.213\.0\.50 is this cluster's own host "sb1"/],
      ["local-standby", (r) => { r.standbyClusters = [{ clusterName: "other", cidrs: ["10.213.0.60/30"] }]; }, /standbyClusters: is set on a standby cluster/],
      ["local", (r) => { r.standbyClusters.push({ clusterName: "pglocal", cidrs: ["10.213.0.60/30"] }); }, /standbyClusters\[1\]\.clusterName: is this cluster's own name/],
      ["local", (r) => { r.standbyClusters.push({ ...r.standbyClusters[0] }); }, /standbyClusters\[1\]\.clusterName: "pgstandby" is listed twice/],
      ["local", (r) => { r.standbyClusters[0].cidrs = ["0.0.0.0/0"]; }, /standbyClusters\[0\]\.cidrs\[0\]: is 0\.0\.0\.0\/0: replication from the whole internet is refused/],
      ["local", (r) => { r.standbyClusters[0].cidrs = []; }, /standbyClusters\[0\]\.cidrs/],
    ];
    for (const [stack, edit, want] of cases) assert.match(problems(stack, edit), want, want.source);
  });

  it("hostile values never reach a host: stack names, addresses and cluster names with shell, YAML or path syntax are refused", () => {
    for (const v of ["../local", "local;rm -rf /", "$(id)", "a/b/c/d", "-local", "local\nx", ""])
      assert.match(problems("local-standby", (r) => { r.standby.primaryStack = v; }), /standby\.primaryStack: must be a Pulumi stack name/, JSON.stringify(v));
    for (const v of ["10.213.0.5; id", "host.example", "10.213.0.5:5002", "10.213.0.256"])
      assert.match(problems("local-standby", (r) => { r.standby.host = v; }), /standby\.host: is not an IPv4 address/, v);
    for (const v of ["pg_standby", "Standby", "a'b", "x".repeat(41), "-x"])
      assert.match(problems("local", (r) => { r.standbyClusters[0].clusterName = v; }), /standbyClusters\[0\]\.clusterName: must be lower-case letters/, v);
    assert.match(problems("local-standby", (r) => { r.standby.port = 70000; }), /standby\.port/);
    assert.match(problems("local-standby", (r) => { r.standby.extra = 1; }), /standby\.extra/);
  });
});

describe("standby cluster: the plan", () => {
  let primary: { spec: ClusterSpec; plan: ReturnType<typeof compile> };
  let standby: { spec: ClusterSpec; plan: ReturnType<typeof compile>; secrets: Secrets; pki: Pki };
  const primarySecrets = { ...TEST_SECRETS, appPassword: "primary-app-password-0123" } as Secrets;

  before(async () => {
    const p = stackWith("local");
    const ph = hostsOf(p);
    const pPki = await testPki(p, ph);
    primary = { spec: p, plan: compile(p, ph, pPki, primarySecrets) };
    const s = stackWith("local-standby");
    const sh = hostsOf(s);
    // The standby's own PKI: here a copy with a marker CA, so the test can tell the two apart.
    const sPki = toPki(s, await ensurePki(s, Object.fromEntries(sh.map((h) => [h.name, h.address])), undefined));
    const own = { ...sPki, caBundle: "-----BEGIN CERTIFICATE-----\nSTANDBY-OWN-CA\n-----END CERTIFICATE-----\n", replication: { cert: "own-replication-cert", key: "own-replication-key" } };
    const ownSecrets = { ...TEST_SECRETS, appPassword: "standby-own-app-password", restApiPassword: "standby-own-restapi-pass" } as Secrets;
    const t = asStandbyOf(own, ownSecrets, standbyTrustOf(pPki, primarySecrets));
    standby = { spec: s, plan: compile(s, sh, t.pki, t.secrets), secrets: t.secrets, pki: t.pki };
  });

  const step = (plan: ReturnType<typeof compile>, id: string) => plan.steps.find((x) => x.id === id);

  it("primary: a permanent physical slot per standby cluster; its addresses admitted to the writer port without pooler on the balancers, to pgBackRest on the backup host, nowhere else", () => {
    const dcs = dcsConfig({ spec: primary.spec } as RoleContext) as any;
    assert.deepEqual(dcs.slots, { [standbySlot("pgstandby")]: { type: "physical" } });
    assert.equal(dcs.standby_cluster, undefined);
    const ctx = { spec: primary.spec, hosts: hostsOf(primary.spec) } as RoleContext;
    for (const h of ctx.hosts) {
      const admitted = hostFirewall(ctx, h).admissions.filter((a) => a.source === "10.213.0.48/29").map((a) => a.port);
      assert.deepEqual(admitted, h.roles.includes("balancer") ? [ports.writerDirect] : h.roles.includes("backup") ? [ports.pgbackrest] : [], h.name);
    }
  });

  it("standby: Patroni follows the primary's entry on its slot; trusts both CAs; logs in with the primary's replication certificate", () => {
    const dcs = dcsConfig({ spec: standby.spec } as RoleContext) as any;
    assert.deepEqual(dcs.standby_cluster, {
      host: "10.213.0.5", port: ports.writerDirect, primary_slot_name: "standby_pgstandby", create_replica_methods: ["basebackup"],
      restore_command: `pgbackrest --stanza=pglocal archive-get %f "%p"`,
    });
    assert.equal(dcs.slots, undefined);
    const sb1 = step(standby.plan, "sb1/patroni")!;
    const ca = fileOf(sb1, "/etc/patroni/pki/ca.crt");
    assert.match(ca, /STANDBY-OWN-CA/);
    assert.ok(ca.includes(fileOf(step(primary.plan, "pg1/patroni"), "/etc/patroni/pki/ca.crt").trim()), "the primary's CA bundle is trusted");
    assert.equal(fileOf(sb1, "/etc/patroni/pki/replication.crt").trim(), fileOf(step(primary.plan, "pg1/patroni"), "/etc/patroni/pki/replication.crt").trim());
    assert.match(fileOf(sb1, PATRONI_CONFIG), /standby_cluster/);
  });

  it("WAL fallback: the standby reads the primary's repository with the primary's replication certificate; the primary's backup host admits it (pgBackRest reads both files offline)", () => {
    const sb1 = step(standby.plan, "sb1/pgbackrest")!;
    const conf = fileOf(sb1, "/etc/pgbackrest/pgbackrest.conf");
    for (const l of ["repo1-host=backup1", "repo1-host-type=tls", "repo1-host-port=8432", "repo1-host-cert-file=/etc/pgbackrest/pki/replication.crt", "[pglocal]"]) assert.ok(conf.includes(`${l}\n`), l);
    assert.equal(fileOf(sb1, "/etc/pgbackrest/pki/replication.crt"), fileOf(step(primary.plan, "pg1/patroni"), "/etc/patroni/pki/replication.crt"));
    assert.ok(step(standby.plan, "sb1/patroni")!.after.includes("sb1/pgbackrest"), "Patroni starts once archive-get is configured");
    const repo = fileOf(step(primary.plan, "backup1/backup"), "/etc/pgbackrest/pgbackrest.conf");
    assert.match(repo, /^tls-server-auth=replicator=pglocal$/m);
    const ctx = { spec: primary.spec, hosts: hostsOf(primary.spec) } as RoleContext;
    const b = ctx.hosts.find((h) => h.name === "backup1")!;
    assert.ok(hostFirewall(ctx, b).admissions.some((a) => a.port === ports.pgbackrest && a.source === "10.213.0.48/29"), "the backup host admits the standby's range");
    // pgBackRest itself reads the standby's file for archive-get, without a warning.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgc-standby-"));
    try {
      const f = path.join(dir, "pgbackrest.conf");
      fs.writeFileSync(f, conf);
      const r = spawnSync("pgbackrest", [`--config=${f}`, "--stanza=pglocal", "help", "archive-get", "repo1-host"], { encoding: "utf8" });
      assert.equal(r.status, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /current: backup1/);
      assert.doesNotMatch(r.stdout + r.stderr, /WARN|ERROR/);
    } finally { fs.rmSync(dir, { recursive: true, force: true }); }
    // Without a repository: streaming only, no pgBackRest on the standby.
    const bare = stackWith("local-standby", (r) => { delete r.standby.repository; });
    assert.equal((dcsConfig({ spec: bare } as RoleContext) as any).standby_cluster.restore_command, undefined);
    assert.deepEqual(compile(bare, hostsOf(bare), standby.pki, standby.secrets).steps.filter((x) => x.role === "pgbackrest"), []);
  });

  it("standby: the database roles' passwords are the primary's; its own non-role secrets stay its own; the database step only says so", () => {
    assert.equal(standby.secrets.appPassword, "primary-app-password-0123");
    assert.equal(standby.secrets.restApiPassword, "standby-own-restapi-pass");
    const db = stepScript(step(standby.plan, "sb1/database")!);
    assert.match(db, /standby cluster: roles and databases are those of the primary cluster/);
    assert.doesNotMatch(db, /CREATE ROLE|ensure_role/);
  });

  it("standby: readers fall back to the standby leader; promoted: no standby_cluster, readers fall back to the primary, the database step manages roles again", () => {
    assert.match(fileOf(step(standby.plan, "sb2/haproxy"), "/etc/haproxy/haproxy.cfg"), /backend readers_fallback\n    option httpchk OPTIONS \/standby-leader\n/);
    const promoted = stackWith("local-standby", (r) => { r.standby.promoted = true; r.backup = { enabled: false }; });
    assert.equal((dcsConfig({ spec: promoted } as RoleContext) as any).standby_cluster, undefined);
    const plan = compile(promoted, hostsOf(promoted), standby.pki, standby.secrets);
    assert.match(fileOf(step(plan, "sb2/haproxy"), "/etc/haproxy/haproxy.cfg"), /backend readers_fallback\n    option httpchk OPTIONS \/primary\n/);
    assert.match(stepScript(step(plan, "sb1/database")!), /ensure_role/);
  });
});
