// GCP's internal passthrough load balancer in front of the balancers, as the stack program
// registers it under mocks: the resource graph (address, instance groups per zone, backend
// service, health check, forwarding rule, health-check firewall rule), the balancers' zones, the
// URL outputs on its address, the node certificates' SANs, and HAProxy's side of the health check.
import { strict as assert } from "assert";
import { readStackFile } from "../../model/stackFile";
import * as pulumi from "@pulumi/pulumi";
import { withMocks, stackConfig, settle, reveal, runProgram, STACK_PROGRAM, byUrn, mockInstanceName, mockSelfLink, MOCK_INTERNAL_ADDRESS, type Registered, RESOURCE_TYPES } from "../support/pulumiMocks";
import { loadSpec } from "../../infra/pulumiConfig";
import { hostLabel } from "../../infra/children";

const KEY = { "pgcluster:sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\ntest\n-----END OPENSSH PRIVATE KEY-----\n" };
const T = RESOURCE_TYPES;
const LB_TYPES = [T.address, T.group, T.backend, T.health, T.rule];

async function deploy(stack: string, extra: Record<string, string> = {}) {
  const registered = await withMocks(stack, stackConfig(stack, { ...KEY, ...extra }), ["pgcluster:sshPrivateKey"]);
  const out = runProgram(STACK_PROGRAM) as typeof import("../../infra/index");
  const spec = loadSpec();
  await settle(pulumi.all([out.DATABASE_URL_PRIMARY, out.nodes, out.caCert, out.steps]));
  await new Promise((r) => setTimeout(r, 300)); // last registrations' callbacks
  return { registered, out, spec };
}

const ofType = (rs: Registered[], t: string) => rs.filter((r) => r.type === t);
const one = (rs: Registered[], t: string) => {
  const found = ofType(rs, t);
  assert.equal(found.length, 1, `${t}: ${found.map((r) => r.name).join(", ")}`);
  return found[0];
};

