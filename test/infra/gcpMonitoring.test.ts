// monitoring.enabled on GCP (issue #14), as the stack program registers it under mocks: the
// monitoring instance (no public IP, the nodes' account, shielded, tagged pgcluster-mon, its
// machine type and boot disk from the config, its host key from guest attributes), the VPC rules
// that admit it to exactly what Prometheus scrapes and operators to Prometheus, the same as the
// host firewalls admit; with monitoring off none of it exists and the old rules are as they were.
import { strict as assert } from "assert";
import * as pulumi from "@pulumi/pulumi";
import { withMocks, stackConfig, settle, reveal, runProgram, STACK_PROGRAM, byUrn, fakeHostKey, guestAttributes, mockInstanceName, type Registered, RESOURCE_TYPES } from "../support/pulumiMocks";
import { loadSpec } from "../../infra/pulumiConfig";
import { hostLabel } from "../../infra/children";
import { gceNameSuffixes } from "../../infra/gcp";
import { planGraph } from "../../roles/compile";
import { hostFirewall } from "../../roles/firewall";
import { hostsOf, TEST_SECRETS } from "../support/fixtures";

const KEY = { "pgcluster:sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\ntest\n-----END OPENSSH PRIVATE KEY-----\n" };
const T = RESOURCE_TYPES;
const TAG = { db: "pgcluster-db", witness: "pgcluster-etcd", balancer: "pgcluster-lb", mon: "pgcluster-mon", bastion: "pgcluster-bastion" };
/** The rules monitoring adds, by name suffix. */
const MON_RULES = ["mon-to-nodes", "mon-to-db", "mon-to-etcd", "mon-to-lb", "admin-to-prom"];

async function deploy(stack: string, extra: Record<string, unknown> = {}) {
  const config = stackConfig(stack, KEY);
  for (const [k, v] of Object.entries(extra)) {
    const base = config[`pgcluster:${k}`] === undefined ? {} : JSON.parse(config[`pgcluster:${k}`]);
    config[`pgcluster:${k}`] = JSON.stringify({ ...base, ...(v as object) });
  }
  const registered = await withMocks(stack, config, ["pgcluster:sshPrivateKey"]);
  const out = runProgram(STACK_PROGRAM) as typeof import("../../infra/index");
  const spec = loadSpec();
  await settle(pulumi.all([out.DATABASE_URL_PRIMARY, out.nodes, out.caCert, out.steps]));
  await new Promise((r) => setTimeout(r, 300)); // last registrations' callbacks
  return { registered, spec };
}
type Ctx = Awaited<ReturnType<typeof deploy>>;

const ofType = (rs: Registered[], t: string) => rs.filter((r) => r.type === t);
const rule = (ctx: Ctx, suffix: string) => ofType(ctx.registered, T.firewall).find((r) => r.name === `${ctx.spec.clusterName}-${suffix}`);
/** A firewall rule as it admits: ports, sources, targets (absent lists as undefined). */
const shape = (r: Registered) => ({
  direction: r.inputs.direction,
  allows: r.inputs.allows.map((a: { protocol: string; ports: string[] }) => ({ protocol: a.protocol, ports: a.ports })),
  sourceTags: r.inputs.sourceTags, sourceRanges: r.inputs.sourceRanges, targetTags: r.inputs.targetTags,
});
const tcp = (...ports: number[]) => [{ protocol: "tcp", ports: ports.map(String) }];

