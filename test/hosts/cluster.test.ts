// Hosts layer: a real cluster on local Debian 12 hosts (systemd-nspawn), applied over SSH.
import { strict as assert } from "assert";
import * as tls from "tls";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { requireHosts, localCluster, settledCluster } from "../support/hostsLayer";
import { query, connectError } from "../support/pg";
import { apply } from "../../local/up";
import { preflight } from "../../local/driver";
import { ssh } from "../../local/ssh";
import { patroniCluster, type LocalCluster } from "../../local/cluster";
import { sh } from "../../local/exec";

const LB = "10.213.0.10";

function onNode(c: LocalCluster, node: string, command: string, input = "") {
  return ssh(c.ssh, c.targets[node], command, input, 60_000);
}

async function leaderName(c: LocalCluster): Promise<string> {
  const m = (await patroniCluster(c)).find((x) => x.role === "leader");
  assert.ok(m, "a leader");
  return m!.name;
}

function tlsHandshake(c: LocalCluster, host: string, port: number): Promise<{ authorized: boolean; subject: string; serial: string }> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host, port, ca: c.pki.ca, servername: undefined, rejectUnauthorized: true, timeout: 3000 }, () => {
      const cert = s.getPeerCertificate();
      resolve({ authorized: s.authorized, subject: String(cert.subject.CN), serial: cert.serialNumber });
      s.end();
    });
    s.on("error", reject);
  });
}

