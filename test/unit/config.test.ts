import { strict as assert } from "assert";
import {
  parseClusterSpec, ConfigError, decodeConfigValue, PATRONI_OWNED_PARAMETERS, REFUSED_PARAMETERS,
  SECRET_KEYS, GCP_MAX_CLUSTER_NAME, sshPublicKeyProblem,
} from "../../model/config";
import { cidrsCoverEverything, isPrivateCidr, reservedAddresses } from "../../model/cidr";
import { GCP_REGIONS, GCP_ZONES } from "../../model/gcpZones";
import { CLIENT_CERTS } from "../../model/identities";
import { readStackFile, specFromStackFile, listStacks } from "../../model/stackFile";

const ctx = { stack: "dev", secretKeys: new Set(["sshPrivateKey"]), source: "test" };
/** Every secret held encrypted: tests of secret values see no "plain text" problem. */
const allSecret = { ...ctx, secretKeys: new Set<string>([...SECRET_KEYS, "sshPrivateKey"]) };

const PEM = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU=\n-----END OPENSSH PRIVATE KEY-----\n";

/** A structurally valid OpenSSH public key line of `type` (the blob encodes the type). */
function keyLine(type = "ssh-ed25519", fill = 7): string {
  const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; };
  const t = Buffer.from(type);
  const body = Buffer.alloc(32, fill);
  return `${type} ${Buffer.concat([u32(t.length), t, u32(body.length), body]).toString("base64")}`;
}

function staticConfig(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    clusterName: "pgtest",
    provider: "static",
    hosts: [
      { name: "lb1", address: "10.1.0.10", roles: ["balancer"], hostKey: keyLine("ssh-ed25519", 1) },
      { name: "pg1", address: "10.1.0.11", roles: ["etcd", "postgres"], hostKey: keyLine("ssh-ed25519", 2) },
      { name: "pg2", address: "10.1.0.12", roles: ["etcd", "postgres"], hostKey: keyLine("ssh-ed25519", 3) },
      { name: "pg3", address: "10.1.0.13", roles: ["etcd", "postgres"], hostKey: keyLine("ssh-ed25519", 4) },
    ],
    network: { cidr: "10.1.0.0/24", clientCidrs: ["10.0.0.0/8"], adminCidrs: ["10.1.0.5/32"] },
    sshPrivateKey: PEM,
    ...over,
  };
}

function gcpConfig(gcp: Record<string, unknown> = {}, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    clusterName: "pgtest",
    provider: "gcp",
    gcp: { project: "pgcluster-test", region: "europe-west1", zones: ["europe-west1-b", "europe-west1-c", "europe-west1-d"], sshSourceRanges: ["203.0.113.0/28"], ...gcp },
    network: { cidr: "10.1.0.0/24", clientCidrs: ["10.0.0.0/8"] },
    ssh: { user: "ops", publicKey: `${keyLine()} ops@example` },
    sshPrivateKey: PEM,
    ...over,
  };
}

const hostsWith = (i: number, over: Record<string, unknown>) =>
  (staticConfig().hosts as Record<string, unknown>[]).map((h, j) => (j === i ? { ...h, ...over } : h));

