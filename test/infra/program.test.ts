import { needsNodeCert } from "../../model/certs";
import { strict as assert } from "assert";
import * as pulumi from "@pulumi/pulumi";
import * as gcp from "@pulumi/gcp";
import { withMocks, stackConfig, settle, isSecretValue, reveal, fakeHostKey, guestAttributes, mockInstanceName, runProgram, STACK_PROGRAM, byUrn, type Registered } from "../support/pulumiMocks";
import { planGraph, topoOrder } from "../../roles/compile";
import { commandName, applyPlan } from "../../infra/driver";
import { hostLabel } from "../../infra/children";
import { ConfigError, SECRET_KEYS } from "../../model/config";
import { loadSpec } from "../../infra/pulumiConfig";
import { guestAttributeHostKey, GUEST_ATTRIBUTE_WAIT } from "../../infra/hostKeys";

const KEY = { "pgcluster:sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\ntest\n-----END OPENSSH PRIVATE KEY-----\n" };
const DB_PORTS = ["2379", "2380", "5432", "6432", "8008"];

/** The stack program (infra/index.ts), as `pulumi up` runs it. */
const deploy = () => runProgram(STACK_PROGRAM) as typeof import("../../infra/index");

async function run(stack: string, extra: Record<string, string> = {}) {
  const registered = await withMocks(stack, stackConfig(stack, { ...KEY, ...extra }), ["pgcluster:sshPrivateKey"]);
  const out = deploy();
  const spec = loadSpec();
  await settle(pulumi.all([out.DATABASE_URL_PRIMARY, out.nodes, out.caCert]));
  await new Promise((r) => setTimeout(r, 200)); // last registrations' callbacks
  return { out, spec, registered };
}

const ofType = (rs: Registered[], t: string) => rs.filter((r) => r.type === t);
const DYNAMIC = "pulumi-nodejs:dynamic:Resource";
const drifts = (rs: Registered[]) => ofType(rs, DYNAMIC).filter((r) => r.name.endsWith("-drift"));
const scans = (rs: Registered[]) => ofType(rs, DYNAMIC).filter((r) => r.name.endsWith("-hostkey"));
type Spec = ReturnType<typeof loadSpec>;
/** The stack program names its PgCluster after clusterName; a child's name starts with it. */
const child = (spec: Spec, suffix: string) => `${spec.clusterName}-${suffix}`;
/** A host's child: "<cluster>-pg1-…" (static), "<cluster>-db-1-…" for GCP's "<cluster>-db-1". */
const hostChild = (spec: Spec, host: string, suffix?: string) => child(spec, hostLabel(spec, host) + (suffix ? `-${suffix}` : ""));
/** A step's Command name. */
const cmdName = (spec: Spec, stepId: string) => hostChild(spec, stepId.split("/")[0], stepId.split("/")[1]);
/** The host each Command runs on, from the plan's shape. */
function commandHosts(spec: Spec): Map<string, string> {
  return new Map(topoOrder(planGraph(spec)).map((s) => [cmdName(spec, s.id), s.host]));
}
/** The Host component a resource hangs under (its parent), by host name. */
const parentHost = (rs: Registered[], r: Registered) => {
  const p = byUrn(rs, r.parent);
  return p?.type === "pgcluster:index:Host" ? p : undefined;
};

