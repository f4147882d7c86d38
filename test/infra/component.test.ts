// PgCluster as a component: the tree it builds, what it registers as outputs, what the stack
// program exports, and the arguments it refuses.
import { strict as assert } from "assert";
import * as pulumi from "@pulumi/pulumi";
import { withMocks, stackConfig, settle, isSecretValue, reveal, runProgram, STACK_PROGRAM, byUrn, ancestors, fakeHostKey, type Registered } from "../support/pulumiMocks";
import { loadSpec } from "../../infra/pulumiConfig";
import { planGraph, topoOrder } from "../../roles/compile";
import { PgCluster } from "../../infra/pgCluster";
import { hostLabel } from "../../infra/children";
import { parseComponentSpec, SECRET_VALUE } from "../../infra/componentSpec";
import { ConfigError, parseClusterSpec } from "../../model/config";

const KEY = { "pgcluster:sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\ntest\n-----END OPENSSH PRIVATE KEY-----\n" };
const PEM_KEY = KEY["pgcluster:sshPrivateKey"];
const STACK_OUTPUTS = ["DATABASE_URL_PRIMARY", "DATABASE_URL_REPLICA", "DATABASE_URL_PRIMARY_DIRECT", "haproxyStats", "caCert", "nodes", "steps"];
/** Outputs added since: the readers without pooler (5003) and the stats page's password. */
const NEW_STACK_OUTPUTS = ["DATABASE_URL_REPLICA_DIRECT", "haproxyStatsPassword", "standbyTrust", "prometheus", "metricsPassword"];
const HOST_CHILDREN = ["command:remote:Command", "pulumi-nodejs:dynamic:Resource"];