function problemsOf(raw: Record<string, unknown>, c = ctx): string[] {
  try {
    parseClusterSpec(raw, c);
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${e}`);
    return e.problems;
  }
  return [];
}

/** Asserts the config is rejected with a problem naming `key` (exactly, or a key under it) and matching `pattern`. */
function rejects(raw: Record<string, unknown>, key: string, pattern: RegExp, c = ctx): string {
  const problems = problemsOf(raw, c);
  assert.ok(problems.length, `config was accepted; expected a problem with ${key}`);
  const named = problems.filter((p) => p.startsWith(key + ":") || p.startsWith(key + ".") || p.startsWith(key + "["));
  assert.ok(named.length, `no problem names ${key}; got:\n${problems.join("\n")}`);
  const hit = named.find((p) => pattern.test(p));
  assert.ok(hit, `no problem with ${key} matches ${pattern}; got:\n${named.join("\n")}`);
  return hit!;
}

describe("stack config validation", () => {
  it("accepts a minimal static inventory and applies defaults", () => {
    const s = parseClusterSpec(staticConfig(), ctx);
    assert.equal(s.patroni.ttl, 10);
    assert.equal(s.patroni.loopWait, 2);
    assert.equal(s.patroni.retryTimeout, 3);
    assert.equal(s.pgbouncer.poolMode, "transaction");
    assert.deepEqual(s.hosts.map((h) => h.name), ["lb1", "pg1", "pg2", "pg3"]);
    assert.equal(s.hosts[1].sshUser, "root");
    assert.equal(s.hosts[2].hostKey, keyLine("ssh-ed25519", 3));
  });

  it("accepts the test fixtures' gcp config", () => {
    assert.deepEqual(parseClusterSpec(gcpConfig(), ctx).hosts.map((h) => h.name), ["pgtest-db-1", "pgtest-db-2", "pgtest-db-3", "pgtest-lb-1"]);
  });

  it("accepts every stack file in the repository (with its required secret supplied)", () => {
    for (const stack of listStacks()) {
      const sf = readStackFile(stack);
      const values = { ...sf.values, ...(stack === "local" ? {} : { sshPrivateKey: PEM }) };
      const spec = parseClusterSpec(values, { stack, secretKeys: new Set(["sshPrivateKey"]), source: sf.file });
      assert.ok(spec.hosts.length >= 3, stack);
    }
    assert.deepEqual(listStacks(), ["dev", "local", "local-standby", "prod"]);
  });

  it("reads the local stack file without the Pulumi CLI", () => {
    const spec = specFromStackFile(readStackFile("local"));
    assert.deepEqual(spec.hosts.map((h) => h.address), ["10.213.0.10", "10.213.0.11", "10.213.0.12", "10.213.0.13", "10.213.0.9", "10.213.0.30", "10.213.0.40"]);
    assert.equal(spec.network.floatingAddress, "10.213.0.5", "DESIGN.md §5: the balancer pair's floating address");
    assert.equal(spec.apt.proxy, "http://10.213.0.1:3142");
  });

  it("rejects an even number of etcd members", () => {
    const hosts = [...(staticConfig().hosts as object[]), { name: "pg4", address: "10.1.0.14", roles: ["etcd", "postgres"], hostKey: keyLine() }];
    rejects(staticConfig({ hosts }), "pgcluster:hosts", /4 etcd member.*odd number, at least 3/);
  });

  it("rejects fewer than 3 etcd members (gcp: dbNodes + witnessNodes)", () => {
    rejects(gcpConfig({ dbNodes: 1 }), "pgcluster:gcp.witnessNodes", /1 etcd member/);
    // 2 database nodes + 1 witness is a valid, cheaper layout
    assert.equal(parseClusterSpec(gcpConfig({ dbNodes: 2, witnessNodes: 1 }), ctx).hosts.filter((h) => h.roles.includes("etcd")).length, 3);
  });

  it("rejects fewer than 2 database nodes in prod", () => {
    rejects(gcpConfig({ dbNodes: 1, witnessNodes: 2 }, { environment: "prod" }), "pgcluster:gcp.dbNodes", /prod needs at least 2/);
    // the same layout is allowed in dev
    parseClusterSpec(gcpConfig({ dbNodes: 1, witnessNodes: 2 }), ctx);
  });

  it("rejects a zone outside the region, and one that does not exist, naming the region's zones", () => {
    rejects(gcpConfig({ zones: ["europe-west1-b", "us-east1-c"] }), "pgcluster:gcp.zones[1]", /"us-east1-c" is not a zone of region europe-west1; its zones are europe-west1-b, europe-west1-c, europe-west1-d/);
    rejects(gcpConfig({ zones: ["europe-west1-a"] }), "pgcluster:gcp.zones[0]", /"europe-west1-a" is not a zone of region europe-west1; its zones are europe-west1-b, europe-west1-c, europe-west1-d/);
    rejects(gcpConfig({ region: "us-central1", zones: ["us-central1-d"] }), "pgcluster:gcp.zones[0]", /us-central1-a, us-central1-b, us-central1-c, us-central1-f/);
    assert.equal(parseClusterSpec(gcpConfig({ region: "us-central1", zones: ["us-central1-f"] }), ctx).hosts[0].zone, "us-central1-f");
  });

  it("rejects a region that does not exist, with a guess", () => {
    rejects(gcpConfig({ region: "europe-west7", zones: ["europe-west7-b"] }), "pgcluster:gcp.region", /"europe-west7" is not a Compute Engine region .*did you mean "europe-west\d+"\?.*Known regions: .*europe-west1,/);
    rejects(gcpConfig({ region: "eu-west-1", zones: ["eu-west-1a"] }), "pgcluster:gcp.region", /not a Compute Engine region/);
    rejects(gcpConfig({ region: "constructor", zones: ["constructor-a"] }), "pgcluster:gcp.region", /not a Compute Engine region/);
  });

  it("embeds a coherent zone list: every zone in its region, the stack files' regions known", () => {
    assert.ok(GCP_REGIONS.length >= 40);
    for (const [region, zones] of Object.entries(GCP_ZONES)) {
      assert.match(region, /^[a-z]+-[a-z]+\d+$/);
      assert.ok(zones.length >= 3, region);
      for (const z of zones) assert.match(z, new RegExp(`^${region}-[a-z]$`));
    }
    for (const stack of ["dev", "prod"]) {
      const g = readStackFile(stack).values.gcp as { region: string; zones: string[] };
      for (const z of g.zones) assert.ok(GCP_ZONES[g.region].includes(z), `${stack}: ${z}`);
    }
  });

  it("rejects a CIDR that does not parse, has host bits set, or overlaps", () => {
    rejects(staticConfig({ network: { cidr: "10.1.0.0/33", clientCidrs: ["10.0.0.0/8"] } }), "pgcluster:network.cidr", /not an IPv4 CIDR/);
    rejects(staticConfig({ network: { cidr: "10.1.0.5/24", clientCidrs: ["10.0.0.0/8"] } }), "pgcluster:network.cidr", /not an IPv4 CIDR/);
    rejects(gcpConfig({ bastionCidr: "10.1.0.128/28" }), "pgcluster:gcp.bastionCidr", /overlaps network.cidr/);
  });

  it("refuses 0.0.0.0/0 as a client, admin or SSH source", () => {
    rejects(staticConfig({ network: { cidr: "10.1.0.0/24", clientCidrs: ["0.0.0.0/0"] } }), "pgcluster:network.clientCidrs[0]", /whole internet/);
    rejects(staticConfig({ network: { cidr: "10.1.0.0/24", clientCidrs: ["10.0.0.0/8"], adminCidrs: ["0.0.0.0/0"] } }), "pgcluster:network.adminCidrs[0]", /whole internet/);
    rejects(gcpConfig({ sshSourceRanges: ["0.0.0.0/0"] }), "pgcluster:gcp.sshSourceRanges[0]", /whole internet/);
  });

  it("refuses source ranges that together cover the internet (0.0.0.0/1 + 128.0.0.0/1), each list on its own", () => {
    const halves = ["0.0.0.0/1", "128.0.0.0/1"];
    rejects(staticConfig({ network: { cidr: "10.1.0.0/24", clientCidrs: halves } }), "pgcluster:network.clientCidrs", /together \(0\.0\.0\.0\/1, 128\.0\.0\.0\/1\) cover the whole IPv4 internet/);
    rejects(staticConfig({ network: { cidr: "10.1.0.0/24", clientCidrs: ["10.0.0.0/8"], adminCidrs: halves } }), "pgcluster:network.adminCidrs", /cover the whole IPv4 internet/);
    rejects(gcpConfig({ sshSourceRanges: halves }), "pgcluster:gcp.sshSourceRanges", /cover the whole IPv4 internet/);
    // 256 /8s: no single range is too wide, together they are everything
    const slash8s = Array.from({ length: 256 }, (_, i) => `${i}.0.0.0/8`);
    rejects(staticConfig({ network: { cidr: "10.1.0.0/24", clientCidrs: slash8s } }), "pgcluster:network.clientCidrs", /cover the whole IPv4 internet/);
  });

  it("refuses a public range wider than /8, accepts private ones and /8s", () => {
    rejects(staticConfig({ network: { cidr: "10.1.0.0/24", clientCidrs: ["64.0.0.0/7"] } }), "pgcluster:network.clientCidrs[0]", /64\.0\.0\.0\/7, public addresses wider than a \/8/);
    rejects(gcpConfig({ sshSourceRanges: ["203.0.113.0/28", "128.0.0.0/2"] }), "pgcluster:gcp.sshSourceRanges[1]", /wider than a \/8/);
    parseClusterSpec(staticConfig({ network: { cidr: "10.1.0.0/24", clientCidrs: ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "44.0.0.0/8"], adminCidrs: ["10.1.0.5/32"] } }), ctx);
  });

  it("cidr helpers: union coverage, private ranges, network/broadcast addresses", () => {
    assert.equal(cidrsCoverEverything(["0.0.0.0/1", "128.0.0.0/1"]), true);
    assert.equal(cidrsCoverEverything(["0.0.0.0/1", "128.0.0.0/2", "192.0.0.0/2"]), true);
    assert.equal(cidrsCoverEverything(["0.0.0.0/1", "128.0.0.0/2", "224.0.0.0/3"]), false);
    assert.equal(cidrsCoverEverything(["0.0.0.0/1", "0.0.0.0/1"]), false);
    assert.equal(cidrsCoverEverything([]), false);
    assert.equal(isPrivateCidr("172.20.0.0/16"), true);
    assert.equal(isPrivateCidr("172.0.0.0/8"), false);
    assert.deepEqual(reservedAddresses("10.1.0.0/24"), ["10.1.0.0", "10.1.0.255"]);
    assert.deepEqual(reservedAddresses("10.1.0.0/31"), []);
  });

  it("refuses a static host on the network's network or broadcast address", () => {
    rejects(staticConfig({ hosts: hostsWith(3, { address: "10.1.0.0" }) }), "pgcluster:hosts[3].address", /10\.1\.0\.0 of "pg3" is the network or broadcast address of network.cidr 10\.1\.0\.0\/24/);
    rejects(staticConfig({ hosts: hostsWith(3, { address: "10.1.0.255" }) }), "pgcluster:hosts[3].address", /network or broadcast address/);
    parseClusterSpec(staticConfig({ hosts: hostsWith(3, { address: "10.1.0.254" }) }), ctx);
  });

  it("rejects unknown keys and suggests the intended one", () => {
    const e = rejects(staticConfig({ patroni: { tll: 10 } }), "pgcluster:patroni.tll", /unknown key — did you mean "ttl"\?/);
    assert.match(e, /Known keys here: ttl, loopWait/);
    rejects(staticConfig({ clustername: "x" }), "pgcluster:clustername", /did you mean "clusterName"/);
    // names of Object.prototype are unknown keys too, not inherited ones
    for (const k of ["toString", "constructor", "hasOwnProperty"]) rejects(staticConfig({ [k]: "x" }), `pgcluster:${k}`, /unknown key/);
  });

  it("patroni: keeps the 2 s margin loopWait + 2·retryTimeout ≤ ttl − 2, and ttl ≥ 10", () => {
    // 10/2/4: margin 0, README's former default. A cut-off primary could still be writable when
    // its key expires.
    rejects(staticConfig({ patroni: { ttl: 10, loopWait: 2, retryTimeout: 4 } }), "pgcluster:patroni", /2 \+ 2·4 = 10 exceeds ttl − 2 = 8: the 2 s margin is what lets a primary cut off from etcd demote itself before its leader key expires/);
    rejects(staticConfig({ patroni: { ttl: 10, loopWait: 4, retryTimeout: 4 } }), "pgcluster:patroni", /4 \+ 2·4 = 12 exceeds ttl − 2 = 8/);
    assert.equal(parseClusterSpec(staticConfig({ patroni: { ttl: 10, loopWait: 2, retryTimeout: 3 } }), ctx).patroni.retryTimeout, 3);
    parseClusterSpec(staticConfig({ patroni: { ttl: 30, loopWait: 10, retryTimeout: 9 } }), ctx);
    rejects(staticConfig({ patroni: { ttl: 8, loopWait: 1, retryTimeout: 2 } }), "pgcluster:patroni.ttl", /at least 10 \(seconds\): below 10 s the leader key expires/);
  });

  it("bounds every number", () => {
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ patroni: { ttl: 1e9 } }, "pgcluster:patroni.ttl", /at most 600/],
      [{ patroni: { loopWait: 0 } }, "pgcluster:patroni.loopWait", /greater than 0/],
      [{ patroni: { retryTimeout: 0 } }, "pgcluster:patroni.retryTimeout", /greater than 0/],
      [{ patroni: { retryTimeout: 2.5 } }, "pgcluster:patroni.retryTimeout", /whole number/],
      [{ patroni: { maximumLagOnFailover: -1 } }, "pgcluster:patroni.maximumLagOnFailover", /at least 0/],
      [{ patroni: { maximumLagOnFailover: 2 ** 50 } }, "pgcluster:patroni.maximumLagOnFailover", /at most/],
      [{ pgbouncer: { maxClientConn: 1e12 } }, "pgcluster:pgbouncer.maxClientConn", /at most 100000/],
      [{ pgbouncer: { defaultPoolSize: 1e7 } }, "pgcluster:pgbouncer.defaultPoolSize", /at most 10000/],
      [{ pgbouncer: { reservePoolSize: 0 } }, "pgcluster:pgbouncer.reservePoolSize", /greater than 0/],
      [{ haproxy: { checkIntervalMs: 0 } }, "pgcluster:haproxy.checkIntervalMs", /at least 100 \(ms\)/],
      [{ haproxy: { checkIntervalMs: 1e9 } }, "pgcluster:haproxy.checkIntervalMs", /at most 60000/],
      [{ haproxy: { fall: 0 } }, "pgcluster:haproxy.fall", /greater than 0/],
      [{ haproxy: { rise: 1000 } }, "pgcluster:haproxy.rise", /at most 100/],
      [{ haproxy: { maxConn: 1e12 } }, "pgcluster:haproxy.maxConn", /at most 100000/],
      [{ haproxy: { maxReplicaLagBytes: -5 } }, "pgcluster:haproxy.maxReplicaLagBytes", /at least 0/],
      [{ tls: { caValidityHours: 1e12 } }, "pgcluster:tls.caValidityHours", /at most 876000/],
      [{ tls: { certValidityHours: 1 } }, "pgcluster:tls.certValidityHours", /at least 24/],
      [{ tls: { caValidityHours: 8760, certValidityHours: 17520 } }, "pgcluster:tls.certValidityHours", /exceeds caValidityHours .*cannot outlive the CA/],
      [{ ssh: { port: 70000, hostKeys: "pinned" } }, "pgcluster:ssh.port", /65535/],
    ];
    for (const [over, key, pattern] of cases) rejects(staticConfig(over), key, pattern);
    const gcpCases: [Record<string, unknown>, string, RegExp][] = [
      [{ dbNodes: 10 }, "pgcluster:gcp.dbNodes", /at most 9/],
      [{ dbNodes: 0 }, "pgcluster:gcp.dbNodes", /greater than 0/],
      [{ witnessNodes: 100 }, "pgcluster:gcp.witnessNodes", /at most 8/],
      [{ balancerNodes: 0 }, "pgcluster:gcp.balancerNodes", /greater than 0/],
      [{ dataDiskGb: 1e9 }, "pgcluster:gcp.dataDiskGb", /at most 65536 \(GB\)/],
      [{ bootDiskGb: 1 }, "pgcluster:gcp.bootDiskGb", /at least 10 \(GB\)/],
    ];
    for (const [over, key, pattern] of gcpCases) rejects(gcpConfig(over), key, pattern);
  });

  it("environment: a lower-case name; prod look-alikes are refused with 'did you mean prod'", () => {
    for (const env of ["Prod", "PROD", "production", "Production", "prd", "live", "prod-eu", "prod2"])
      rejects(gcpConfig({}, { environment: env }), "pgcluster:environment", /looks like production but is not "prod", so the prod checks .* would be skipped silently — did you mean prod\?/);
    rejects(gcpConfig({}, { environment: "Dev_1" }), "pgcluster:environment", /must be a lower-case name/);
    // the stack name stands in for a missing environment, and is held to the same rule
    rejects(gcpConfig(), "pgcluster:environment", /stack name "production", which looks like production .*did you mean prod\?/, { ...ctx, stack: "production" });
    assert.equal(parseClusterSpec(gcpConfig({}, { environment: "prod" }), { ...ctx, stack: "production" }).environment, "prod");
    for (const env of ["staging", "preprod", "products", "dev"]) assert.equal(parseClusterSpec(gcpConfig({}, { environment: env }), ctx).environment, env);
  });

  it("gcp: two or more balancers need two zones, and land in two (the internal load balancer's backends)", () => {
    rejects(gcpConfig({ zones: ["europe-west1-b"], balancerNodes: 2 }), "pgcluster:gcp.zones", /lists one zone, so the 2 balancers .* would all be in it .*at least two zones .*or set gcp.balancerNodes: 1/);
    // one balancer in one zone is allowed, as before
    parseClusterSpec(gcpConfig({ zones: ["europe-west1-b"], balancerNodes: 1 }), ctx);
    const two = parseClusterSpec(gcpConfig({ zones: ["europe-west1-b", "europe-west1-c"], balancerNodes: 2 }), ctx);
    const zones = two.hosts.filter((h) => h.roles.includes("balancer")).map((h) => h.zone);
    assert.deepEqual(zones, ["europe-west1-b", "europe-west1-c"]);
    const three = parseClusterSpec(gcpConfig({ balancerNodes: 3 }), ctx);
    assert.equal(new Set(three.hosts.filter((h) => h.kind === "balancer").map((h) => h.zone)).size, 3);
  });

  it("gcp.loadBalancerAddress: an IPv4 address inside network.cidr that GCP does not reserve", () => {
    assert.equal(parseClusterSpec(gcpConfig({ loadBalancerAddress: "10.1.0.100" }), ctx).gcp!.loadBalancerAddress, "10.1.0.100");
    assert.equal(parseClusterSpec(gcpConfig(), ctx).gcp!.loadBalancerAddress, undefined, "absent: GCP picks one");
    rejects(gcpConfig({ loadBalancerAddress: "10.1.1.5" }), "pgcluster:gcp.loadBalancerAddress", /10\.1\.1\.5 is outside network.cidr 10\.1\.0\.0\/24/);
    // network 10.1.0.0/24: .0 network, .1 gateway, .254 second-to-last, .255 broadcast
    for (const a of ["10.1.0.0", "10.1.0.1", "10.1.0.254", "10.1.0.255"])
      rejects(gcpConfig({ loadBalancerAddress: a }), "pgcluster:gcp.loadBalancerAddress", /is one of the four addresses GCP reserves in network.cidr 10\.1\.0\.0\/24 \(10\.1\.0\.0, 10\.1\.0\.1, 10\.1\.0\.254, 10\.1\.0\.255/);
    parseClusterSpec(gcpConfig({ loadBalancerAddress: "10.1.0.2" }), ctx);
    parseClusterSpec(gcpConfig({ loadBalancerAddress: "10.1.0.253" }), ctx);
    for (const bad of ["10.1.0", "10.1.0.300", "10.1.0.5/32", " 10.1.0.5", "10.1.0.5; rm -rf /", 17])
      rejects(gcpConfig({ loadBalancerAddress: bad }), "pgcluster:gcp.loadBalancerAddress", /is not an IPv4 address|expected string/);
    // for provider gcp only: a static stack has no gcp object at all
    rejects(staticConfig({ gcp: { loadBalancerAddress: "10.1.0.100" } }), "pgcluster:gcp", /is only for provider gcp/);
  });

  it("gcp + monitoring.enabled: one monitoring instance of its own (<clusterName>-mon-1, role monitoring, kind monitoring) in the last zone; none while off", () => {
    const on = parseClusterSpec(gcpConfig({}, { monitoring: { enabled: true } }), ctx);
    assert.deepEqual(on.hosts.map((h) => h.name), ["pgtest-db-1", "pgtest-db-2", "pgtest-db-3", "pgtest-lb-1", "pgtest-mon-1"]);
    const mon = on.hosts.filter((h) => h.roles.includes("monitoring"));
    assert.equal(mon.length, 1, "exactly one monitoring host");
    assert.deepEqual(mon[0], { name: "pgtest-mon-1", roles: ["monitoring"], kind: "monitoring", zone: "europe-west1-d", sshUser: "ops", sshPort: 22 });
    assert.deepEqual(on.hosts.filter((h) => h.kind === "monitoring"), mon, "the kind and the role go together");
    // the zone: the last of gcp.zones (with one zone, that one)
    assert.equal(parseClusterSpec(gcpConfig({ zones: ["europe-west1-c", "europe-west1-b"] }, { monitoring: { enabled: true } }), ctx).hosts.find((h) => h.kind === "monitoring")!.zone, "europe-west1-b");
    assert.equal(parseClusterSpec(gcpConfig({ zones: ["europe-west1-c"] }, { monitoring: { enabled: true } }), ctx).hosts.find((h) => h.kind === "monitoring")!.zone, "europe-west1-c");
    // its machine and disk: defaults, and what the stack gives
    assert.deepEqual([on.gcp!.monitoringMachineType, on.gcp!.monitoringDiskGb], ["e2-medium", 30]);
    const given = parseClusterSpec(gcpConfig({ monitoringMachineType: "n2-standard-4", monitoringDiskGb: 200 }, { monitoring: { enabled: true } }), ctx);
    assert.deepEqual([given.gcp!.monitoringMachineType, given.gcp!.monitoringDiskGb], ["n2-standard-4", 200]);
    // the other hosts are those of the same stack without monitoring, unchanged
    const off = parseClusterSpec(gcpConfig(), ctx);
    assert.deepEqual(on.hosts.filter((h) => h.kind !== "monitoring"), off.hosts);
    for (const raw of [gcpConfig(), gcpConfig({}, { monitoring: { enabled: false } }), gcpConfig({ monitoringDiskGb: 50 })]) {
      const hosts = parseClusterSpec(raw, ctx).hosts;
      assert.ok(hosts.every((h) => h.kind !== "monitoring" && !h.roles.includes("monitoring") && !h.name.includes("-mon-")), hosts.map((h) => h.name).join());
    }
    // the counts (etcd, database nodes, balancers) are the cluster's: the monitoring instance adds none
    rejects(gcpConfig({ dbNodes: 2 }, { monitoring: { enabled: true } }), "pgcluster:gcp.witnessNodes", /gives 2 etcd member/);
  });

  it("gcp.monitoringMachineType / gcp.monitoringDiskGb: refused naming the key", () => {
    const mon = { monitoring: { enabled: true } };
    for (const [g, key, pattern] of [
      [{ monitoringDiskGb: 19 }, "pgcluster:gcp.monitoringDiskGb", /must be at least 20 \(GB\)/],
      [{ monitoringDiskGb: 65537 }, "pgcluster:gcp.monitoringDiskGb", /must be at most 65536 \(GB\)/],
      [{ monitoringDiskGb: 30.5 }, "pgcluster:gcp.monitoringDiskGb", /whole number/],
      [{ monitoringDiskGb: "30" }, "pgcluster:gcp.monitoringDiskGb", /expected number/],
      [{ monitoringMachineType: "E2-Medium" }, "pgcluster:gcp.monitoringMachineType", /must be a Compute Engine machine type/],
      [{ monitoringMachineType: "e2-medium; reboot" }, "pgcluster:gcp.monitoringMachineType", /must be a Compute Engine machine type/],
      [{ monitoringMachineType: "" }, "pgcluster:gcp.monitoringMachineType", /must be a Compute Engine machine type/],
      [{ monitoringMachineTyp: "e2-medium" }, "pgcluster:gcp.monitoringMachineTyp", /unknown key — did you mean "monitoringMachineType"\?/],
    ] as [Record<string, unknown>, string, RegExp][]) {
      rejects(gcpConfig(g, mon), key, pattern);
      // refused while monitoring is off as well: a typo waits for no later apply
      rejects(gcpConfig(g), key, pattern);
    }
  });

  it("network.floatingAddress: static only, a free address inside network.cidr; required with two or more balancers", () => {
    const net = (floatingAddress?: unknown) => ({ cidr: "10.1.0.0/24", clientCidrs: ["10.0.0.0/8"], adminCidrs: ["10.1.0.5/32"], ...(floatingAddress === undefined ? {} : { floatingAddress }) });
    const twoLbs = [...(staticConfig().hosts as object[]), { name: "lb2", address: "10.1.0.9", roles: ["balancer"], hostKey: keyLine("ssh-ed25519", 5) }];
    const spec = parseClusterSpec(staticConfig({ hosts: twoLbs, network: net("10.1.0.6") }), ctx);
    assert.equal(spec.network.floatingAddress, "10.1.0.6");
    assert.equal(spec.keepalived.virtualRouterId, 51, "default router id");
    assert.equal(parseClusterSpec(staticConfig({ network: net("10.1.0.6") }), ctx).network.floatingAddress, "10.1.0.6", "one balancer may have one too");
    assert.equal(parseClusterSpec(staticConfig(), ctx).network.floatingAddress, undefined, "one balancer: optional");
    rejects(staticConfig({ hosts: twoLbs, network: net() }), "pgcluster:network.floatingAddress", /is required with 2 balancers \(lb1, lb2\)/);
    rejects(staticConfig({ network: net("10.2.0.6") }), "pgcluster:network.floatingAddress", /10\.2\.0\.6 is outside network.cidr 10\.1\.0\.0\/24/);
    rejects(staticConfig({ network: net("10.1.0.255") }), "pgcluster:network.floatingAddress", /network or broadcast address/);
    rejects(staticConfig({ network: net("10.1.0.11") }), "pgcluster:network.floatingAddress", /is hosts\[1\]'s \("pg1"\) own address/);
    for (const bad of ["10.1.0", "10.1.0.6/32", "10.1.0.6 ", "10.1.0.6; reboot", "$(id)", 7])
      rejects(staticConfig({ network: net(bad) }), "pgcluster:network.floatingAddress", /is not an IPv4 address|expected string/);
    rejects(gcpConfig({}, { network: { cidr: "10.1.0.0/24", clientCidrs: ["10.0.0.0/8"], floatingAddress: "10.1.0.6" } }), "pgcluster:network.floatingAddress", /is for provider static.*gcp.loadBalancerAddress/);
    for (const bad of [0, 256, 1.5, "51"])
      rejects(staticConfig({ network: net("10.1.0.6"), keepalived: { virtualRouterId: bad } }), "pgcluster:keepalived.virtualRouterId", /./);
  });

  it("gcp: clusterName keeps every derived id valid (service account id ≤ 30 characters)", () => {
    assert.equal(GCP_MAX_CLUSTER_NAME, 24);
    const long = "a".repeat(25);
    rejects(gcpConfig({}, { clusterName: long }), "pgcluster:clusterName", /has 25 characters; with provider gcp at most 24: the nodes' service account id "a{25}-nodes" may have at most 30 characters/);
    // 29 characters gave the service account id "…-no" cut to 30 with a trailing '-' before
    rejects(gcpConfig({}, { clusterName: "a".repeat(29) }), "pgcluster:clusterName", /at most 24/);
    parseClusterSpec(gcpConfig({}, { clusterName: "a".repeat(24) }), ctx);
    // static hosts have no such id
    parseClusterSpec(staticConfig({ clusterName: "a".repeat(40) }), ctx);
  });

  it("rejects a static host without address, and one outside network.cidr", () => {
    const hosts = staticConfig().hosts as Record<string, unknown>[];
    rejects(staticConfig({ hosts: [...hosts.slice(0, 3), { name: "pg3", roles: ["etcd", "postgres"], hostKey: keyLine() }] }), "pgcluster:hosts[3].address", /"pg3" has no address/);
    rejects(staticConfig({ hosts: hostsWith(3, { address: "192.168.1.5" }) }), "pgcluster:hosts[3].address", /outside network.cidr/);
  });

  it("rejects duplicate host names and addresses", () => {
    rejects(staticConfig({ hosts: hostsWith(3, { name: "pg2" }) }), "pgcluster:hosts[3].name", /"pg2" is already used by hosts\[2\]/);
    rejects(staticConfig({ hosts: hostsWith(3, { address: "10.1.0.12" }) }), "pgcluster:hosts[3].address", /already used by hosts\[2\]/);
  });

  it("host keys: pinned static hosts need hostKey; trust-on-first-use does not", () => {
    rejects(staticConfig({ hosts: hostsWith(1, { hostKey: undefined }) }), "pgcluster:hosts[1].hostKey", /host "pg1" has no SSH host key and pgcluster:ssh.hostKeys is "pinned"/);
    const noKeys = (staticConfig().hosts as Record<string, unknown>[]).map(({ hostKey: _k, ...h }) => h);
    assert.equal(parseClusterSpec(staticConfig({ hosts: noKeys, ssh: { hostKeys: "trust-on-first-use" } }), ctx).ssh.hostKeys, "trust-on-first-use");
    // the base64 must encode the key type the line names
    rejects(staticConfig({ hosts: hostsWith(0, { hostKey: `ssh-ed25519 ${keyLine("ssh-rsa").split(" ")[1]}` }) }), "pgcluster:hosts[0].hostKey", /is not an ed25519 SSH host key/);
    rejects(staticConfig({ hosts: hostsWith(0, { hostKey: keyLine("ssh-dss") }) }), "pgcluster:hosts[0].hostKey", /is not an ed25519 SSH host key/);
    // What both drivers pin is ed25519 only: other key types are refused before any connection.
    rejects(staticConfig({ hosts: hostsWith(0, { hostKey: keyLine("ecdsa-sha2-nistp256") }) }), "pgcluster:hosts[0].hostKey", /is not an ed25519 SSH host key/);
    assert.equal(sshPublicKeyProblem(`${keyLine()} ops@example laptop`, true), undefined);
    assert.match(sshPublicKeyProblem(`${keyLine()} ops@example`, false)!, /nothing else/);
  });

  it("reserved names: host names that pg_hba/pg_ident trust or that are managed roles", () => {
    for (const n of ["pooler", "replication", "replicator", "pgbouncer", "postgres", "rewind"])
      rejects(staticConfig({ hosts: hostsWith(3, { name: n }) }), "pgcluster:hosts[3].name", new RegExp(`"${n}" is reserved: it is`));
    // GCP host names are derived (<clusterName>-db-N …): no clusterName yields a reserved one
    for (const n of [...Object.keys(CLIENT_CERTS), ...Object.values(CLIENT_CERTS), "postgres", "rewind"]) {
      const names = parseClusterSpec(gcpConfig({}, { clusterName: n, monitoring: { enabled: true } }), ctx).hosts.map((h) => h.name);
      assert.ok(names.includes(`${n}-mon-1`), names.join());
      assert.ok(names.every((h) => h.startsWith(`${n}-`) && /-(db|witness|lb|mon)-\d$/.test(h)), names.join());
    }
  });

  it("reserved names: appUser may not be a managed role, a trusted certificate CN or a reserved word; database not a system one", () => {
    for (const u of ["postgres", "replicator", "rewind"]) rejects(staticConfig({ postgresql: { appUser: u } }), "pgcluster:postgresql.appUser", /is a role pgcluster manages/);
    rejects(staticConfig({ postgresql: { appUser: "pgbouncer" } }), "pgcluster:postgresql.appUser", /CN of the pooler client certificate, which pg_hba\/pg_ident trust/);
    rejects(staticConfig({ postgresql: { appUser: "public" } }), "pgcluster:postgresql.appUser", /reserved role name/);
    rejects(staticConfig({ postgresql: { appUser: "none" } }), "pgcluster:postgresql.appUser", /reserved role name/);
    rejects(staticConfig({ postgresql: { appUser: "all" } }), "pgcluster:postgresql.appUser", /keyword in pg_hba/);
    rejects(staticConfig({ postgresql: { appUser: "pg_monitor" } }), "pgcluster:postgresql.appUser", /lower-case letters/);
    for (const d of ["postgres", "template0", "template1"]) rejects(staticConfig({ postgresql: { database: d } }), "pgcluster:postgresql.database", /system database/);
    rejects(staticConfig({ postgresql: { database: "replication" } }), "pgcluster:postgresql.database", /keyword in pg_hba/);
    rejects(staticConfig({ postgresql: { database: "pgbouncer" } }), "pgcluster:postgresql.database", /admin console/);
    assert.equal(parseClusterSpec(staticConfig({ postgresql: { appUser: "orders", database: "shop" } }), ctx).postgresql.appUser, "orders");
  });

  it("static hosts with the firewall on need adminCidrs (SSH is admitted only from there)", () => {
    rejects(staticConfig({ network: { cidr: "10.1.0.0/24", clientCidrs: ["10.0.0.0/8"] } }), "pgcluster:network.adminCidrs", /admits SSH to static hosts only from these ranges/);
    assert.equal(parseClusterSpec(staticConfig({ network: { cidr: "10.1.0.0/24", clientCidrs: ["10.0.0.0/8"] }, firewall: { enabled: false } }), ctx).firewall.enabled, false);
  });

  it("rejects PostgreSQL parameters that Patroni owns, compared case-insensitively", () => {
    for (const p of ["port", "data_directory", "listen_addresses", "hba_file", "PORT", "Data_Directory", "Listen_Addresses"]) {
      rejects(staticConfig({ postgresql: { parameters: { [p]: "x" } } }), `pgcluster:postgresql.parameters.${p}`, /managed by Patroni/);
    }
    for (const p of PATRONI_OWNED_PARAMETERS) rejects(staticConfig({ postgresql: { parameters: { [p]: "x" } } }), `pgcluster:postgresql.parameters.${p}`, /managed by Patroni|TLS is pgcluster's/);
    const s = parseClusterSpec(staticConfig({ postgresql: { parameters: { work_mem: "16MB", Shared_Buffers: "1GB", "pg_stat_statements.track": "all" } } }), ctx);
    assert.deepEqual(s.postgresql.parameters, { work_mem: "16MB", shared_buffers: "1GB", "pg_stat_statements.track": "all" });
    rejects(staticConfig({ postgresql: { parameters: { work_mem: "16MB", WORK_MEM: "32MB" } } }), "pgcluster:postgresql.parameters.WORK_MEM", /given twice .*case-insensitive/);
  });

  it("refuses every ssl* parameter and every parameter that runs a command or loads code, with the reason", () => {
    for (const p of ["ssl_min_protocol_version", "SSL_ciphers", "ssl_passphrase_command", "ssl_crl_file"])
      rejects(staticConfig({ postgresql: { parameters: { [p]: "x" } } }), `pgcluster:postgresql.parameters.${p}`, /refused: TLS is pgcluster's/);
    for (const [p, reason] of Object.entries(REFUSED_PARAMETERS)) {
      rejects(staticConfig({ postgresql: { parameters: { [p]: "x" } } }), `pgcluster:postgresql.parameters.${p}`, new RegExp(`refused: it ${reason.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`));
      rejects(staticConfig({ postgresql: { parameters: { [p.toUpperCase()]: "x" } } }), `pgcluster:postgresql.parameters.${p.toUpperCase()}`, /refused/);
    }
    for (const p of ["archive_command", "archive_library", "archive_cleanup_command", "recovery_end_command", "restore_command", "ssl_passphrase_command",
      "dynamic_library_path", "local_preload_libraries", "session_preload_libraries", "unix_socket_directories", "external_pid_file", "log_directory", "data_directory"])
      assert.ok(problemsOf(staticConfig({ postgresql: { parameters: { [p]: "x" } } })).some((m) => m.startsWith(`pgcluster:postgresql.parameters.${p}:`)), p);
    // shared_preload_libraries: names from PostgreSQL's own library directory only
    parseClusterSpec(staticConfig({ postgresql: { parameters: { shared_preload_libraries: "pg_stat_statements, auto_explain" } } }), ctx);
    assert.equal(parseClusterSpec(staticConfig({ postgresql: { parameters: { constructor: "1" } } }), ctx).postgresql.parameters.constructor, "1");
    rejects(staticConfig({ postgresql: { parameters: { shared_preload_libraries: "/tmp/evil.so" } } }), "pgcluster:postgresql.parameters.shared_preload_libraries", /only library names/);
  });

  it("rejects pool sizes <= 0", () => {
    rejects(staticConfig({ pgbouncer: { defaultPoolSize: 0 } }), "pgcluster:pgbouncer.defaultPoolSize", /greater than 0/);
    rejects(staticConfig({ pgbouncer: { maxClientConn: -5 } }), "pgcluster:pgbouncer.maxClientConn", /greater than 0/);
    rejects(staticConfig({ pgbouncer: { defaultPoolSize: 50, maxClientConn: 10 } }), "pgcluster:pgbouncer.defaultPoolSize", /exceeds maxClientConn/);
  });

  it("rotation values: tokens; an integer (pulumi config set --path … 2 stores one) counts as its text", () => {
    const s = parseClusterSpec(staticConfig({ secrets: { rotation: 3, rotate: { appPassword: 2 } }, tls: { rotation: 7 } }), ctx);
    assert.deepEqual([s.secrets.rotation, s.secrets.rotate.appPassword, s.tls.rotation], ["3", "2", "7"]);
    assert.equal(parseClusterSpec(staticConfig({ tls: { rotation: "2026-11.b" } }), ctx).tls.rotation, "2026-11.b");
    rejects(staticConfig({ tls: { rotation: -1 } }), "pgcluster:tls.rotation", /expected string/);
    rejects(staticConfig({ secrets: { rotate: { appPassword: "" } } }), "pgcluster:secrets.rotate.appPassword", /short token/);
  });

  it("rejects a missing required secret, and a secret stored in plain text", () => {
    rejects(staticConfig({ secrets: { generate: false } }), "pgcluster:superuserPassword", /required because pgcluster:secrets.generate is false.*--secret/);
    rejects(staticConfig({ sshPrivateKey: undefined }), "pgcluster:sshPrivateKey", /required to reach the hosts/);
    rejects(staticConfig({ appPassword: "hunter2" }), "pgcluster:appPassword", /plain text.*pulumi config set --secret pgcluster:appPassword/);
    rejects(staticConfig({ appPassword: "correct-horse-battery-staple" }), "pgcluster:appPassword", /plain text/);
    assert.equal(parseClusterSpec(staticConfig({ appPassword: "correct-horse-battery-staple" }), allSecret).secrets.provided.join(), "appPassword");
  });

  it("secret values: 16-128 printable ASCII without spaces; the value never appears in a problem", () => {
    for (const bad of ["short-pw", "a password with spaces in it", "long-enough-password\nrm -rf /", "päss-wörd-long-enough", "x".repeat(129)]) {
      for (const k of SECRET_KEYS) {
        const problems = problemsOf(staticConfig({ [k]: bad }), allSecret);
        const hit = problems.find((p) => p.startsWith(`pgcluster:${k}: `));
        assert.ok(hit, `${k} not rejected`);
        assert.match(hit!, /16 to 128 printable ASCII characters without spaces \(the value is not shown\)/);
        assert.ok(problems.every((p) => !p.includes(bad) && !p.includes(bad.slice(0, 8))), `${k}: a problem shows the value`);
      }
    }
    rejects(staticConfig({ sshPrivateKey: "k" }), "pgcluster:sshPrivateKey", /must be a PEM or OpenSSH private key/, allSecret);
  });

  it("feeds hostile values to every key that reaches bash, SQL, ssh, a config file, a URL or a certificate subject: each is refused, naming that key", () => {
    const cmd = "$(touch /tmp/pgc-pwned)";
    const aptInjection = 'http://p" ; Dpkg::Pre-Invoke {"touch /tmp/pgc-pwned"};';
    const sshOption = "-oProxyCommand=touch /tmp/pgc-pwned";
    const subject = "1, CN=evil";
    const nl = "x\ntouch /tmp/pgc-pwned";
    const pw = "long-enough-password";
    const st = (over: Record<string, unknown>) => staticConfig(over);
    const gc = (g: Record<string, unknown>, over: Record<string, unknown> = {}) => gcpConfig(g, over);
    const cases: [string, Record<string, unknown>][] = [
      ["pgcluster:hosts[0].name", st({ hosts: hostsWith(0, { name: `lb1;${cmd}` }) })],
      ["pgcluster:hosts[0].name", st({ hosts: hostsWith(0, { name: "1, CN=evil" }) })],
      ["pgcluster:hosts[0].address", st({ hosts: hostsWith(0, { address: `10.1.0.10;${cmd}` }) })],
      ["pgcluster:hosts[0].dataDevice", st({ hosts: hostsWith(0, { dataDevice: `/dev/sdz${cmd}` }) })],
      ["pgcluster:hosts[0].dataDevice", st({ hosts: hostsWith(0, { dataDevice: "/dev/../etc/shadow" }) })],
      ["pgcluster:hosts[0].dataDevice", st({ hosts: hostsWith(0, { dataDevice: `/dev/sdb${nl}` }) })],
      ["pgcluster:hosts[0].dataDevice", st({ hosts: hostsWith(0, { dataDevice: "/dev/sdb' '" }) })],
      ["pgcluster:hosts[0].sshUser", st({ hosts: hostsWith(0, { sshUser: sshOption }) })],
      ["pgcluster:hosts[0].sshUser", st({ hosts: hostsWith(0, { sshUser: `ops${nl}` }) })],
      ["pgcluster:hosts[0].hostKey", st({ hosts: hostsWith(0, { hostKey: `${keyLine()}\n${keyLine("ssh-rsa")}` }) })],
      ["pgcluster:hosts[0].hostKey", st({ hosts: hostsWith(0, { hostKey: `@cert-authority * ${keyLine()}` }) })],
      ["pgcluster:hosts[0].hostKey", st({ hosts: hostsWith(0, { hostKey: `${keyLine()} comment` }) })],
      ["pgcluster:ssh.user", st({ ssh: { user: sshOption } })],
      ["pgcluster:ssh.user", st({ ssh: { user: "root'" } })],
      ["pgcluster:ssh.publicKey", gc({}, { ssh: { user: "ops", publicKey: `${keyLine()} ops${nl}` } })],
      ["pgcluster:ssh.publicKey", gc({}, { ssh: { user: "ops", publicKey: `${keyLine()}\n${keyLine("ssh-rsa")} attacker` } })],
      ["pgcluster:ssh.publicKey", gc({}, { ssh: { user: "ops", publicKey: `${keyLine()} "quoted"` } })],
      ["pgcluster:ssh.privateKeyFile", st({ ssh: { privateKeyFile: `key;${cmd}` } })],
      ["pgcluster:ssh.privateKeyFile", st({ ssh: { privateKeyFile: sshOption } })],
      ["pgcluster:ssh.privateKeyFile", st({ ssh: { privateKeyFile: `key${nl}` } })],
      ["pgcluster:ssh.privateKeyFile", st({ ssh: { privateKeyFile: "my key'" } })],
      ["pgcluster:apt.proxy", st({ apt: { proxy: aptInjection } })],
      ["pgcluster:apt.proxy", st({ apt: { proxy: `http://proxy:3142/${cmd}` } })],
      ["pgcluster:apt.proxy", st({ apt: { proxy: "http://user:secret@proxy:3142" } })],
      ["pgcluster:apt.proxy", st({ apt: { proxy: `http://proxy:3142${nl}` } })],
      ["pgcluster:apt.proxy", st({ apt: { proxy: "http://proxy:99999" } })],
      ["pgcluster:apt.proxy", st({ apt: { proxy: "ftp://proxy" } })],
      ["pgcluster:apt.mirror", st({ apt: { mirror: aptInjection } })],
      ["pgcluster:apt.mirror", st({ apt: { mirror: "https://deb.example/debian?x=`id`" } })],
      ["pgcluster:tls.rotation", st({ tls: { rotation: subject } })],
      ["pgcluster:tls.rotation", st({ tls: { rotation: "1/CN=evil" } })],
      ["pgcluster:tls.rotation", st({ tls: { rotation: nl } })],
      ["pgcluster:tls.caGenerations[0]", st({ tls: { caGenerations: [subject] } })],
      ["pgcluster:secrets.rotation", st({ secrets: { rotation: `1;${cmd}` } })],
      ["pgcluster:secrets.rotate.appPassword", st({ secrets: { rotate: { appPassword: cmd } } })],
      ["pgcluster:environment", st({ environment: `dev;${cmd}` })],
      ["pgcluster:environment", st({ environment: "dev\n" })],
      ["pgcluster:clusterName", st({ clusterName: "pg'; DROP DATABASE app; --" })],
      ["pgcluster:gcp.project", gc({ project: `p-roject;${cmd}` })],
      ["pgcluster:gcp.region", gc({ region: `europe-west1;${cmd}` })],
      ["pgcluster:gcp.zones[0]", gc({ zones: [`europe-west1-b;${cmd}`] })],
      ["pgcluster:gcp.dbMachineType", gc({ dbMachineType: `e2-small ${sshOption}` })],
      ["pgcluster:gcp.witnessMachineType", gc({ witnessMachineType: "e2-micro\n" })],
      ["pgcluster:gcp.balancerMachineType", gc({ balancerMachineType: "e2-small'" })],
      ["pgcluster:gcp.bastionMachineType", gc({ bastionMachineType: cmd })],
      ["pgcluster:gcp.image", gc({ image: "debian-cloud/debian-12 --metadata=startup-script=id" })],
      ["pgcluster:gcp.image", gc({ image: "../../evil" })],
      ["pgcluster:postgresql.database", st({ postgresql: { database: "app; DROP DATABASE postgres" } })],
      ["pgcluster:postgresql.appUser", st({ postgresql: { appUser: 'app" SUPERUSER' } })],
      ["pgcluster:postgresql.appUser", st({ postgresql: { appUser: "postgres" } })],
      ['pgcluster:postgresql.parameters["work_mem = 1\\nshared_preload_libraries"]', st({ postgresql: { parameters: { "work_mem = 1\nshared_preload_libraries": "x" } } })],
      ["pgcluster:postgresql.parameters.work_mem", st({ postgresql: { parameters: { work_mem: "16MB'\nshared_preload_libraries = '/tmp/evil.so" } } })],
      ["pgcluster:postgresql.parameters.log_line_prefix", st({ postgresql: { parameters: { log_line_prefix: "%m \\' " } } })],
      ["pgcluster:postgresql.parameters.application_name", st({ postgresql: { parameters: { application_name: 'a"b' } } })],
      ["pgcluster:postgresql.parameters.archive_command", st({ postgresql: { parameters: { archive_command: "touch /tmp/pgc-pwned" } } })],
      ["pgcluster:sshPrivateKey", st({ sshPrivateKey: cmd })],
      ...SECRET_KEYS.flatMap((k): [string, Record<string, unknown>][] => [
        [`pgcluster:${k}`, st({ [k]: `${pw}'${nl}` })],
        [`pgcluster:${k}`, st({ [k]: `${pw} ${cmd}` })],
      ]),
    ];
    // The same configs without the hostile value parse: each case is refused for that value only.
    parseClusterSpec(staticConfig(), allSecret);
    parseClusterSpec(gcpConfig(), allSecret);
    for (const [key, raw] of cases) {
      const problems = problemsOf(raw, allSecret);
      assert.ok(problems.some((p) => p.startsWith(`${key}: `)), `${key} was not refused by name; got:\n${problems.join("\n") || "(accepted)"}`);
      assert.ok(problems.every((p) => !p.includes("\n")), `a problem spans lines (a value was echoed raw): ${JSON.stringify(problems)}`);
    }
  });

  it("a type error does not hide the other problems", () => {
    // patroni has a type error; appUser and a duplicate host name are semantic problems elsewhere
    const problems = problemsOf(staticConfig({ patroni: "fast", postgresql: { appUser: "postgres" }, hosts: hostsWith(3, { name: "pg2" }) }));
    assert.ok(problems.some((p) => p.startsWith("pgcluster:patroni: ")), problems.join("\n"));
    assert.ok(problems.some((p) => p.startsWith("pgcluster:postgresql.appUser: ") && /role pgcluster manages/.test(p)), problems.join("\n"));
    assert.ok(problems.some((p) => p.startsWith("pgcluster:hosts[3].name: ") && /already used/.test(p)), problems.join("\n"));
    // a type error inside hosts still lets the Patroni margin and the pool sizes be checked
    const more = problemsOf(staticConfig({ hosts: hostsWith(0, { roles: "balancer" }), patroni: { ttl: 10, loopWait: 2, retryTimeout: 4 }, pgbouncer: { defaultPoolSize: 50, maxClientConn: 10 } }));
    assert.ok(more.some((p) => p.startsWith("pgcluster:hosts[0].roles: ")), more.join("\n"));
    assert.ok(more.some((p) => p.startsWith("pgcluster:patroni: loopWait")), more.join("\n"));
    assert.ok(more.some((p) => p.startsWith("pgcluster:pgbouncer.defaultPoolSize: ")), more.join("\n"));
    // within one object too: a bad field hides none of its siblings' problems
    const gcp = problemsOf(gcpConfig({ dbNodes: 12, zones: ["europe-west1-a"], sshSourceRanges: ["0.0.0.0/1", "128.0.0.0/1"], bastionCidr: "10.1.0.0/28" }));
    for (const key of ["pgcluster:gcp.dbNodes: ", "pgcluster:gcp.zones[0]: ", "pgcluster:gcp.sshSourceRanges: ", "pgcluster:gcp.bastionCidr: "])
      assert.ok(gcp.some((p) => p.startsWith(key)), `${key}\n${gcp.join("\n")}`);
    const patroni = problemsOf(staticConfig({ patroni: { ttl: 10, loopWait: 2, retryTimeout: 4, watchdog: "sometimes", pendingRestart: "now" }, tls: { rotation: "a b", certValidityHours: 100, earlyRenewalHours: 200 } }));
    for (const key of ["pgcluster:patroni.watchdog: ", "pgcluster:patroni.pendingRestart: ", "pgcluster:patroni: loopWait", "pgcluster:tls.rotation: ", "pgcluster:tls.earlyRenewalHours: "])
      assert.ok(patroni.some((p) => p.startsWith(key)), `${key}\n${patroni.join("\n")}`);
  });

  it("lists every problem at once", () => {
    try {
      parseClusterSpec(staticConfig({ patroni: { ttl: 5 }, pgbouncer: { defaultPoolSize: 0 } }), ctx);
      assert.fail("accepted");
    } catch (e) {
      assert.ok(e instanceof ConfigError);
      assert.ok(e.problems.length >= 2, e.message);
      assert.match(e.message, /^Invalid stack config \(test\):/);
    }
  });

  it("decodes Pulumi's JSON-encoded structured values and leaves scalars alone", () => {
    assert.deepEqual(decodeConfigValue('{"ttl":10}'), { ttl: 10 });
    assert.equal(decodeConfigValue("prod"), "prod");
    assert.equal(decodeConfigValue("123"), "123");
  });
});