describe("GCP monitoring instance (mocks)", function () {
  this.timeout(120000);

  describe("stack prod with monitoring.enabled, a machine type and disk of its own, and adminCidrs", () => {
    let ctx: Ctx;
    before(async () => {
      ctx = await deploy("prod", { monitoring: { enabled: true }, gcp: { monitoringMachineType: "e2-standard-4", monitoringDiskGb: 100 } });
    });
    const monVm = () => {
      const vms = ofType(ctx.registered, T.instance).filter((v) => v.inputs.tags.includes(TAG.mon));
      assert.equal(vms.length, 1, vms.map((v) => v.name).join());
      return vms[0];
    };

    it("one instance <cluster>-mon-1: no public IP, in the nodes' subnet, tagged pgcluster-mon only, the configured machine and boot disk, in the last zone, no data disk", () => {
      const vm = monVm();
      assert.equal(vm.name, "pgprod-mon-1");
      assert.equal(hostLabel(ctx.spec, "pgprod-mon-1"), "mon-1");
      assert.deepEqual(vm.inputs.tags, [TAG.mon]);
      assert.equal(vm.inputs.zone, "europe-west1-d");
      assert.equal(vm.inputs.machineType, "e2-standard-4");
      assert.deepEqual(vm.inputs.bootDisk.initializeParams, { image: "debian-cloud/debian-12", size: 100, type: "pd-balanced" });
      const nodes = ofType(ctx.registered, T.subnet).find((s) => s.name === "pgprod-nodes")!;
      assert.equal(vm.inputs.networkInterfaces.length, 1);
      assert.equal(vm.inputs.networkInterfaces[0].subnetwork, `${nodes.name}-id`);
      assert.equal(vm.inputs.networkInterfaces[0].accessConfigs, undefined, "no accessConfigs: no public IP");
      assert.deepEqual(vm.inputs.attachedDisks ?? [], []);
      assert.equal(ofType(ctx.registered, T.disk).length, ctx.spec.gcp!.dbNodes, "data disks for the database nodes only");
      // the other instances keep their own boot disk size
      for (const v of ofType(ctx.registered, T.instance).filter((x) => x !== vm && !x.name.endsWith("-bastion")))
        assert.equal(v.inputs.bootDisk.initializeParams.size, ctx.spec.gcp!.bootDiskGb, v.name);
    });

    it("an account of its own without any role (not the nodes', which may use the backup bucket), shielded VM, the nodes' metadata with guest attributes; its host key read from them", () => {
      const vm = monVm();
      const db = ofType(ctx.registered, T.instance).find((v) => v.name === "pgprod-db-1")!;
      const accounts = ofType(ctx.registered, T.account);
      assert.deepEqual(accounts.map((a) => a.inputs.accountId).sort(), ["pgprod-mon", "pgprod-nodes"]);
      const mon = accounts.find((a) => a.inputs.accountId === "pgprod-mon")!;
      assert.match(String(mon.state.email), /pgprod-mon@/);
      assert.deepEqual(vm.inputs.serviceAccount, { email: mon.state.email, scopes: ["cloud-platform"] });
      assert.notDeepEqual(vm.inputs.serviceAccount, db.inputs.serviceAccount);
      // No IAM binding anywhere names it (project roles, the bucket's).
      const bindings = ctx.registered.filter((r) => /IAMMember|IAMBinding/.test(r.type));
      assert.ok(bindings.length > 0);
      for (const b of bindings) assert.ok(!JSON.stringify(b.inputs).includes(String(mon.state.email)), `${b.name} grants the monitoring account`);
      assert.deepEqual(vm.inputs.shieldedInstanceConfig, { enableSecureBoot: true, enableVtpm: true, enableIntegrityMonitoring: true });
      assert.deepEqual(vm.inputs.metadata, db.inputs.metadata);
      assert.equal(vm.inputs.metadata["enable-guest-attributes"], "TRUE");
      assert.ok(guestAttributes.asked.some((a) => a.name === mockInstanceName(vm.name) && a.zone === vm.inputs.zone && a.variableKey === "hostkeys/ssh-ed25519"));
      // no new project-wide rights: the Ops Agent is not installed, the account keeps what it had
      assert.deepEqual(ofType(ctx.registered, T.iam).map((m) => m.inputs.role).sort(), ["roles/logging.logWriter", "roles/monitoring.metricWriter"]);
    });

    it("its plan steps run on it (common, exporters, firewall, monitoring), through the bastion, pinning its key; one Command per step of the whole plan", () => {
      const vm = monVm();
      const bastion = ofType(ctx.registered, T.instance).find((v) => v.name.endsWith("-bastion"))!;
      const cmds = ofType(ctx.registered, T.command);
      const stepName = (id: string) => `${ctx.spec.clusterName}-${hostLabel(ctx.spec, id.split("/")[0])}-${id.split("/")[1]}`;
      assert.deepEqual(cmds.map((c) => c.name).sort(), planGraph(ctx.spec).map((s) => stepName(s.id)).sort());
      const mine = cmds.filter((c) => c.name.startsWith("pgprod-mon-1-"));
      assert.deepEqual(mine.map((c) => c.name).sort(), ["pgprod-mon-1-common", "pgprod-mon-1-exporters", "pgprod-mon-1-firewall", "pgprod-mon-1-monitoring"]);
      for (const c of mine) {
        const conn = reveal(c.inputs.connection);
        assert.equal(conn.host, vm.state.networkInterfaces[0].networkIp, c.name);
        assert.equal(conn.hostKey, fakeHostKey(`guest ${mockInstanceName(vm.name)}`), c.name);
        assert.equal(conn.proxy.hostKey, fakeHostKey(`guest ${mockInstanceName(bastion.name)}`), c.name);
      }
      // every node runs its exporters
      for (const h of ctx.spec.hosts) assert.ok(cmds.some((c) => c.name === `${ctx.spec.clusterName}-${hostLabel(ctx.spec, h.name)}-exporters`), h.name);
    });

    it("VPC rules: the monitoring instance to exactly what Prometheus scrapes, operators to Prometheus; nothing wider", () => {
      const network = ofType(ctx.registered, T.network)[0];
      const expected: Record<string, ReturnType<typeof shape>> = {
        "mon-to-nodes": { direction: "INGRESS", allows: tcp(9100), sourceTags: [TAG.mon], sourceRanges: undefined, targetTags: [TAG.db, TAG.witness, TAG.balancer] },
        "mon-to-db": { direction: "INGRESS", allows: tcp(9187, 8008), sourceTags: [TAG.mon], sourceRanges: undefined, targetTags: [TAG.db] },
        "mon-to-etcd": { direction: "INGRESS", allows: tcp(2379), sourceTags: [TAG.mon], sourceRanges: undefined, targetTags: [TAG.db, TAG.witness] },
        "mon-to-lb": { direction: "INGRESS", allows: tcp(8406), sourceTags: [TAG.mon], sourceRanges: undefined, targetTags: [TAG.balancer] },
        "admin-to-prom": { direction: "INGRESS", allows: tcp(9090), sourceTags: undefined, sourceRanges: ["10.30.0.0/16"], targetTags: [TAG.mon] },
      };
      const cluster = ofType(ctx.registered, T.cluster)[0];
      for (const [suffix, want] of Object.entries(expected)) {
        const r = rule(ctx, suffix);
        assert.ok(r, `${suffix}: missing`);
        assert.deepEqual(shape(r), want, suffix);
        assert.equal(r.inputs.network, `${network.name}-id`);
        // new: no alias to a stack-root name (nothing to adopt), a child of the PgCluster
        assert.deepEqual(r.aliases.filter((a) => a.urn || a.name), [], `${suffix}: new, so no alias`);
        assert.equal(byUrn(ctx.registered, r.parent), cluster, `${suffix}: parent`);
      }
      // The bastion reaches it over SSH, like every node.
      assert.deepEqual(shape(rule(ctx, "bastion-to-nodes")!), { direction: "INGRESS", allows: tcp(22), sourceTags: [TAG.bastion], sourceRanges: undefined, targetTags: [TAG.db, TAG.witness, TAG.balancer, TAG.mon] });
      // Nothing else admits the monitoring instance, nor admits anything from it.
      const rules = ofType(ctx.registered, T.firewall);
      assert.deepEqual(rules.filter((r) => r.inputs.targetTags.includes(TAG.mon)).map((r) => r.name).sort(), ["pgprod-admin-to-prom", "pgprod-bastion-to-nodes"]);
      assert.deepEqual(rules.filter((r) => (r.inputs.sourceTags ?? []).includes(TAG.mon)).map((r) => r.name).sort(), ["pgprod-mon-to-db", "pgprod-mon-to-etcd", "pgprod-mon-to-lb", "pgprod-mon-to-nodes"]);
    });

    it("the VPC admits the monitoring instance to each node's ports exactly as that node's host firewall does", () => {
      const hosts = hostsOf(ctx.spec);
      const roleCtx = { spec: ctx.spec, hosts, pki: { ca: "CA", caBundle: "CA", nodes: {}, replication: { cert: "", key: "" }, pooler: { cert: "", key: "" } }, secrets: TEST_SECRETS };
      const mon = hosts.find((h) => h.kind === "monitoring")!;
      const vms = ofType(ctx.registered, T.instance);
      const fromMon = ofType(ctx.registered, T.firewall).filter((r) => (r.inputs.sourceTags ?? []).includes(TAG.mon));
      for (const h of hosts.filter((x) => x !== mon)) {
        const tags: string[] = vms.find((v) => v.name === `${ctx.spec.clusterName}-${hostLabel(ctx.spec, h.name)}`)!.inputs.tags;
        const vpc = [...new Set(fromMon.filter((r) => r.inputs.targetTags.some((t: string) => tags.includes(t))).flatMap((r) => r.inputs.allows.flatMap((a: { ports: string[] }) => a.ports.map(Number))))].sort((a, b) => a - b);
        const nft = [...new Set(hostFirewall(roleCtx, h).admissions.filter((a) => a.source === `${mon.address}/32`).map((a) => a.port))].sort((a, b) => a - b);
        assert.deepEqual(vpc, nft, `${h.name}: VPC vs nftables from the monitoring instance`);
        assert.ok(vpc.includes(9100), h.name);
      }
    });

    it("every GCE name Pulumi picks is one gceNameSuffixes knows (PgCluster's name-length check sees the new ones)", () => {
      const suffixes = gceNameSuffixes(ctx.spec);
      for (const s of [...MON_RULES, "mon-1"]) assert.ok(suffixes.includes(s), s);
      const auto = ofType(ctx.registered, T.instance).concat(ofType(ctx.registered, T.firewall), ofType(ctx.registered, T.disk));
      // a database node's instance name is its data disk's without "-data": the longer one is listed
      const known = (name: string) => suffixes.some((s) => [name, `${name}-data`].includes(`${ctx.spec.clusterName}-${s}`));
      for (const r of auto) assert.ok(known(r.name), `${r.type} ${r.name}`);
    });
  });

  describe("stack dev with monitoring.enabled, no adminCidrs", () => {
    let ctx: Ctx;
    before(async () => { ctx = await deploy("dev", { monitoring: { enabled: true } }); });

    it("the instance with the defaults (e2-medium, 30 GB); the scrape rules, and no rule to Prometheus (adminCidrs is empty)", () => {
      const vms = ofType(ctx.registered, T.instance).filter((v) => v.inputs.tags.includes(TAG.mon));
      assert.deepEqual(vms.map((v) => [v.name, v.inputs.machineType, v.inputs.bootDisk.initializeParams.size, v.inputs.zone]), [["pgdev-mon-1", "e2-medium", 30, "europe-west1-d"]]);
      for (const s of ["mon-to-nodes", "mon-to-db", "mon-to-etcd", "mon-to-lb"]) assert.ok(rule(ctx, s), s);
      assert.equal(rule(ctx, "admin-to-prom"), undefined);
      assert.ok(!ofType(ctx.registered, T.firewall).some((r) => (r.inputs.sourceRanges ?? []).length && r.inputs.targetTags.includes(TAG.mon)), "no range reaches the monitoring instance");
    });
  });

  describe("stack prod with monitoring off (its default)", () => {
    let ctx: Ctx;
    before(async () => { ctx = await deploy("prod"); });

    it("no monitoring instance, none of its rules, and bastion-to-nodes targets the nodes as before", () => {
      assert.ok(!ctx.spec.monitoring.enabled);
      assert.ok(!ctx.spec.hosts.some((h) => h.kind === "monitoring"));
      assert.deepEqual(ofType(ctx.registered, T.instance).filter((v) => v.inputs.tags.includes(TAG.mon) || v.name.includes("-mon-")), []);
      for (const s of MON_RULES) assert.equal(rule(ctx, s), undefined, s);
      assert.ok(!ofType(ctx.registered, T.firewall).some((r) => [...(r.inputs.sourceTags ?? []), ...r.inputs.targetTags].includes(TAG.mon)));
      assert.deepEqual(rule(ctx, "bastion-to-nodes")!.inputs.targetTags, [TAG.db, TAG.witness, TAG.balancer]);
      assert.ok(!ofType(ctx.registered, T.command).some((c) => c.name.endsWith("-monitoring") || c.name.endsWith("-exporters")));
    });
  });
});