describe("hosts layer: the local cluster", function () {
  this.timeout(30 * 60_000);
  let c: LocalCluster;
  const log: string[] = [];

  before(async function () {
    requireHosts(this);
    await localCluster((l) => { log.push(l); console.log(`      ${l}`); });
    c = await settledCluster("the local cluster");
  });

  it("has 1 leader and 2 streaming replicas (one synchronous), and 3 healthy etcd members", async () => {
    const members = await patroniCluster(c);
    assert.equal(members.filter((m) => m.role === "leader").length, 1, JSON.stringify(members));
    assert.equal(members.filter((m) => m.role !== "leader").length, 2);
    const leader = members.find((m) => m.role === "leader")!;
    const rows = await query(c, { host: LB, port: 5002, user: "postgres", password: c.secrets.superuserPassword, database: "postgres" },
      "select application_name, state, sync_state from pg_stat_replication order by 1");
    assert.equal(rows.length, 2, JSON.stringify(rows));
    assert.ok(rows.every((r) => r.state === "streaming"), JSON.stringify(rows));
    assert.equal(rows.filter((r) => r.sync_state === "sync").length, 1, "synchronous_mode: one sync standby");
    const r = await onNode(c, leader.name, "ETCDCTL_API=3 etcdctl --endpoints=https://10.213.0.11:2379,https://10.213.0.12:2379,https://10.213.0.13:2379 --cacert=/etc/etcd/pki/ca.crt --cert=/etc/etcd/pki/node.crt --key=/etc/etcd/pki/node.key endpoint health");
    assert.equal((r.out.match(/is healthy/g) ?? []).length, 3, r.out);
  });

  it("writes through :5000 are read back through :5001 and :5002", async () => {
    const tag = `row-${Date.now()}`;
    await query(c, { host: LB, port: 5000 }, "create table if not exists pgc_probe(id serial primary key, tag text not null)");
    await query(c, { host: LB, port: 5000 }, "insert into pgc_probe(tag) values ($1)", [tag]);
    const viaReplica = await query(c, { host: LB, port: 5001 }, "select pg_is_in_recovery() as standby, count(*)::int as n from pgc_probe where tag = $1", [tag]);
    assert.deepEqual(viaReplica, [{ standby: true, n: 1 }], "synchronous replica already has the row");
    const direct = await query(c, { host: LB, port: 5002 }, "select pg_is_in_recovery() as standby, count(*)::int as n from pgc_probe where tag = $1", [tag]);
    assert.deepEqual(direct, [{ standby: false, n: 1 }]);
  });

  it(":5001 never routes to the leader while a replica is healthy", async () => {
    const leader = await leaderName(c);
    const seen = new Set<string>();
    for (let i = 0; i < 12; i++) {
      const [r] = await query(c, { host: LB, port: 5001 }, "select pg_is_in_recovery() as standby, split_part(current_setting('listen_addresses'), ',', 1) as addr");
      assert.equal(r.standby, true, `query ${i} went to the primary`);
      seen.add(r.addr);
    }
    assert.ok(!seen.has(c.targets[leader].address));
    assert.equal(seen.size, 2, `round robin over both replicas: ${[...seen]}`);
  });

  it("requires TLS everywhere: plain PostgreSQL, pgBouncer, etcd and Patroni REST connections are refused", async () => {
    const node = "10.213.0.11";
    assert.match((await connectError(c, { host: node, port: 5432, ssl: false }))!, /no encryption|pg_hba\.conf rejects/);
    assert.match((await connectError(c, { host: node, port: 6432, ssl: false }))!, /SSL required/i);
    assert.match((await connectError(c, { host: LB, port: 5000, ssl: false }))!, /SSL required/i);
    for (const port of [2379, 8008]) {
      const r = sh("curl", ["-s", "-m", "3", "-o", "/dev/null", "-w", "%{http_code}", `http://${node}:${port}/health`], { allowFail: true });
      assert.ok(r.stdout === "000" || r.stdout === "400", `plain http to :${port} answered ${r.stdout}`);
    }
    // etcd refuses a TLS client without a client certificate
    const noCert = sh("curl", ["-s", "-m", "3", "--cacert", path.join(c.stateDir, "ca.crt"), `https://${node}:2379/health`], { allowFail: true });
    assert.notEqual(noCert.code, 0, "etcd accepted a client without certificate");
  });

  it("serves certificates that verify against the cluster CA on every TLS port", async () => {
    for (const h of c.hosts.filter((x) => x.roles.includes("postgres"))) {
      for (const port of [2379, 2380, 8008]) {
        const r = await tlsHandshake(c, h.address, port).catch((e) => ({ authorized: false, subject: String(e), serial: "" }));
        // etcd asks for a client cert; the handshake still proves the server cert verifies
        assert.equal(r.authorized, true, `${h.name}:${port} ${r.subject}`);
        assert.equal(r.subject, h.name);
      }
      const [ssl] = await query(c, { host: h.address, port: 5432, user: "postgres", password: c.secrets.superuserPassword, database: "postgres" }, "select ssl, version from pg_stat_ssl where pid = pg_backend_pid()");
      assert.equal(ssl.ssl, true);
      assert.match(ssl.version, /TLSv1\.[23]/);
    }
  });

  it("authenticates with scram only: no md5/trust/password rules, a wrong password is refused", async () => {
    const rules = await query(c, { host: LB, port: 5002, user: "postgres", password: c.secrets.superuserPassword, database: "postgres" }, "select type, auth_method from pg_hba_file_rules");
    assert.ok(rules.length > 0);
    for (const r of rules) assert.ok(!["md5", "trust", "password"].includes(r.auth_method), JSON.stringify(r));
    for (const r of rules.filter((x) => x.type === "host")) assert.equal(r.auth_method, "reject");
    const [pw] = await query(c, { host: LB, port: 5002, user: "postgres", password: c.secrets.superuserPassword, database: "postgres" }, "select rolpassword from pg_authid where rolname = $1", [c.spec.postgresql.appUser]);
    assert.match(pw.rolpassword, /^SCRAM-SHA-256\$4096:/);
    assert.match((await connectError(c, { host: LB, port: 5000, password: "wrong-password" }))!, /password authentication failed|SASL authentication failed/);
  });

  it("replicas connect by client certificate (CN=replicator), over TLS", async () => {
    const rows = await query(c, { host: LB, port: 5002, user: "postgres", password: c.secrets.superuserPassword, database: "postgres" },
      "select r.usename, s.ssl, s.client_dn from pg_stat_replication r join pg_stat_ssl s using (pid)");
    assert.equal(rows.length, 2);
    for (const r of rows) {
      assert.equal(r.usename, "replicator");
      assert.equal(r.ssl, true);
      assert.match(r.client_dn, /CN=replicator/);
    }
  });

  it("pgBouncer logs in to PostgreSQL with its own client certificate (CN=pgbouncer), from the node itself", async () => {
    await query(c, { host: LB, port: 5000 }, "select 1");
    const rows = await query(c, { host: LB, port: 5002, user: "postgres", password: c.secrets.superuserPassword, database: "postgres" },
      "select a.usename, host(a.client_addr) as addr, s.ssl, s.client_dn from pg_stat_activity a join pg_stat_ssl s using (pid) where a.usename = 'app' and a.backend_type = 'client backend' and a.client_addr = '127.0.0.1'");
    assert.ok(rows.length > 0, "pooled server connections on the primary");
    for (const r of rows) {
      assert.equal(r.ssl, true);
      assert.match(r.client_dn ?? "", /CN=pgbouncer/);
    }
  });

  it("a HAProxy reload never sends a :5000 client to a replica", async () => {
    // A reloaded HAProxy would start with every server UP until checked; the unit keeps the
    // checked state across reloads. New connection per query, three reloads meanwhile.
    let writes = 0;
    const wrong: string[] = [];
    let done = false;
    const probe = (async () => {
      while (!done) {
        try {
          const [r] = await query(c, { host: LB, port: 5000 }, "select pg_is_in_recovery() as standby, inet_server_addr()::text as addr");
          if (r.standby) wrong.push(r.addr); else writes++;
        } catch (e) { wrong.push((e as Error).message); }
      }
    })();
    for (let i = 0; i < 3; i++) {
      const r = await onNode(c, "lb1", "systemctl reload haproxy");
      assert.equal(r.code, 0, r.out);
      await new Promise((res) => setTimeout(res, 1500));
    }
    done = true;
    await probe;
    console.log(`      ${writes} connections reached the primary across 3 reloads; ${wrong.length} did not`);
    assert.deepEqual(wrong, []);
    assert.ok(writes > 10);
  });

  it("re-apply changes nothing (0 changed steps)", async () => {
    const r = await apply(c, () => {});
    assert.equal(r.code, 0);
    const changed = r.outcomes.filter((o) => o.outcome !== "ok").map((o) => `${o.step.id}: ${o.result?.changed.join(", ") ?? o.reason}`);
    assert.deepEqual(changed, []);
  });

  it("check mode reports a hand edit of patroni.yml on that node only, and a re-apply repairs it", async () => {
    await onNode(c, "pg2", "sed -i 's/^  level: INFO$/  level: DEBUG/' /etc/patroni/config.yml");
    const lines: string[] = [];
    const check = await apply(c, (l) => lines.push(l), true);
    assert.equal(check.code, 3, lines.join("\n"));
    const drifted = check.outcomes.filter((o) => o.outcome === "drift");
    assert.deepEqual(drifted.map((o) => o.step.id), ["pg2/patroni"]);
    assert.ok(drifted[0].result!.changed.includes("file:/etc/patroni/config.yml (content)"));
    assert.ok(!lines.join("\n").includes(c.secrets.restApiPassword), "secret file content is not shown");
    const fix = await apply(c, () => {});
    assert.equal(fix.code, 0);
    assert.deepEqual(fix.outcomes.filter((o) => o.outcome === "changed").map((o) => o.step.id), ["pg2/patroni"]);
    const after = await apply(c, () => {}, true);
    assert.equal(after.code, 0, "clean after the repair");
  });

  it("a wrong SSH key or an unreachable host fails fast with a clear message, before any change", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgc-key-"));
    sh("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(dir, "k")]);
    const t0 = Date.now();
    const wrongKey = await preflight({ ...c.ssh, privateKeyFile: path.join(dir, "k") }, [c.targets.pg1]);
    assert.equal(wrongKey.length, 1);
    assert.match(wrongKey[0], /^pg1 \(root@10\.213\.0\.11:22\): the SSH key was refused/);
    const gone = await preflight(c.ssh, [{ name: "pg9", address: "10.213.0.99", user: "root", port: 22 }]);
    assert.match(gone[0], /^pg9 \(root@10\.213\.0\.99:22\): unreachable/);
    assert.ok(Date.now() - t0 < 20_000, "fails within seconds");
    fs.rmSync(dir, { recursive: true });
  });
});