for (const stack of ["prod", "dev"]) {
  describe(`GCP internal load balancer, stack ${stack} (mocks)`, function () {
    this.timeout(60000);
    let ctx: Awaited<ReturnType<typeof deploy>>;
    before(async () => { ctx = await deploy(stack); });
    const balancerVms = () => {
      const names = ctx.spec.hosts.filter((h) => h.kind === "balancer").map((h) => `${ctx.spec.clusterName}-${hostLabel(ctx.spec, h.name)}`);
      const vms = ofType(ctx.registered, T.instance).filter((v) => names.includes(v.name));
      assert.equal(vms.length, ctx.spec.gcp!.balancerNodes);
      return vms;
    };

    it("reserves an INTERNAL address in the nodes' subnet of the region", () => {
      const a = one(ctx.registered, T.address);
      const nodes = ofType(ctx.registered, T.subnet).find((s) => s.name === `${ctx.spec.clusterName}-nodes`)!;
      assert.equal(a.inputs.addressType, "INTERNAL");
      assert.equal(a.inputs.purpose, "GCE_ENDPOINT");
      assert.equal(a.inputs.subnetwork, `${nodes.name}-id`);
      assert.equal(a.inputs.region, ctx.spec.gcp!.region);
      assert.equal(a.inputs.address, undefined, "no gcp.loadBalancerAddress: GCP picks one");
    });

    it("puts the balancers in one unmanaged instance group per zone, each holding exactly that zone's balancers", () => {
      const vms = balancerVms();
      const groups = ofType(ctx.registered, T.group);
      const zones = [...new Set(vms.map((v) => v.inputs.zone))].sort();
      assert.deepEqual(groups.map((g) => g.inputs.zone).sort(), zones, "one group per zone that has balancers");
      if (ctx.spec.gcp!.balancerNodes >= 2) assert.ok(zones.length >= 2, `balancers in ${zones.join(", ")}: one zone`);
      const network = one(ctx.registered, T.network);
      for (const g of groups) {
        const expected = vms.filter((v) => v.inputs.zone === g.inputs.zone).map((v) => mockSelfLink("instances", `zones/${v.inputs.zone}`, mockInstanceName(v.name)));
        assert.deepEqual([...g.inputs.instances].sort(), expected.sort(), `${g.name}: its instances`);
        assert.equal(g.inputs.network, `${network.name}-id`);
        assert.equal(g.name, `${ctx.spec.clusterName}-ilb-balancers-${g.inputs.zone.split("-").pop()}`);
      }
      // every balancer is in exactly one group; no other instance is
      const members = groups.flatMap((g) => g.inputs.instances as string[]);
      assert.equal(new Set(members).size, members.length);
      assert.equal(members.length, vms.length);
    });

    it("a regional INTERNAL TCP backend service over exactly those groups, checked by the health check", () => {
      const b = one(ctx.registered, T.backend);
      const hc = one(ctx.registered, T.health);
      assert.equal(b.inputs.loadBalancingScheme, "INTERNAL");
      assert.equal(b.inputs.protocol, "TCP");
      assert.equal(b.inputs.region, ctx.spec.gcp!.region);
      assert.equal(b.inputs.healthChecks, `${hc.name}-id`);
      const groups = ofType(ctx.registered, T.group).map((g) => g.state.selfLink).sort();
      assert.deepEqual(b.inputs.backends.map((x: { group: string }) => x.group).sort(), groups);
      for (const x of b.inputs.backends) assert.equal(x.balancingMode, "CONNECTION");
    });

    it("the health check asks HAProxy itself: HTTP GET /health on 8405, which every balancer's haproxy.cfg answers (monitor-uri) on the load balancer's address too", () => {
      const hc = one(ctx.registered, T.health);
      assert.equal(hc.inputs.region, ctx.spec.gcp!.region);
      assert.deepEqual({ port: hc.inputs.httpHealthCheck.port, requestPath: hc.inputs.httpHealthCheck.requestPath }, { port: 8405, requestPath: "/health" });
      assert.equal(hc.inputs.tcpHealthCheck, undefined);
      assert.ok(hc.inputs.checkIntervalSec <= 5 && hc.inputs.timeoutSec <= hc.inputs.checkIntervalSec && hc.inputs.unhealthyThreshold <= 3, JSON.stringify(hc.inputs));
      const haproxy = ofType(ctx.registered, T.command).filter((c) => c.name.endsWith("-haproxy"));
      assert.equal(haproxy.length, ctx.spec.gcp!.balancerNodes);
      for (const c of haproxy) {
        const script: string = reveal(c.inputs.stdin);
        assert.match(script, /^frontend balancer_health\n    mode http\n(.*\n)*?    monitor-uri \/health\n/m, c.name);
        for (const p of [8405, 5000, 5001, 5002, 5003, 8404]) assert.ok(script.includes(`    bind ${MOCK_INTERNAL_ADDRESS}:${p} transparent\n`), `${c.name}: binds ${MOCK_INTERNAL_ADDRESS}:${p}`);
        const own = reveal(c.inputs.connection).host;
        assert.ok(script.includes(`    bind ${own}:8405\n`), `${c.name}: /health on its own address too`);
      }
    });

    it("one forwarding rule: TCP 5000-5003 and the stats page 8404 on the reserved address, to the backend service, in the nodes' subnet", () => {
      const f = one(ctx.registered, T.rule);
      const b = one(ctx.registered, T.backend);
      assert.equal(f.inputs.loadBalancingScheme, "INTERNAL");
      assert.equal(f.inputs.ipProtocol, "TCP");
      // Five ports: the most an internal forwarding rule takes.
      assert.deepEqual(f.inputs.ports, ["5000", "5001", "5002", "5003", "8404"]);
      assert.equal(f.inputs.allPorts, undefined);
      assert.equal(f.inputs.ipAddress, MOCK_INTERNAL_ADDRESS, "the reserved address (as the mock allocated it)");
      assert.equal(f.inputs.backendService, `${b.name}-id`);
      assert.equal(f.inputs.subnetwork, `${ctx.spec.clusterName}-nodes-id`);
      assert.equal(f.inputs.region, ctx.spec.gcp!.region);
    });

    it("a firewall rule admits Google's health-check ranges to 8405 on the balancer tag only; clients still need clientCidrs", () => {
      const rules = ofType(ctx.registered, T.firewall);
      const hc = rules.filter((r) => (r.inputs.sourceRanges ?? []).some((s: string) => s === "35.191.0.0/16" || s === "130.211.0.0/22"));
      assert.equal(hc.length, 1, hc.map((r) => r.name).join(", "));
      assert.equal(hc[0].name, `${ctx.spec.clusterName}-lb-health-checks`);
      assert.deepEqual([...hc[0].inputs.sourceRanges].sort(), ["130.211.0.0/22", "35.191.0.0/16"]);
      assert.deepEqual(hc[0].inputs.targetTags, ["pgcluster-lb"]);
      assert.deepEqual(hc[0].inputs.allows, [{ protocol: "tcp", ports: ["8405"] }]);
      assert.equal(hc[0].inputs.direction, "INGRESS");
      // Passthrough keeps client addresses: clients reach 5000-5003 from clientCidrs, the stats page
      // only operators (adminCidrs), as without the load balancer.
      const clients = rules.find((r) => r.name === `${ctx.spec.clusterName}-clients-to-lb`)!;
      assert.deepEqual(clients.inputs.sourceRanges, ctx.spec.network.clientCidrs);
      assert.deepEqual(clients.inputs.allows, [{ protocol: "tcp", ports: ["5000", "5001", "5002", "5003"] }]);
      const stats = rules.filter((r) => r.inputs.allows.some((a: { ports: string[] }) => a.ports.includes("8404")));
      assert.deepEqual(stats.map((r) => [r.name, r.inputs.sourceRanges, r.inputs.targetTags]),
        ctx.spec.network.adminCidrs.length ? [[`${ctx.spec.clusterName}-admin-to-stats`, ctx.spec.network.adminCidrs, ["pgcluster-lb"]]] : []);
    });

    it("every load balancer resource is a child of the PgCluster, named after it, with no adoption alias (they never were at the stack root)", () => {
      const top = one(ctx.registered, "pgcluster:index:PgCluster");
      const fresh = [...LB_TYPES.flatMap((t) => ofType(ctx.registered, t)), ...ofType(ctx.registered, T.firewall).filter((r) => r.name.endsWith("-lb-health-checks"))];
      assert.equal(fresh.length, 4 + ofType(ctx.registered, T.group).length + 1);
      for (const r of fresh) {
        assert.equal(byUrn(ctx.registered, r.parent), top, `${r.name}: parent`);
        assert.ok(r.name.startsWith(`${top.name}-`), r.name);
        assert.deepEqual(r.aliases.filter((a) => a.urn || a.name), [], `${r.name}: aliases`);
      }
      // the stack program adopts: resources that existed before still carry their alias
      const vpc = one(ctx.registered, T.network);
      assert.equal(vpc.aliases.filter((a) => a.name).length, 1);
    });

    it("the URL outputs point at the load balancer's address (5000-5003), as secrets; stats: the load balancer's page, then every balancer's", async () => {
      const top = one(ctx.registered, "pgcluster:index:PgCluster");
      const urls = { primaryUrl: 5000, replicaUrl: 5001, primaryDirectUrl: 5002, replicaDirectUrl: 5003 } as const;
      for (const [k, port] of Object.entries(urls)) {
        const v = top.outputs![k];
        assert.equal(v?.["4dabf18193072939515e22adb298388d"] !== undefined, true, `${k}: not a secret`);
        assert.equal(new URL(reveal(v)).host, `${MOCK_INTERNAL_ADDRESS}:${port}`, k);
      }
      assert.equal(new URL(await settle(ctx.out.DATABASE_URL_PRIMARY)).host, `${MOCK_INTERNAL_ADDRESS}:5000`);
      assert.equal(new URL(await settle(ctx.out.DATABASE_URL_REPLICA)).host, `${MOCK_INTERNAL_ADDRESS}:5001`);
      assert.equal(new URL(await settle(ctx.out.DATABASE_URL_PRIMARY_DIRECT)).host, `${MOCK_INTERNAL_ADDRESS}:5002`);
      assert.equal(new URL(await settle(ctx.out.DATABASE_URL_REPLICA_DIRECT)).host, `${MOCK_INTERNAL_ADDRESS}:5003`);
      const lbs = balancerVms().map((vm) => vm.state.networkInterfaces[0].networkIp);
      assert.equal(lbs.length, ctx.spec.gcp!.balancerNodes);
      assert.deepEqual(top.outputs!.haproxyStats, [MOCK_INTERNAL_ADDRESS, ...lbs].map((a) => `http://${a}:8404/`));
    });

    it("every node certificate lists the load balancer's address among its IP SANs (clients verify-full against it)", () => {
      const dbs = ctx.spec.hosts.filter((h) => h.roles.includes("postgres") || h.roles.includes("etcd"));
      const csrs = ofType(ctx.registered, T.csr).filter((r) => dbs.some((h) => r.name === `${ctx.spec.clusterName}-${hostLabel(ctx.spec, h.name)}-csr`));
      assert.equal(csrs.length, dbs.length);
      for (const r of csrs) assert.ok(r.inputs.ipAddresses.includes(MOCK_INTERNAL_ADDRESS), `${r.name}: ${r.inputs.ipAddresses}`);
      // client certificates name no address
      for (const r of ofType(ctx.registered, T.csr).filter((x) => !csrs.includes(x))) assert.deepEqual(r.inputs.ipAddresses ?? [], [], r.name);
    });
  });
}