for (const stack of ["dev", "prod", "local"]) {
  describe(`PgCluster component tree, stack ${stack} (mocks)`, function () {
    this.timeout(60000);
    let registered: Registered[];
    let exported: Record<string, any>;
    let spec: ReturnType<typeof loadSpec>;
    before(async () => {
      registered = await withMocks(stack, stackConfig(stack, KEY), ["pgcluster:sshPrivateKey"]);
      exported = runProgram(STACK_PROGRAM);
      spec = loadSpec();
      await settle(pulumi.all([exported.DATABASE_URL_PRIMARY, exported.nodes, exported.caCert, exported.steps]));
      await new Promise((r) => setTimeout(r, 300));
    });
    const cluster = () => registered.filter((r) => r.type === "pgcluster:index:PgCluster");

    it("one PgCluster at the stack root, named after clusterName; one Host component per host under it", () => {
      assert.deepEqual(cluster().map((c) => [c.name, c.parent, c.custom]), [[spec.clusterName, "", false]]);
      const hosts = registered.filter((r) => r.type === "pgcluster:index:Host");
      assert.deepEqual(hosts.map((h) => h.name).sort(), spec.hosts.map((h) => `${spec.clusterName}-${hostLabel(spec, h.name)}`).sort());
      for (const h of hosts) assert.equal(h.parent, cluster()[0].urn, h.name);
    });

    it("every resource is under it: Commands, HostDrift and HostKeyScan under their Host, the rest (GCP, PKI, passwords, salts) under the PgCluster", () => {
      const top = cluster()[0];
      const rest = registered.filter((r) => r !== top);
      assert.ok(rest.length > 40);
      for (const r of rest) {
        assert.ok(ancestors(registered, r).includes(top), `${r.type} ${r.name}: not under the PgCluster`);
        assert.ok(r.name.startsWith(`${top.name}-`), `${r.type} ${r.name}: name not prefixed with the component's`);
        const parent = byUrn(registered, r.parent)!;
        if (r.custom && HOST_CHILDREN.includes(r.type)) assert.equal(parent.type, "pgcluster:index:Host", `${r.type} ${r.name}`);
        else assert.equal(parent, top, `${r.type} ${r.name}: parent ${parent?.name}`);
      }
      const types = new Set(rest.map((r) => r.type));
      for (const t of ["tls:index/selfSignedCert:SelfSignedCert", "random:index/randomPassword:RandomPassword", "random:index/randomBytes:RandomBytes", "command:remote:Command"])
        assert.ok(types.has(t), t);
      if (stack !== "local") for (const t of ["pulumi:providers:gcp", "gcp:compute/network:Network", "gcp:compute/firewall:Firewall", "gcp:compute/instance:Instance", "gcp:compute/disk:Disk", "gcp:serviceaccount/account:Account"])
        assert.ok(types.has(t), t);
    });

    it("registers its outputs: URLs as secrets, the CA bundle, nodes, HAProxy stats, steps; each Host its drift", async () => {
      const out = cluster()[0].outputs!;
      assert.deepEqual(Object.keys(out).sort(), ["caCert", "haproxyStats", "haproxyStatsPassword", "metricsPassword", "nodes", "primaryDirectUrl", "primaryUrl", "prometheus", "replicaDirectUrl", "replicaUrl", "standbyTrust", "steps"]);
      // What a standby cluster of this one reads: its keys and passwords, so a secret.
      assert.ok(isSecretValue(out.standbyTrust), "standbyTrust not secret");
      for (const k of ["primaryUrl", "replicaUrl", "primaryDirectUrl", "replicaDirectUrl"]) {
        assert.ok(isSecretValue(out[k]), `${k} not secret`);
        assert.match(reveal(out[k]), /^postgresql:\/\/app:pw-[^@]+@[\d.]+:500[0123]\/app\?sslmode=verify-full/);
      }
      assert.match(out.caCert, /^-----BEGIN CERTIFICATE-----\n/);
      // Every balancer's page (on GCP the load balancer's first).
      const balancers = spec.hosts.filter((h) => h.roles.includes("balancer")).length;
      // The address in front of them first: the internal load balancer (GCP) or the floating address (local).
      assert.equal(out.haproxyStats.length, balancers + 1);
      if (stack === "local") assert.equal(out.haproxyStats[0], `http://${spec.network.floatingAddress}:8404/`);
      for (const u of out.haproxyStats) assert.match(u, /^http:\/\/[\d.]+:8404\/$/);
      assert.ok(isSecretValue(out.haproxyStatsPassword), "the stats password is a secret");
      assert.match(reveal(out.haproxyStatsPassword), /^pw-/);
      assert.ok(isSecretValue(out.metricsPassword), "the metrics password is a secret");
      assert.match(reveal(out.metricsPassword), /^pw-/);
      // Prometheus on the monitoring host when monitoring is on (the local stack), else null.
      const mon = spec.monitoring.enabled ? spec.hosts.find((h) => h.roles.includes("monitoring")) : undefined;
      assert.equal(out.prometheus, mon ? `https://${mon.address}:9090/` : null);
      assert.deepEqual(out.steps, topoOrder(planGraph(spec)).map((s) => s.id));
      assert.deepEqual(out.nodes.map((n: { name: string }) => n.name), spec.hosts.map((h) => h.name));
      for (const h of registered.filter((r) => r.type === "pgcluster:index:Host")) assert.deepEqual(h.outputs, { drift: [] }, h.name);
    });

    it("the stack program exports exactly the outputs it exported before PgCluster, from the component", async () => {
      assert.deepEqual(Object.keys(exported).sort(), [...STACK_OUTPUTS, ...NEW_STACK_OUTPUTS].sort());
      const out = cluster()[0].outputs!;
      assert.equal(await exported.DATABASE_URL_PRIMARY.isSecret, true);
      assert.equal(await settle(exported.DATABASE_URL_PRIMARY), reveal(out.primaryUrl));
      assert.equal(await settle(exported.DATABASE_URL_REPLICA), reveal(out.replicaUrl));
      assert.equal(await settle(exported.DATABASE_URL_PRIMARY_DIRECT), reveal(out.primaryDirectUrl));
      assert.equal(await settle(exported.DATABASE_URL_REPLICA_DIRECT), reveal(out.replicaDirectUrl));
      assert.equal(await exported.haproxyStatsPassword.isSecret, true);
      assert.equal(await exported.standbyTrust.isSecret, true);
      assert.equal(await exported.metricsPassword.isSecret, true);
      assert.equal(await settle(exported.prometheus), out.prometheus);
      assert.deepEqual(await settle(exported.steps), out.steps);
      assert.deepEqual(await settle(exported.nodes), out.nodes);
    });
  });
}

