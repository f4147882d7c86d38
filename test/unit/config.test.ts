import { strict as assert } from "assert";
import { parseClusterSpec, ConfigError, decodeConfigValue } from "../../infra/config";
import { readStackFile, specFromStackFile, listStacks } from "../../infra/stackFile";

const ctx = { stack: "dev", secretKeys: new Set(["sshPrivateKey"]), source: "test" };

function staticConfig(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    clusterName: "pgtest",
    provider: "static",
    hosts: [
      { name: "lb1", address: "10.1.0.10", roles: ["balancer"] },
      { name: "pg1", address: "10.1.0.11", roles: ["etcd", "postgres"] },
      { name: "pg2", address: "10.1.0.12", roles: ["etcd", "postgres"] },
      { name: "pg3", address: "10.1.0.13", roles: ["etcd", "postgres"] },
    ],
    network: { cidr: "10.1.0.0/24", clientCidrs: ["10.0.0.0/8"] },
    sshPrivateKey: "-----BEGIN OPENSSH PRIVATE KEY-----",
    ...over,
  };
}

function gcpConfig(gcp: Record<string, unknown> = {}, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    clusterName: "pgtest",
    provider: "gcp",
    gcp: { project: "p", region: "europe-west1", zones: ["europe-west1-b", "europe-west1-c", "europe-west1-d"], sshSourceRanges: ["203.0.113.0/28"], ...gcp },
    network: { cidr: "10.1.0.0/24", clientCidrs: ["10.0.0.0/8"] },
    ssh: { user: "ops", publicKey: "ssh-ed25519 AAAA test" },
    sshPrivateKey: "k",
    ...over,
  };
}

