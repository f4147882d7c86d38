import { strict as assert } from "assert";
import * as pulumi from "@pulumi/pulumi";
import { withMocks, stackConfig, settle, isSecretValue, reveal, type Registered } from "../support/pulumiMocks";
import { deploy, planShape } from "../../infra/program";
import { commandName } from "../../infra/driver";
import { ConfigError } from "../../infra/config";
import { loadSpec } from "../../infra/pulumiConfig";

const KEY = { "pgcluster:sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\ntest\n-----END OPENSSH PRIVATE KEY-----\n" };
const DB_PORTS = ["2379", "2380", "5432", "6432", "8008"];

async function run(stack: string, extra: Record<string, string> = {}) {
  const registered = await withMocks(stack, stackConfig(stack, { ...KEY, ...extra }), ["pgcluster:sshPrivateKey"]);
  const out = deploy();
  const spec = loadSpec();
  await settle(pulumi.all([out.DATABASE_URL_PRIMARY, out.nodes, out.caCert]));
  await new Promise((r) => setTimeout(r, 200)); // last registrations' callbacks
  return { out, spec, registered };
}

const ofType = (rs: Registered[], t: string) => rs.filter((r) => r.type === t);

for (const stack of ["dev", "prod", "local"]) {
  describe(`Pulumi program, stack ${stack} (mocks)`, function () {
    this.timeout(60000);
    let ctx: Awaited<ReturnType<typeof run>>;
    before(async () => { ctx = await run(stack); });

    it("registers exactly one remote.Command per plan step, with the plan's dependencies", () => {
      const shape = planShape(ctx.spec);
      const cmds = ofType(ctx.registered, "command:remote:Command");
      assert.deepEqual(cmds.map((c) => c.name).sort(), shape.steps.map((s) => commandName(s.id)).sort());
      const urnToName = new Map(cmds.map((c) => [c.urn!, c.name]));
      for (const step of shape.steps) {
        const c = cmds.find((x) => x.name === commandName(step.id))!;
        const deps = c.dependencies.filter((u) => urnToName.has(u)).map((u) => urnToName.get(u)!).sort();
        assert.deepEqual(deps, step.after.map(commandName).sort(), step.id);
      }
    });

    it("sends each step's script on stdin as a secret, with its digest as trigger and bash -s as the command", () => {
      for (const c of ofType(ctx.registered, "command:remote:Command")) {
        assert.ok(isSecretValue(c.inputs.stdin), `${c.name}: stdin not secret`);
        assert.match(reveal(c.inputs.stdin), /^#!\/bin\/bash\nset -euo pipefail\n/);
        assert.match(reveal(c.inputs.create), /^(sudo -n )?bash -s$/);
        assert.match(String(reveal(c.inputs.triggers)[0]), /^[0-9a-f]{64}$/);
        assert.ok(isSecretValue(c.inputs.connection), `${c.name}: connection (private key) not secret`);
        assert.equal(c.inputs.logging, "stdout");
      }
    });

    it("keeps passwords secret: generated ones from @pulumi/random with rotation keepers, outputs secret", async () => {
      const pws = ofType(ctx.registered, "random:index/randomPassword:RandomPassword");
      assert.equal(pws.length, 6);
      for (const p of pws) assert.deepEqual(p.inputs.keepers, { rotation: "0", rotate: "" });
      for (const k of ["DATABASE_URL_PRIMARY", "DATABASE_URL_REPLICA"] as const)
        assert.equal(await (ctx.out[k] as any).isSecret, true, k);
      const url = await settle(ctx.out.DATABASE_URL_PRIMARY);
      assert.match(url, /^postgresql:\/\/app:pw-[^@]+@[\d.]+:5000\/app\?sslmode=verify-full/);
      assert.match(await settle(ctx.out.DATABASE_URL_REPLICA), /:5001\/app\?/);
    });

    it("issues the PKI with @pulumi/tls: one CA, a cert per TLS node with its IP as SAN, replication and pooler client certs", () => {
      const ca = ofType(ctx.registered, "tls:index/selfSignedCert:SelfSignedCert");
      assert.equal(ca.length, 1);
      assert.equal(ca[0].inputs.isCaCertificate, true);
      assert.equal(ca[0].inputs.validityPeriodHours, ctx.spec.tls.caValidityHours);
      assert.equal(ca[0].inputs.earlyRenewalHours, undefined, "a CA is never replaced in place (that would switch trust mid-apply)");
      const csrs = ofType(ctx.registered, "tls:index/certRequest:CertRequest");
      const tlsHosts = ctx.spec.hosts.filter((h) => h.roles.includes("etcd") || h.roles.includes("postgres"));
      assert.equal(csrs.length, tlsHosts.length + 2);
      const repl = csrs.find((c) => c.name.endsWith("-replication-csr"))!;
      assert.equal(repl.inputs.subject.commonName, "replicator");
      const pooler = csrs.find((c) => c.name.endsWith("-pooler-csr"))!;
      assert.equal(pooler.inputs.subject.commonName, "pgbouncer");
      for (const h of tlsHosts) {
        const csr = csrs.find((c) => c.name === `${ctx.spec.clusterName}-${h.name}-csr`)!;
        assert.ok(csr.inputs.dnsNames.includes(h.name));
        assert.ok(csr.inputs.ipAddresses.includes("127.0.0.1"));
        assert.equal(csr.inputs.ipAddresses.length, 2 + ctx.spec.hosts.filter((x) => x.roles.includes("balancer")).length);
      }
      for (const c of ofType(ctx.registered, "tls:index/locallySignedCert:LocallySignedCert")) {
        assert.equal(c.inputs.validityPeriodHours, ctx.spec.tls.certValidityHours);
        assert.equal(c.inputs.earlyRenewalHours, ctx.spec.tls.earlyRenewalHours);
      }
      for (const k of ofType(ctx.registered, "tls:index/privateKey:PrivateKey")) assert.equal(k.inputs.algorithm, "ECDSA");
    });

    it("registers one HostDrift (dynamic) resource per host, after that host's Commands, with its steps and key secret", () => {
      const drifts = ofType(ctx.registered, "pulumi-nodejs:dynamic:Resource");
      assert.deepEqual(drifts.map((d) => d.name).sort(), ctx.spec.hosts.map((h) => `${h.name}-drift`).sort());
      const cmds = ofType(ctx.registered, "command:remote:Command");
      const urnToName = new Map(cmds.map((c) => [c.urn!, c.name]));
      const shape = planShape(ctx.spec);
      for (const d of drifts) {
        const host = d.name.replace(/-drift$/, "");
        assert.ok(isSecretValue(d.inputs.steps), `${d.name}: steps not secret`);
        assert.ok(isSecretValue(d.inputs.privateKey), `${d.name}: key not secret`);
        const steps = reveal(d.inputs.steps) as { id: string; script: string }[];
        assert.deepEqual(steps.map((x) => x.id), shape.steps.filter((x) => x.host === host).map((x) => x.id));
        const deps = d.dependencies.filter((u) => urnToName.has(u)).map((u) => urnToName.get(u)!).sort();
        assert.deepEqual(deps, shape.steps.filter((x) => x.host === host).map((x) => commandName(x.id)).sort());
        assert.match(String(d.inputs.__provider), /PGCLUSTER_CHECK=1/);
      }
    });

    if (stack === "local") {
      it("static inventory: no cloud resources, Commands reach the inventory addresses", () => {
        assert.equal(ctx.registered.filter((r) => r.type.startsWith("gcp:")).length, 0);
        const hosts = ofType(ctx.registered, "command:remote:Command").map((c) => reveal(c.inputs.connection).host);
        assert.deepEqual([...new Set(hosts)].sort(), ["10.213.0.10", "10.213.0.11", "10.213.0.12", "10.213.0.13"]);
      });
    } else {
      it("GCP: one instance per node spread over the zones, no public IP on database nodes, pd-ssd data disks", () => {
        const vms = ofType(ctx.registered, "gcp:compute/instance:Instance");
        const dbs = vms.filter((v) => v.inputs.tags.includes("pgcluster-db"));
        assert.equal(dbs.length, ctx.spec.gcp!.dbNodes);
        assert.equal(new Set(dbs.map((d) => d.inputs.zone)).size, Math.min(3, dbs.length), "DB nodes in distinct zones");
        for (const v of vms) {
          const hasPublic = v.inputs.networkInterfaces.some((ni: any) => ni.accessConfigs?.length);
          assert.equal(hasPublic, v.name.endsWith("-bastion"), `${v.name}: public IP only on the bastion`);
          assert.equal(v.inputs.image ?? v.inputs.bootDisk.initializeParams.image, "debian-cloud/debian-12");
        }
        for (const d of dbs) assert.equal(d.inputs.machineType, ctx.spec.gcp!.dbMachineType);
        const disks = ofType(ctx.registered, "gcp:compute/disk:Disk");
        assert.equal(disks.length, dbs.length);
        for (const d of disks) { assert.equal(d.inputs.type, "pd-ssd"); assert.ok(d.inputs.size >= (stack === "prod" ? 100 : 10)); }
        assert.equal(ofType(ctx.registered, "gcp:compute/routerNat:RouterNat").length, 1);
      });

      it("GCP: firewall rules per port and source; database ports never open to 0.0.0.0/0", () => {
        const rules = ofType(ctx.registered, "gcp:compute/firewall:Firewall");
        assert.ok(rules.length >= 6);
        for (const r of rules) {
          assert.ok(!(r.inputs.sourceRanges ?? []).includes("0.0.0.0/0"), `${r.name} open to the world`);
          assert.ok((r.inputs.sourceRanges?.length ?? 0) + (r.inputs.sourceTags?.length ?? 0) > 0, `${r.name} has a source`);
          const p: string[] = r.inputs.allows.flatMap((a: any) => a.ports);
          if (p.some((x) => DB_PORTS.includes(x))) assert.ok(!r.inputs.sourceRanges, `${r.name}: DB ports admit tags, not ranges`);
        }
        const ssh = rules.filter((r) => r.inputs.allows[0].ports.includes("22"));
        assert.ok(ssh.every((r) => r.inputs.targetTags.includes("pgcluster-bastion") || r.inputs.sourceTags?.includes("pgcluster-bastion")));
        const sa = ofType(ctx.registered, "gcp:projects/iAMMember:IAMMember").map((m) => m.inputs.role).sort();
        assert.deepEqual(sa, ["roles/logging.logWriter", "roles/monitoring.metricWriter"]);
      });

      it("GCP: Commands reach the nodes' internal IPs through the bastion", () => {
        for (const c of ofType(ctx.registered, "command:remote:Command")) {
          const conn = reveal(c.inputs.connection);
          assert.match(conn.host, /^10\.9\.0\.\d+$/);
          assert.equal(conn.proxy.host, "198.51.100.7");
          assert.equal(reveal(c.inputs.create), "sudo -n bash -s");
        }
      });
    }
  });
}

{
  describe("Pulumi program: invalid config (mocks)", () => {
    it("fails before registering any resource, naming the key", async () => {
      const registered = await withMocks("prod", stackConfig("prod", { ...KEY, "pgcluster:patroni": JSON.stringify({ ttl: 10, loopWait: 5, retryTimeout: 4 }) }), ["pgcluster:sshPrivateKey"]);
      assert.throws(() => deploy(), (e: unknown) => e instanceof ConfigError && /pgcluster:patroni: loopWait \+ 2·retryTimeout/.test(e.message));
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(registered.length, 0);
    });

    it("refuses a secret given in plain text, before registering anything", async () => {
      const registered = await withMocks("dev", stackConfig("dev", { ...KEY, "pgcluster:appPassword": "hunter2" }), ["pgcluster:sshPrivateKey"]);
      assert.throws(() => deploy(), /pgcluster:appPassword: is stored in plain text/);
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(registered.length, 0);
    });

    it("uses a provided secret instead of generating it, and keeps it secret", async () => {
      const registered = await withMocks("dev", stackConfig("dev", { ...KEY, "pgcluster:appPassword": "s3cret-app-password-16" }), ["pgcluster:sshPrivateKey", "pgcluster:appPassword"]);
      const out = deploy();
      const url = await settle(out.DATABASE_URL_PRIMARY);
      assert.match(url, /^postgresql:\/\/app:s3cret-app-password-16@/);
      assert.equal(await (out.DATABASE_URL_PRIMARY as any).isSecret, true);
      assert.equal(ofType(registered, "random:index/randomPassword:RandomPassword").length, 5);
    });

    it("rotation: the rotation value is a keeper of every generated password", async () => {
      const registered = await withMocks("dev", stackConfig("dev", { ...KEY, "pgcluster:secrets": JSON.stringify({ rotation: "2026-11", rotate: { appPassword: "2" } }) }), ["pgcluster:sshPrivateKey"]);
      deploy();
      await new Promise((r) => setTimeout(r, 300));
      const pws = ofType(registered, "random:index/randomPassword:RandomPassword");
      assert.deepEqual(pws.find((p) => p.name.endsWith("appPassword"))!.inputs.keepers, { rotation: "2026-11", rotate: "2" });
      assert.deepEqual(pws.find((p) => p.name.endsWith("superuserPassword"))!.inputs.keepers, { rotation: "2026-11", rotate: "" });
    });
  });
}