describe("PgCluster arguments (mocks)", function () {
  this.timeout(60000);
  const localRaw = () => {
    const c = stackConfig("local");
    const raw: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(c)) if (k.startsWith("pgcluster:")) raw[k.slice(10)] = v.startsWith("{") || v.startsWith("[") ? JSON.parse(v) : v;
    delete (raw.ssh as Record<string, unknown>).privateKeyFile;
    return raw;
  };
  const settleAll = () => new Promise((r) => setTimeout(r, 300));

  it("parseClusterSpec (the library's): a spec without the SSH key, which is an argument; refuses the key and passwords as spec values, naming them", () => {
    const spec = parseComponentSpec(localRaw(), { stack: "local" });
    assert.equal(spec.clusterName, "pglocal");
    assert.equal(spec.ssh.privateKeyFile, undefined);
    assert.throws(() => parseComponentSpec({ ...localRaw(), sshPrivateKey: PEM_KEY, appPassword: "x".repeat(20) }, { stack: "local", source: "test" }),
      (e: unknown) => e instanceof ConfigError && /pgcluster:sshPrivateKey: is an argument of PgCluster.*pass it as sshPrivateKey/.test(e.message)
        && /pgcluster:appPassword: .*pass it as secrets\.appPassword/.test(e.message) && !e.message.includes("x".repeat(20)));
    // Everything else is the stack config's validation, with its messages.
    assert.throws(() => parseComponentSpec({ ...localRaw(), patroni: { ttl: 10, loopWait: 5, retryTimeout: 4 } }, { stack: "local" }), /pgcluster:patroni: loopWait \+ 2·retryTimeout/);
  });

  it("secrets.generate false: the spec parses, and PgCluster then requires every password as an argument", async () => {
    const spec = parseComponentSpec({ ...localRaw(), secrets: { generate: false } }, { stack: "local" });
    assert.equal(spec.secrets.generate, false);
    await withMocks("local", {}, []);
    assert.throws(() => new PgCluster("a", { spec, sshPrivateKey: PEM_KEY, secrets: { appPassword: "app-password-0123456789" } }),
      (e: unknown) => e instanceof Error && /secrets\.superuserPassword: is required: spec\.secrets\.generate is false/.test(e.message) && !/secrets\.appPassword/.test(e.message));
  });

  it("refuses, before registering anything: no SSH key, an unknown or malformed password (not shown), a password the spec says was provided but was not passed", async () => {
    const registered = await withMocks("local", {}, []);
    const spec = parseComponentSpec(localRaw(), { stack: "local" });
    const bad = "short pw";
    assert.throws(() => new PgCluster("a", { spec, sshPrivateKey: "", secrets: { appPassword: bad, nosuch: "y".repeat(20) } as any }),
      (e: unknown) => e instanceof Error && /sshPrivateKey: is required/.test(e.message) && /secrets\.appPassword: must be 16 to 128 printable ASCII/.test(e.message)
        && /secrets\.nosuch: is not a pgcluster password/.test(e.message) && !e.message.includes(bad));
    const provided = parseClusterSpec({ ...localRaw(), sshPrivateKey: PEM_KEY, appPassword: "app-password-0123456789" }, { stack: "local", secretKeys: new Set(["sshPrivateKey", "appPassword"]), source: "test" });
    assert.throws(() => new PgCluster("b", { spec: provided, sshPrivateKey: PEM_KEY }), /secrets\.appPassword: the spec was given pgcluster:appPassword, but PgCluster was not/);
    await settleAll();
    assert.equal(registered.length, 0);
  });

  it("GCP: the component's name starts every GCE name (instances, disks, firewall rules, the load balancer's parts), so it must fit GCE's grammar and 63 characters with the suffix and Pulumi's 7 characters", async () => {
    const c = stackConfig("dev");
    const raw: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(c)) if (k.startsWith("pgcluster:")) raw[k.slice(10)] = v.startsWith("{") || v.startsWith("[") ? JSON.parse(v) : v;
    const spec = parseComponentSpec(raw, { stack: "dev" });
    const registered = await withMocks("dev", {}, []);
    // Longest: the firewall rules "<name>-bastion-to-nodes-<7>" and "<name>-lb-health-checks-<7>" = name + 25 characters.
    assert.throws(() => new PgCluster("n".repeat(39), { spec, sshPrivateKey: PEM_KEY }), /name: with provider gcp, instance and disk names \(and every other GCE name, the longest "n{39}-(bastion-to-nodes|lb-health-checks)-<7 characters>"\) must fit GCE's 63 characters: shorten the component's name by 1$/m);
    assert.throws(() => new PgCluster("Orders", { spec, sshPrivateKey: PEM_KEY }), /name: with provider gcp, it starts GCE instance and disk names: lower-case/);
    await settleAll();
    assert.equal(registered.length, 0);
    new PgCluster("n".repeat(38), { spec, sshPrivateKey: PEM_KEY });
    await settleAll();
    // Every GCE resource Pulumi names ("<resource name>-<7>") fits, and the longest just does:
    // the check knows every suffix the component uses.
    const gce = registered.filter((r) => r.type.startsWith("gcp:compute/") && r.inputs.name === undefined).map((r) => r.name.length + 8);
    assert.ok(gce.length > 15, `${gce.length} GCE resources`);
    assert.ok(gce.every((n) => n <= 63));
    assert.equal(Math.max(...gce), 63);
  });

  it("a password given as an Output is checked when known, without showing it", async () => {
    await withMocks("local", {}, []);
    const spec = parseComponentSpec(localRaw(), { stack: "local" });
    const handled: unknown[] = [];
    const onUnhandled = (e: unknown) => handled.push(e);
    process.on("unhandledRejection", onUnhandled);
    try {
      const c = new PgCluster("late", { spec, sshPrivateKey: PEM_KEY, secrets: { appPassword: pulumi.secret("has a space in it, 30 chars!") } });
      await assert.rejects((c.primaryUrl as any).promise(), (e: unknown) => e instanceof Error && /PgCluster late: secrets\.appPassword: must be 16 to 128/.test(e.message) && !e.message.includes("has a space"));
      await settleAll();
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
  });

  it("the secret grammar is the stack config's: the same values pass and fail", () => {
    for (const v of ["a".repeat(16), "a".repeat(128), "!~#%&()*+,-./:;<=>?@[]^_{|}0aZ", "a".repeat(15), "a".repeat(129), "with space 0123456789", "tab\there0123456789", "é".repeat(16), "new\nline0123456789"]) {
      let configOk = true;
      try {
        parseClusterSpec({ ...localRaw(), sshPrivateKey: PEM_KEY, appPassword: v }, { stack: "local", secretKeys: new Set(["sshPrivateKey", "appPassword"]), source: "t" });
      } catch (e) {
        configOk = !/pgcluster:appPassword/.test((e as Error).message);
      }
      assert.equal(SECRET_VALUE.test(v), configOk, JSON.stringify(v));
    }
  });

  it("two components of different names in one program: no resource name twice, no aliases (nothing adopted), each cluster's Commands at its own hosts", async () => {
    const registered = await withMocks("local", {}, []);
    const a = parseComponentSpec({ ...localRaw(), clusterName: "alpha" }, { stack: "local" });
    const other = localRaw();
    // A one-balancer copy (no floating address) on the standby cluster's addresses.
    other.hosts = (other.hosts as { name: string }[]).filter((h) => h.name !== "lb2");
    other.network = { ...(other.network as object), floatingAddress: undefined };
    (other.hosts as { address: string }[]).forEach((h, i) => (h.address = `10.213.0.${50 + i}`));
    const b = parseComponentSpec({ ...other, clusterName: "beta" }, { stack: "local" });
    new PgCluster("alpha", { spec: a, sshPrivateKey: PEM_KEY });
    new PgCluster("beta", { spec: b, sshPrivateKey: PEM_KEY });
    await settleAll();
    await new Promise((r) => setTimeout(r, 500));
    const keys = registered.map((r) => `${r.type} ${r.name}`);
    assert.equal(new Set(keys).size, keys.length, "a resource name twice");
    assert.deepEqual(registered.filter((r) => r.aliases.length), []);
    const clusters = registered.filter((r) => r.type === "pgcluster:index:PgCluster");
    for (const c of clusters) {
      const cmds = registered.filter((r) => r.type === "command:remote:Command" && ancestors(registered, r).includes(c));
      const want = c.name === "alpha" ? ["10.213.0.10", "10.213.0.11", "10.213.0.12", "10.213.0.13", "10.213.0.30", "10.213.0.40", "10.213.0.9"] : ["10.213.0.50", "10.213.0.51", "10.213.0.52", "10.213.0.53", "10.213.0.54", "10.213.0.55"];
      assert.deepEqual([...new Set(cmds.map((x) => reveal(x.inputs.connection).host))].sort(), want, c.name);
      for (const x of cmds) assert.equal(reveal(x.inputs.connection).hostKey, fakeHostKey(`scan ${reveal(x.inputs.connection).host}`));
    }
  });
});