/** Asserts the config is rejected with a problem naming `key` and matching `pattern`. */
function rejects(raw: Record<string, unknown>, key: string, pattern: RegExp, c = ctx) {
  try {
    parseClusterSpec(raw, c);
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${e}`);
    const hit = e.problems.find((p) => p.startsWith(key + ":") || p.startsWith(key + "."));
    assert.ok(hit, `no problem names ${key}; got:\n${e.problems.join("\n")}`);
    assert.match(hit!, pattern);
    return e;
  }
  assert.fail(`config was accepted; expected a problem with ${key}`);
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
  });

  it("accepts every stack file in the repository (with its required secret supplied)", () => {
    for (const stack of listStacks()) {
      const sf = readStackFile(stack);
      const values = { ...sf.values, ...(stack === "local" ? {} : { sshPrivateKey: "k" }) };
      const spec = parseClusterSpec(values, { stack, secretKeys: new Set(["sshPrivateKey"]), source: sf.file });
      assert.ok(spec.hosts.length >= 4, stack);
    }
    assert.deepEqual(listStacks(), ["dev", "local", "prod"]);
  });

  it("reads the local stack file without the Pulumi CLI", () => {
    const spec = specFromStackFile(readStackFile("local"));
    assert.deepEqual(spec.hosts.map((h) => h.address), ["10.213.0.10", "10.213.0.11", "10.213.0.12", "10.213.0.13"]);
    assert.equal(spec.apt.proxy, "http://10.213.0.1:3142");
  });

  it("rejects an even number of etcd members", () => {
    const hosts = [...(staticConfig().hosts as object[]), { name: "pg4", address: "10.1.0.14", roles: ["etcd", "postgres"] }];
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

  it("rejects a zone outside the region", () => {
    rejects(gcpConfig({ zones: ["europe-west1-b", "us-east1-c"] }), "pgcluster:gcp.zones[1]", /not in region europe-west1/);
  });

  it("rejects a CIDR that does not parse, has host bits set, or overlaps", () => {
    rejects(staticConfig({ network: { cidr: "10.1.0.0/33", clientCidrs: ["10.0.0.0/8"] } }), "pgcluster:network.cidr", /not an IPv4 CIDR/);
    rejects(staticConfig({ network: { cidr: "10.1.0.5/24", clientCidrs: ["10.0.0.0/8"] } }), "pgcluster:network.cidr", /not an IPv4 CIDR/);
    rejects(gcpConfig({ bastionCidr: "10.1.0.128/28" }), "pgcluster:gcp.bastionCidr", /overlaps network.cidr/);
  });

  it("refuses 0.0.0.0/0 as a client or SSH source", () => {
    rejects(staticConfig({ network: { cidr: "10.1.0.0/24", clientCidrs: ["0.0.0.0/0"] } }), "pgcluster:network.clientCidrs", /whole internet/);
    rejects(gcpConfig({ sshSourceRanges: ["0.0.0.0/0"] }), "pgcluster:gcp.sshSourceRanges[0]", /whole internet/);
  });

  it("rejects unknown keys and suggests the intended one", () => {
    const e = rejects(staticConfig({ patroni: { tll: 10 } }), "pgcluster:patroni.tll", /unknown key — did you mean "ttl"\?/);
    assert.match(e.message, /Known keys here: ttl, loopWait/);
    rejects(staticConfig({ clustername: "x" }), "pgcluster:clustername", /did you mean "clusterName"/);
  });

  it("rejects loop_wait + 2·retry_timeout > ttl, and ttl < 10", () => {
    rejects(staticConfig({ patroni: { ttl: 10, loopWait: 4, retryTimeout: 4 } }), "pgcluster:patroni", /4 \+ 2·4 = 12 exceeds ttl 10/);
    rejects(staticConfig({ patroni: { ttl: 8, loopWait: 1, retryTimeout: 2 } }), "pgcluster:patroni.ttl", /at least 10/);
  });

  it("rejects a static host without address, and one outside network.cidr", () => {
    const hosts = staticConfig().hosts as Record<string, unknown>[];
    rejects(staticConfig({ hosts: [...hosts.slice(0, 3), { name: "pg3", roles: ["etcd", "postgres"] }] }), "pgcluster:hosts[3].address", /"pg3" has no address/);
    rejects(staticConfig({ hosts: [...hosts.slice(0, 3), { ...hosts[3], address: "192.168.1.5" }] }), "pgcluster:hosts[3].address", /outside network.cidr/);
  });

  it("rejects duplicate host names and addresses", () => {
    const hosts = staticConfig().hosts as Record<string, unknown>[];
    rejects(staticConfig({ hosts: [...hosts.slice(0, 3), { ...hosts[3], name: "pg2" }] }), "pgcluster:hosts[3].name", /"pg2" is already used by hosts\[2\]/);
    rejects(staticConfig({ hosts: [...hosts.slice(0, 3), { ...hosts[3], address: "10.1.0.12" }] }), "pgcluster:hosts[3].address", /already used by hosts\[2\]/);
    // certificate ids share the namespace of node names
    rejects(staticConfig({ hosts: [...hosts.slice(0, 3), { ...hosts[3], name: "pooler" }] }), "pgcluster:hosts[3].name", /"pooler" is reserved/);
  });

  it("rejects PostgreSQL parameters that Patroni owns", () => {
    for (const p of ["port", "data_directory", "listen_addresses", "hba_file"]) {
      rejects(staticConfig({ postgresql: { parameters: { [p]: "x" } } }), `pgcluster:postgresql.parameters.${p}`, /managed by Patroni/);
    }
    assert.equal(parseClusterSpec(staticConfig({ postgresql: { parameters: { work_mem: "16MB" } } }), ctx).postgresql.parameters.work_mem, "16MB");
  });

  it("rejects pool sizes <= 0", () => {
    rejects(staticConfig({ pgbouncer: { defaultPoolSize: 0 } }), "pgcluster:pgbouncer.defaultPoolSize", /greater than 0/);
    rejects(staticConfig({ pgbouncer: { maxClientConn: -5 } }), "pgcluster:pgbouncer.maxClientConn", /greater than 0/);
  });

  it("rejects a missing required secret, and a secret stored in plain text", () => {
    rejects(staticConfig({ secrets: { generate: false } }), "pgcluster:superuserPassword", /required because pgcluster:secrets.generate is false.*--secret/);
    rejects(staticConfig({ sshPrivateKey: undefined }), "pgcluster:sshPrivateKey", /required to reach the hosts/);
    rejects(staticConfig({ appPassword: "hunter2" }), "pgcluster:appPassword", /plain text.*pulumi config set --secret pgcluster:appPassword/);
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