describe("GCP internal load balancer: a chosen address, and none for a static inventory (mocks)", function () {
  this.timeout(60000);

  it("gcp.loadBalancerAddress is reserved as asked, and URLs, forwarding rule, certificates and HAProxy use it", async () => {
    const gcp = JSON.parse(stackConfig("prod")["pgcluster:gcp"]);
    const { registered, out } = await deploy("prod", { "pgcluster:gcp": JSON.stringify({ ...gcp, loadBalancerAddress: "10.30.0.100" }) });
    assert.equal(one(registered, T.address).inputs.address, "10.30.0.100");
    assert.equal(one(registered, T.rule).inputs.ipAddress, "10.30.0.100");
    assert.equal(new URL(await settle(out.DATABASE_URL_PRIMARY)).host, "10.30.0.100:5000");
    for (const r of ofType(registered, T.csr).filter((x) => /-db-\d-csr$/.test(x.name))) assert.ok(r.inputs.ipAddresses.includes("10.30.0.100"), r.name);
    for (const c of ofType(registered, T.command).filter((x) => x.name.endsWith("-haproxy")))
      assert.ok(reveal(c.inputs.stdin).includes("    bind 10.30.0.100:5000 transparent\n"), c.name);
  });

  it("static inventory: no load balancer resources; URLs on the balancers' floating address, which HAProxy binds and the certificates carry", async () => {
    const { registered, out } = await deploy("local");
    for (const t of LB_TYPES) assert.equal(ofType(registered, t).length, 0, t);
    assert.equal(new URL(await settle(out.DATABASE_URL_PRIMARY)).host, "10.213.0.5:5000");
    for (const lb of ["lb1", "lb2"]) {
      const haproxy = ofType(registered, T.command).find((c) => c.name.endsWith(`-${lb}-haproxy`))!;
      // (a bare boolean: a step script is never printed in an assertion's diff)
      assert.ok(reveal(haproxy.inputs.stdin).includes("    bind 10.213.0.5:5000 transparent\n"), `${haproxy.name}: binds the floating address`);
      assert.ok(ofType(registered, T.command).some((c) => c.name.endsWith(`-${lb}-keepalived`)), `${lb}: keepalived step`);
    }
    // node certificates: their own address, loopback, the balancers and the floating address
    const pg1 = ofType(registered, T.csr).find((r) => r.name === "pglocal-pg1-csr")!;
    assert.deepEqual(pg1.inputs.ipAddresses, ["10.213.0.11", "127.0.0.1", "10.213.0.10", "10.213.0.9", "10.213.0.5"]);
  });

  it("static inventory without a floating address (one balancer): URLs on that balancer, HAProxy binds only its own address", async () => {
    const file = readStackFile("local").values;
    const hosts = file.hosts as { name: string }[];
    const net = { ...(file.network as object), floatingAddress: undefined };
    const { registered, out } = await deploy("local", { "pgcluster:hosts": JSON.stringify(hosts.filter((h) => h.name !== "lb2")), "pgcluster:network": JSON.stringify(net) });
    assert.equal(new URL(await settle(out.DATABASE_URL_PRIMARY)).host, "10.213.0.10:5000");
    const haproxy = ofType(registered, T.command).find((c) => c.name.endsWith("-lb1-haproxy"))!;
    assert.ok(!/transparent|monitor-uri|:8405/.test(reveal(haproxy.inputs.stdin)), `${haproxy.name}: binds something besides its own address`);
    const pg1 = ofType(registered, T.csr).find((r) => r.name === "pglocal-pg1-csr")!;
    assert.deepEqual(pg1.inputs.ipAddresses, ["10.213.0.11", "127.0.0.1", "10.213.0.10"]);
  });
});