for (const stack of ["dev", "prod", "local"]) {
  describe(`Pulumi program, stack ${stack} (mocks)`, function () {
    this.timeout(60000);
    let ctx: Awaited<ReturnType<typeof run>>;
    before(async () => { ctx = await run(stack); });

    it("registers exactly one remote.Command per plan step, with the plan's dependencies", () => {
      const shape = { steps: topoOrder(planGraph(ctx.spec)) };
      const cmds = ofType(ctx.registered, "command:remote:Command");
      assert.deepEqual(cmds.map((c) => c.name).sort(), shape.steps.map((s) => cmdName(ctx.spec, s.id)).sort());
      const urnToName = new Map(cmds.map((c) => [c.urn!, c.name]));
      for (const step of shape.steps) {
        const c = cmds.find((x) => x.name === cmdName(ctx.spec, step.id))!;
        const deps = c.dependencies.filter((u) => urnToName.has(u)).map((u) => urnToName.get(u)!).sort();
        assert.deepEqual(deps, step.after.map((a) => cmdName(ctx.spec, a)).sort(), step.id);
        // A child of its host's Host component, which is a child of the cluster.
        const host = parentHost(ctx.registered, c);
        assert.equal(host?.name, hostChild(ctx.spec, step.host), `${c.name}: parent`);
      }
    });

    it("names a host's children after the component and the host: <cluster>-pg1-etcd, or <cluster>-db-1-etcd for GCP's <cluster>-db-1", () => {
      const names = ofType(ctx.registered, "command:remote:Command").map((c) => c.name);
      const first = stack === "local" ? "pglocal-pg1" : `pg${stack}-db-1`;
      for (const n of [`${first}-etcd`, `${first}-patroni`]) assert.ok(names.includes(n), `${n} not in ${names.join(", ")}`);
      assert.ok(ctx.registered.some((r) => r.type === "pgcluster:index:Host" && r.name === first));
      if (stack !== "local") assert.ok(ofType(ctx.registered, "gcp:compute/instance:Instance").some((v) => v.name === first));
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
      // Every password with rotation keepers; the backup cipher passphrase (backup.enabled) has none: it is never rotated.
      assert.equal(pws.length, SECRET_KEYS.length + (ctx.spec.backup.enabled ? 1 : 0));
      for (const p of pws) assert.deepEqual(p.inputs.keepers, p.name.endsWith("backupCipherPassphrase") ? undefined : { rotation: "0", rotate: "" }, p.name);
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
      const tlsHosts = ctx.spec.hosts.filter((h) => needsNodeCert(ctx.spec, h));
      if (ctx.spec.monitoring.enabled) assert.equal(tlsHosts.length, ctx.spec.hosts.length, "monitoring: every host serves its exporters over TLS");
      assert.equal(csrs.length, tlsHosts.length + 2);
      const repl = csrs.find((c) => c.name.endsWith("-replication-csr"))!;
      assert.equal(repl.inputs.subject.commonName, "replicator");
      const pooler = csrs.find((c) => c.name.endsWith("-pooler-csr"))!;
      assert.equal(pooler.inputs.subject.commonName, "pgbouncer");
      for (const h of tlsHosts) {
        const csr = csrs.find((c) => c.name === hostChild(ctx.spec, h.name, "csr"))!;
        assert.ok(csr.inputs.dnsNames.includes(h.name));
        assert.ok(csr.inputs.ipAddresses.includes("127.0.0.1"));
        // its own, loopback, each balancer's and the address clients dial in front of them (GCP:
        // the internal load balancer's; the local stack: the balancers' floating address)
        assert.equal(csr.inputs.ipAddresses.length, 2 + ctx.spec.hosts.filter((x) => x.roles.includes("balancer")).length + 1);
      }
      for (const c of ofType(ctx.registered, "tls:index/locallySignedCert:LocallySignedCert")) {
        assert.equal(c.inputs.validityPeriodHours, ctx.spec.tls.certValidityHours);
        assert.equal(c.inputs.earlyRenewalHours, ctx.spec.tls.earlyRenewalHours);
      }
      for (const k of ofType(ctx.registered, "tls:index/privateKey:PrivateKey")) assert.equal(k.inputs.algorithm, "ECDSA");
    });

    it("registers one HostDrift (dynamic) resource per host, after that host's Commands, with its steps and key secret", () => {
      const ds = drifts(ctx.registered);
      assert.deepEqual(ds.map((d) => d.name).sort(), ctx.spec.hosts.map((h) => hostChild(ctx.spec, h.name, "drift")).sort());
      const cmds = ofType(ctx.registered, "command:remote:Command");
      const urnToName = new Map(cmds.map((c) => [c.urn!, c.name]));
      const shape = { steps: topoOrder(planGraph(ctx.spec)) };
      for (const d of ds) {
        const host: string = d.inputs.host;
        assert.equal(d.name, hostChild(ctx.spec, host, "drift"));
        assert.equal(parentHost(ctx.registered, d)?.name, hostChild(ctx.spec, host), `${d.name}: parent`);
        assert.ok(isSecretValue(d.inputs.steps), `${d.name}: steps not secret`);
        assert.ok(isSecretValue(d.inputs.privateKey), `${d.name}: key not secret`);
        const steps = reveal(d.inputs.steps) as { id: string; script: string }[];
        assert.deepEqual(steps.map((x) => x.id), shape.steps.filter((x) => x.host === host).map((x) => x.id));
        const deps = d.dependencies.filter((u) => urnToName.has(u)).map((u) => urnToName.get(u)!).sort();
        assert.deepEqual(deps, shape.steps.filter((x) => x.host === host).map((x) => cmdName(ctx.spec, x.id)).sort());
        assert.match(String(d.inputs.__provider), /PGCLUSTER_CHECK=1/);
      }
    });

    if (stack === "local") {
      it("trust on first use (the local stack file): one HostKeyScan per host, and every Command and HostDrift pins exactly the key it recorded", () => {
        const recorded = scans(ctx.registered);
        assert.deepEqual(recorded.map((r) => r.name).sort(), ctx.spec.hosts.map((h) => hostChild(ctx.spec, h.name, "hostkey")).sort());
        for (const h of ctx.spec.hosts) {
          const r = recorded.find((x) => x.name === hostChild(ctx.spec, h.name, "hostkey"))!;
          assert.deepEqual({ host: r.inputs.host, address: r.inputs.address, port: r.inputs.port }, { host: h.name, address: h.address, port: h.sshPort });
          assert.equal(parentHost(ctx.registered, r)?.name, hostChild(ctx.spec, h.name), `${r.name}: parent`);
        }
        const hostOf = commandHosts(ctx.spec);
        const cmds = ofType(ctx.registered, "command:remote:Command");
        assert.ok(cmds.length > 0);
        for (const c of cmds) {
          const conn = reveal(c.inputs.connection);
          assert.equal(conn.hostKey, fakeHostKey(`scan ${conn.host}`), `${c.name}: host key`);
          assert.equal(ctx.spec.hosts.find((h) => h.name === hostOf.get(c.name))!.address, conn.host);
          assert.equal(conn.proxy, undefined);
        }
        for (const d of drifts(ctx.registered)) {
          assert.equal(d.inputs.hostKey, fakeHostKey(`scan ${d.inputs.address}`), `${d.name}: host key`);
          // The scan's URN, under its Host (the mock engine qualifies a type by the parent's
          // type only; the real one by the whole chain): what `pulumi up --replace` needs.
          const scan = recorded.find((r) => r.inputs.host === d.inputs.host)!;
          assert.match(scan.urn!, new RegExp(`^urn:pulumi:local::pgcluster::[^:]*pgcluster:index:Host\\$pulumi-nodejs:dynamic:Resource::pglocal-${d.inputs.host}-hostkey$`));
          assert.ok(d.inputs.retrust.endsWith(`pulumi up --replace '${scan.urn}'`), d.inputs.retrust);
        }
      });

      it("static inventory: no cloud resources, Commands reach the inventory addresses", () => {
        assert.equal(ctx.registered.filter((r) => r.type.startsWith("gcp:")).length, 0);
        const hosts = ofType(ctx.registered, "command:remote:Command").map((c) => reveal(c.inputs.connection).host);
        assert.deepEqual([...new Set(hosts)].sort(), ["10.213.0.10", "10.213.0.11", "10.213.0.12", "10.213.0.13", "10.213.0.30", "10.213.0.40", "10.213.0.9"]);
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

      it("GCP: every Command pins its own instance's key from guest attributes, and the bastion's for the proxy hop", () => {
        const vms = ofType(ctx.registered, "gcp:compute/instance:Instance");
        for (const v of vms) assert.equal(v.inputs.metadata["enable-guest-attributes"], "TRUE", `${v.name}: guest attributes off`);
        const asked = new Set(guestAttributes.asked.map((a) => `${a.name} ${a.zone} ${a.variableKey}`));
        for (const v of vms) assert.ok(asked.has(`${mockInstanceName(v.name)} ${v.inputs.zone} hostkeys/ssh-ed25519`), `${v.name}: its guest attribute was not read`);
        const bastion = vms.find((v) => v.name.endsWith("-bastion"))!;
        const hostOf = commandHosts(ctx.spec);
        const cmds = ofType(ctx.registered, "command:remote:Command");
        const distinct = new Set<string>();
        const instanceOf = (host: string) => vms.find((v) => v.name === hostChild(ctx.spec, host))!;
        for (const c of cmds) {
          const conn = reveal(c.inputs.connection);
          const vm = instanceOf(hostOf.get(c.name)!);
          assert.equal(conn.hostKey, fakeHostKey(`guest ${mockInstanceName(vm.name)}`), `${c.name}: not its instance's key`);
          assert.equal(conn.host, vm.state.networkInterfaces[0].networkIp, `${c.name}: not its instance's address`);
          assert.equal(conn.proxy.hostKey, fakeHostKey(`guest ${mockInstanceName(bastion.name)}`), `${c.name}: bastion key`);
          distinct.add(conn.hostKey);
        }
        assert.equal(distinct.size, ctx.spec.hosts.length, "one key per host");
        for (const d of drifts(ctx.registered)) {
          assert.equal(d.inputs.hostKey, fakeHostKey(`guest ${mockInstanceName(instanceOf(d.inputs.host).name)}`));
          assert.equal(reveal(d.inputs.proxy).hostKey, fakeHostKey(`guest ${mockInstanceName(bastion.name)}`));
        }
        assert.equal(scans(ctx.registered).length, 0, "no trust-on-first-use on GCP");
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
  describe("Pulumi program: host keys (mocks)", function () {
    this.timeout(60000);
    const localHosts = () => JSON.parse(stackConfig("local")["pgcluster:hosts"]) as Record<string, unknown>[];
    const localSsh = (over: Record<string, unknown>) => JSON.stringify({ ...JSON.parse(stackConfig("local")["pgcluster:ssh"]), ...over });

    it("static, pinned: every Command carries exactly the hosts[].hostKey of its host, nothing is scanned", async () => {
      const hosts = localHosts().map((h) => ({ ...h, hostKey: fakeHostKey(`config ${h.name}`) }));
      const { registered, spec } = await run("local", { "pgcluster:hosts": JSON.stringify(hosts), "pgcluster:ssh": localSsh({ hostKeys: "pinned" }) });
      const hostOf = commandHosts(spec);
      for (const c of ofType(registered, "command:remote:Command"))
        assert.equal(reveal(c.inputs.connection).hostKey, fakeHostKey(`config ${hostOf.get(c.name)}`), c.name);
      for (const d of drifts(registered)) {
        assert.equal(d.inputs.hostKey, fakeHostKey(`config ${d.inputs.host}`));
        assert.match(d.inputs.retrust, /set pgcluster:hosts\[\d\]\.hostKey/);
      }
      assert.equal(scans(registered).length, 0);
    });

    it("static, trust on first use with one key pinned: that host uses the config's key, the others are recorded", async () => {
      const hosts = localHosts().map((h) => (h.name === "pg2" ? { ...h, hostKey: fakeHostKey("config pg2") } : h));
      const { registered, spec } = await run("local", { "pgcluster:hosts": JSON.stringify(hosts) });
      assert.deepEqual(scans(registered).map((r) => r.name).sort(), ["pglocal-backup1-hostkey", "pglocal-lb1-hostkey", "pglocal-lb2-hostkey", "pglocal-mon1-hostkey", "pglocal-pg1-hostkey", "pglocal-pg3-hostkey"]);
      const hostOf = commandHosts(spec);
      const keys = new Map(ofType(registered, "command:remote:Command").map((c) => [hostOf.get(c.name), reveal(c.inputs.connection).hostKey]));
      assert.equal(keys.get("pg2"), fakeHostKey("config pg2"));
      assert.equal(keys.get("pg1"), fakeHostKey("scan 10.213.0.11"));
    });

    it("static, pinned without hosts[].hostKey: refused before any resource, naming every host's key", async () => {
      const hosts = localHosts().map((h) => (h.name === "pg1" ? { ...h, hostKey: fakeHostKey("config pg1") } : h));
      const registered = await withMocks("local", stackConfig("local", { ...KEY, "pgcluster:hosts": JSON.stringify(hosts), "pgcluster:ssh": localSsh({ hostKeys: "pinned" }) }), ["pgcluster:sshPrivateKey"]);
      assert.throws(() => deploy(), (e: unknown) => e instanceof ConfigError
        && /pgcluster:hosts\[0\]\.hostKey: host "lb1" has no SSH host key/.test(e.message)
        && /pgcluster:hosts\[2\]\.hostKey: host "pg2"/.test(e.message) && /pgcluster:hosts\[3\]\.hostKey/.test(e.message)
        && !/hosts\[1\]/.test(e.message));
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(registered.length, 0);
    });

    it("a hosts[].hostKey that is not one ed25519 key line (a comment, a second line) is refused, naming it", async () => {
      for (const bad of [`${fakeHostKey("x")} root@pg1`, `${fakeHostKey("x")}\n@cert-authority * ${fakeHostKey("y")}`, "ssh-rsa AAAAB3NzaC1yc2E"]) {
        const hosts = localHosts().map((h) => (h.name === "pg3" ? { ...h, hostKey: bad } : h));
        const registered = await withMocks("local", stackConfig("local", { ...KEY, "pgcluster:hosts": JSON.stringify(hosts) }), ["pgcluster:sshPrivateKey"]);
        assert.throws(() => deploy(), /pgcluster:hosts\[3\]\.hostKey: is not an ed25519 SSH host key/, JSON.stringify(bad));
        await new Promise((r) => setTimeout(r, 50));
        assert.equal(registered.length, 0);
      }
    });

    it("the driver registers no Command without a host key, for the host or its bastion, naming the host", async () => {
      const registered = await withMocks("local", stackConfig("local", KEY), ["pgcluster:sshPrivateKey"]);
      const spec = loadSpec();
      const shape = { steps: topoOrder(planGraph(spec)) };
      const conn = (h: string) => ({ host: "10.213.0.11", user: "root", port: 22, privateKey: "k", hostKey: fakeHostKey(h) });
      const all = (over: (h: string) => object) => Object.fromEntries(spec.hosts.map((h) => [h.name, { ...conn(h.name), ...over(h.name) }])) as any;
      const place = (step: { id: string }) => ({ name: commandName(step.id), opts: {} });
      assert.throws(() => applyPlan(shape.steps, pulumi.output(shape) as any, all((h) => (h === "pg2" ? { hostKey: undefined } : {})), place), /host pg2: no SSH host key/);
      assert.throws(() => applyPlan(shape.steps, pulumi.output(shape) as any, all(() => ({ proxy: { host: "198.51.100.7", user: "root", privateKey: "k", hostKey: "" } })), place), /bastion of host \w+: no SSH host key/);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(ofType(registered, "command:remote:Command").length, 0);
    });

    it("GCP: an instance that never publishes its host key is an error naming it, after a bounded wait", async () => {
      await withMocks("dev", stackConfig("dev", KEY), ["pgcluster:sshPrivateKey"]);
      const saved = { ...GUEST_ATTRIBUTE_WAIT };
      Object.assign(GUEST_ATTRIBUTE_WAIT, { timeoutMs: 400, intervalMs: 100 });
      try {
        const provider = new gcp.Provider("p", { project: "proj" });
        const vm = new gcp.compute.Instance("silent", { zone: "europe-west1-b", machineType: "e2-small", bootDisk: { initializeParams: { image: "debian-cloud/debian-12" } }, networkInterfaces: [{ network: "default" }] }, { provider });
        guestAttributes.unpublished.add(mockInstanceName("silent"));
        const t0 = Date.now();
        await assert.rejects((guestAttributeHostKey(vm, "proj", provider, "pgdev-db-9") as any).promise(),
          /GCP instance pgdev-db-9 \(silent-[0-9a-f]{7}, europe-west1-b\) guest attribute hostkeys\/ssh-ed25519: no SSH host key published after 0 s .*enable-guest-attributes/);
        assert.ok(Date.now() - t0 < 5000, "bounded");
        const published = new gcp.compute.Instance("talker", { zone: "europe-west1-b", machineType: "e2-small", bootDisk: { initializeParams: { image: "debian-cloud/debian-12" } }, networkInterfaces: [{ network: "default" }] }, { provider });
        assert.equal(await (guestAttributeHostKey(published, "proj", provider, "talker") as any).promise(), fakeHostKey(`guest ${mockInstanceName("talker")}`));
      } finally {
        Object.assign(GUEST_ATTRIBUTE_WAIT, saved);
        guestAttributes.unpublished.clear();
      }
    });
  });

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
      assert.equal(ofType(registered, "random:index/randomPassword:RandomPassword").length, SECRET_KEYS.length - 1);
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
