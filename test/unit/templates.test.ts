import { strict as assert } from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import YAML from "yaml";
import * as ini from "ini";
import { compile } from "../../roles/compile";
import { render } from "../../roles/render";
import type { Pki, Plan } from "../../roles/types";
import { localSpec, gcpStackSpec, hostsOf, testPki, TEST_SECRETS, fileOf } from "../support/fixtures";
import { run } from "../support/tools";
import { spawnSync } from "child_process";

describe("rendered configuration files", () => {
  let plan: Plan;
  let pki: Pki;
  let tmp: string;
  const step = (id: string) => plan.steps.find((s) => s.id === id);
  before(async () => {
    const spec = localSpec();
    const hosts = hostsOf(spec);
    pki = await testPki(spec, hosts);
    plan = compile(spec, hosts, pki, TEST_SECRETS);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pgc-tpl-"));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it("strict templates: a missing variable is an error, not an empty string, also as a helper's argument", () => {
    assert.throws(() => render("pgbouncer", "listen.ini", { address: "10.0.0.1" }), /template pgbouncer\/listen.ini.hbs: "pgbouncer" not defined/);
    assert.throws(() => render("common", "apt-proxy.conf", {}), /template common\/apt-proxy.conf.hbs: apt.proxy cannot be written into an apt.conf string: it is undefined/);
    assert.throws(() => render("patroni", "config.yml", {}), /template patroni\/config.yml.hbs: /);
  });

  describe("patroni.yml", () => {
    let cfg: any;
    let text: string;
    before(() => { text = fileOf(step("pg2/patroni"), "/etc/patroni/config.yml"); cfg = YAML.parse(text); });

    it("parses as YAML with the node's identity, etcd3 over TLS and the REST API over TLS with auth", () => {
      assert.equal(cfg.name, "pg2");
      assert.equal(cfg.scope, "pglocal");
      assert.equal(cfg.restapi.connect_address, "10.213.0.12:8008");
      assert.equal(cfg.restapi.certfile, "/etc/patroni/pki/node.crt");
      assert.equal(cfg.restapi.authentication.username, "patroni");
      assert.equal(cfg.restapi.authentication.password, TEST_SECRETS.restApiPassword, "quotes and $ survive YAML");
      assert.equal(cfg.etcd3.protocol, "https");
      assert.equal(cfg.etcd3.hosts, "10.213.0.11:2379,10.213.0.12:2379,10.213.0.13:2379");
      assert.ok(cfg.etcd3.cacert && cfg.etcd3.cert && cfg.etcd3.key);
      assert.equal(cfg.watchdog.mode, "off", "a string, not YAML 1.1's boolean off");
    });

    it("bootstraps with the configured timing, pg_rewind, failsafe and synchronous mode", () => {
      const d = cfg.bootstrap.dcs;
      assert.deepEqual([d.ttl, d.loop_wait, d.retry_timeout], [10, 2, 3]);
      assert.ok(d.loop_wait + 2 * d.retry_timeout <= d.ttl);
      assert.equal(d.postgresql.use_pg_rewind, true);
      assert.equal(d.failsafe_mode, true);
      assert.equal(d.synchronous_mode, true);
      assert.equal(d.postgresql.parameters.wal_log_hints, "on");
    });

    it("admits TLS only: hostssl lines, scram, replication by certificate, non-TLS rejected", () => {
      const hba: string[] = cfg.postgresql.pg_hba;
      assert.deepEqual(hba, cfg.bootstrap.pg_hba);
      assert.ok(hba.every((l) => !/\b(md5|trust|password)\b/.test(l)), hba.join("\n"));
      assert.ok(hba.filter((l) => l.startsWith("host ")).every((l) => l.endsWith("reject")));
      assert.ok(hba.includes("hostssl replication replicator 10.213.0.0/24 cert"));
      // pgBouncer's certificate, from the node itself only, as the pooled users only
      const pooler = hba.findIndex((l) => l === "hostssl all app,pgbouncer_auth 127.0.0.1/32 cert map=pooler");
      assert.ok(pooler >= 0 && pooler < hba.indexOf("hostssl all all 127.0.0.1/32 scram-sha-256"), hba.join("\n"));
      assert.deepEqual(cfg.postgresql.pg_ident, ["pooler pgbouncer app", "pooler pgbouncer pgbouncer_auth", "dump backup1 pgcluster_dump"]);
      // The logical dump: the backup host's certificate, from its address only, as the dump role only.
      const dump = hba.indexOf("hostssl all pgcluster_dump 10.213.0.30/32 cert map=dump");
      assert.ok(dump >= 0 && dump < hba.indexOf("hostssl all all 10.213.0.0/24 scram-sha-256"), hba.join("\n"));
      assert.ok(hba.includes("hostnossl all all 0.0.0.0/0 reject"));
      assert.equal(cfg.postgresql.parameters.ssl, "on");
      assert.equal(cfg.postgresql.authentication.replication.sslcert, "/etc/patroni/pki/replication.crt");
      assert.equal(cfg.postgresql.authentication.replication.sslmode, "verify-full");
    });

    it("passes Patroni 3.0.2's own validator (its live port probes answered offline)", () => {
      // The validator connects to the listen ports (must be free) and etcd (must answer); here
      // there is no cluster, so socket probes are answered by port: etcd up, listen ports free.
      const binDir = "/usr/lib/postgresql/15/bin";
      assert.ok(fs.existsSync(binDir), `${binDir} missing: .ci/run installs postgresql-15 (no cluster) for this check`);
      const file = path.join(tmp, "patroni.yml");
      fs.writeFileSync(file, text);
      const py = `
import socket, sys
socket.socket.connect_ex = lambda self, addr: 0 if addr[1] == 2379 else 111
from patroni.validator import schema
from patroni.config import Config
import yaml
errors = schema(yaml.safe_load(open(sys.argv[1])))
if errors:
    print("\\n".join(errors)); sys.exit(1)
print("valid")
`;
      const r = run("/usr/bin/python3", ["-c", py, file]); // Debian's python, where the patroni package lives
      assert.equal(r.code, 0, r.out);
      assert.match(r.out, /valid/);
    });
  });

  it("Patroni launcher: on 3.0.2 it patches the leader-key update to compare-and-swap and retries etcd's transport errors", () => {
    const file = path.join(tmp, "pgcluster-patroni.py");
    fs.writeFileSync(file, fileOf(step("pg1/patroni"), "/usr/local/lib/pgcluster/pgcluster-patroni"));
    const py = `
import importlib.util, sys
from patroni.dcs import etcd3
original = etcd3.Etcd3._update_leader
spec = importlib.util.spec_from_file_location("launcher", sys.argv[1])
spec.loader.exec_module(importlib.util.module_from_spec(spec))  # not __main__: Patroni does not start
print("update_leader patched:", etcd3.Etcd3._update_leader is not original)
for error, code in [("OK: HTTP status code 200; transport: missing content-type field", 2), ("etcdserver: request is too large", 2)]:
    try:
        etcd3._raise_for_data({"error": error, "code": code}, 500)
    except etcd3.Etcd3ClientError as e:
        print(type(e).__name__, "<-", error)
`;
    const r = run("/usr/bin/python3", ["-c", py, file]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /update_leader patched: True/);
    assert.match(r.out, /^Unavailable <- OK: HTTP status code 200; transport/m, "a gateway transport error is retried like Unavailable");
    assert.match(r.out, /^Unknown <- etcdserver: request is too large/m, "other errors keep their class");
  });

  it("pgbouncer.ini: TLS both ways, scram, auth_query through the dedicated user, pools from config", () => {
    const cfg = ini.parse(fileOf(step("pg1/pgbouncer"), "/etc/pgbouncer/pgbouncer.ini"));
    const b = cfg.pgbouncer;
    const listen = ini.parse(fileOf(step("pg1/pgbouncer"), "/etc/pgbouncer/listen.ini"));
    assert.equal(listen.listen_port, "6432");
    assert.equal(listen.listen_addr, "10.213.0.11,127.0.0.1");
    assert.equal(b.auth_type, "scram-sha-256");
    assert.equal(b.auth_user, "pgbouncer_auth");
    assert.equal(b.client_tls_sslmode, "require");
    assert.equal(b.server_tls_sslmode, "verify-full");
    assert.equal(b.pool_mode, "transaction");
    assert.equal(b.default_pool_size, "20");
    assert.match(b.auth_query, /pgbouncer\.get_auth\(\$1\)/);
    assert.match(cfg.databases["*"], /host=127\.0\.0\.1 port=5432/);
    const userlist = fileOf(step("pg1/pgbouncer"), "/etc/pgbouncer/userlist.txt");
    // only the auth user: application passwords stay in PostgreSQL
    assert.equal(userlist, `"pgbouncer_auth" "${TEST_SECRETS.pgbouncerAuthPassword.replace(/"/g, '""')}"\n`);
    // server logins by client certificate, never by a password
    assert.equal(b.server_tls_cert_file, "/etc/pgbouncer/pki/pooler.crt");
    assert.equal(b.server_tls_key_file, "/etc/pgbouncer/pki/pooler.key");
    assert.equal(fileOf(step("pg1/pgbouncer"), "/etc/pgbouncer/pki/pooler.crt"), pki.pooler.cert);
  });

  it("etcd env: https on both ports, client-cert auth; the full initial cluster in the bootstrap file", () => {
    const env = Object.fromEntries(
      fileOf(step("pg3/etcd"), "/etc/default/etcd").split("\n").filter((l) => l && !l.startsWith("#")).map((l) => l.split(/=(.*)/s).slice(0, 2)),
    );
    assert.equal(env.ETCD_NAME, "pg3");
    assert.equal(env.ETCD_LISTEN_PEER_URLS, "https://10.213.0.13:2380");
    assert.equal(env.ETCD_CLIENT_CERT_AUTH, "true");
    assert.equal(env.ETCD_PEER_CLIENT_CERT_AUTH, "true");
    assert.equal(env.ETCD_INITIAL_CLUSTER, undefined, "not in the file that restarts etcd");
    assert.match(fileOf(step("pg3/etcd"), "/etc/default/etcd-initial"), /^ETCD_INITIAL_CLUSTER=pg1=https:\/\/10\.213\.0\.11:2380,pg2=https:\/\/10\.213\.0\.12:2380,pg3=https:\/\/10\.213\.0\.13:2380$/m);
    assert.equal(env.ETCD_DATA_DIR, "/var/lib/etcd/pgcluster");
  });

  it("haproxy.cfg: 5000-5003/8404, https checks of /primary and /replica?lag=, passes haproxy -c", () => {
    const text = fileOf(step("lb1/haproxy"), "/etc/haproxy/haproxy.cfg");
    for (const p of ["5000", "5001", "5002", "5003", "8404"]) assert.match(text, new RegExp(`bind 10\\.213\\.0\\.10:${p}\\b`));
    assert.match(text, /option httpchk OPTIONS \/primary/);
    assert.match(text, /option httpchk OPTIONS \/replica\?lag=16777216/);
    assert.match(text, /check-ssl verify required ca-file/);
    assert.match(text, /on-marked-down shutdown-sessions/);
    assert.equal((text.match(/server pg\d 10\.213\.0\.1\d:6432 check port 8008/g) ?? []).length, 9);
    // Without pooler: the writer, and the readers (replicas within the lag limit, else the primary).
    assert.equal((text.match(/server pg\d 10\.213\.0\.1\d:5432 check port 8008/g) ?? []).length, 9);
    assert.match(text, /^frontend readers_direct\n    bind 10\.213\.0\.10:5003\n    bind 10\.213\.0\.5:5003 transparent\n    use_backend replicas_direct if \{ nbsrv\(replicas_direct\) gt 0 \}\n    default_backend readers_direct_fallback$/m);
    assert.match(text, /^backend replicas_direct\n    balance roundrobin\n    option httpchk OPTIONS \/replica\?lag=16777216\n/m);
    assert.match(text, /^backend readers_direct_fallback\n    option httpchk OPTIONS \/primary\n/m);
    // Validate with the real binary, its CA path pointed at a real CA file.
    const ca = path.join(tmp, "ca.crt");
    fs.writeFileSync(ca, fileOf(step("lb1/haproxy"), "/etc/haproxy/pki/ca.crt"));
    const cfg = path.join(tmp, "haproxy.cfg");
    // The metrics frontend's certificate and key (monitoring.enabled), as the step writes them.
    const pem = path.join(tmp, "node.pem");
    fs.writeFileSync(pem, fileOf(step("lb1/haproxy"), "/etc/haproxy/pki/node.pem"));
    fs.writeFileSync(cfg, text.replace(/\/etc\/haproxy\/pki\/ca\.crt/g, ca).replace(/\/etc\/haproxy\/pki\/node\.pem/g, pem));
    const r = run("haproxy", ["-c", "-f", cfg]);
    assert.equal(r.code, 0, r.out);
    // The local stack's balancers share a floating address: HAProxy binds it too (transparent:
    // the backup balancer does not hold it) and answers keepalived's health check on 8405.
    for (const p of ["5000", "5001", "5002", "8405"]) assert.match(text, new RegExp(`bind 10\\.213\\.0\\.5:${p} transparent\n`));
    assert.match(text, /monitor-uri \/health/);
    // HAProxy's exporter: TLS, the monitoring host and operators only, the login by its bcrypt hash.
    assert.match(text, /^frontend metrics\n(?:.*\n)*?    bind 10\.213\.0\.10:8406 ssl crt \/etc\/haproxy\/pki\/node\.pem\n    acl scrapers src 10\.213\.0\.1\/32 10\.213\.0\.40\/32\n    http-request deny unless scrapers\n/m);
    assert.match(text, /^    user prometheus password '\$2b\$10\$[./A-Za-z0-9]{53}'$/m);
    assert.match(text, /http-request use-service prometheus-exporter if \{ path \/metrics \}/);
  });

  describe("haproxy.cfg behind GCP's internal load balancer (prod: two balancers)", () => {
    const ENTRY = "10.30.0.100";
    let gcpPlan: Plan;
    let text: string;
    let lb: string;
    before(async () => {
      const spec = gcpStackSpec("prod");
      const hosts = hostsOf(spec, (i) => `10.30.0.${10 + i}`);
      // Node certificates do not matter to haproxy.cfg: the nodes' names are the local PKI's.
      const pair = { cert: "C", key: "K" };
      gcpPlan = compile(spec, hosts, { ...pki, nodes: Object.fromEntries(hosts.map((h) => [h.name, pair])) }, TEST_SECRETS, ENTRY);
      lb = hosts.find((h) => h.roles.includes("balancer"))!.address;
      text = fileOf(gcpPlan.steps.find((s) => s.id === "pgprod-lb-1/haproxy"), "/etc/haproxy/haproxy.cfg");
    });

    it("a GCP plan without the load balancer's address is refused at compile", () => {
      const spec = gcpStackSpec("prod");
      assert.throws(() => compile(spec, hostsOf(spec), pki, TEST_SECRETS), /a GCP plan needs the internal load balancer's address/);
    });

    it("binds the balancer's address and the load balancer's (transparent) on 5000-5003, 8404 and 8405; /health on 8405; passes haproxy -c", () => {
      for (const p of ["5000", "5001", "5002", "5003", "8404", "8405"]) {
        assert.match(text, new RegExp(`^    bind ${lb.replace(/\./g, "\\.")}:${p}$`, "m"), `${lb}:${p}`);
        assert.match(text, new RegExp(`^    bind 10\\.30\\.0\\.100:${p} transparent$`, "m"), `${ENTRY}:${p}`);
      }
      assert.match(text, /^frontend balancer_health\n    mode http\n(.*\n)*?    monitor-uri \/health\n    http-request deny\n/m);
      const ca = path.join(tmp, "gcp-ca.crt");
      fs.writeFileSync(ca, pki.caBundle);
      const cfg = path.join(tmp, "gcp-haproxy.cfg");
      // The metrics frontend's certificate and key (monitoring.enabled), as the step writes them.
    const pem = path.join(tmp, "node.pem");
    fs.writeFileSync(pem, fileOf(step("lb1/haproxy"), "/etc/haproxy/pki/node.pem"));
    fs.writeFileSync(cfg, text.replace(/\/etc\/haproxy\/pki\/ca\.crt/g, ca).replace(/\/etc\/haproxy\/pki\/node\.pem/g, pem));
      const r = run("haproxy", ["-c", "-f", cfg]);
      assert.equal(r.code, 0, r.out);
      assert.doesNotMatch(r.out, /ALERT|balancer_health|transparent/, r.out);
    });

    it("run in a scratch network namespace: binds the load balancer's address before it is local; once the local route exists (as GCP's guest agent adds it) /health answers 200 there, other paths 403", () => {
      // Paths HAProxy would use on a host point into a scratch directory; the user stays root
      // (no haproxy user inside an unprivileged namespace). Nothing outside the namespace is touched.
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgc-hap-"));
      fs.writeFileSync(path.join(dir, "ca.crt"), pki.caBundle);
      const cfg = text
        .replace(/\/etc\/haproxy\/pki\/ca\.crt/g, path.join(dir, "ca.crt"))
        .replace(/^\s*(user|group|daemon|log) .*$|^\s*daemon$/gm, "")
        .replace(/stats socket \S+/, `stats socket ${path.join(dir, "admin.sock")}`)
        .replace(/server-state-file \S+/, `server-state-file ${path.join(dir, "state")}`);
      fs.writeFileSync(path.join(dir, "haproxy.cfg"), cfg);
      const script = `
        set -u
        ip link set lo up && ip addr add "$2/32" dev lo || exit 2
        haproxy -db -f "$1/haproxy.cfg" >"$1/haproxy.log" 2>&1 & pid=$!
        for _ in $(seq 50); do curl -s -o /dev/null "http://$2:8405/health" && break; sleep 0.1; done
        code() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1"; }
        echo "before-route $(code "http://$3:8405/health")"
        ip route add local "$3/32" dev lo table local proto 66 || exit 3
        echo "own $(code "http://$2:8405/health")"
        echo "entry $(code "http://$3:8405/health")"
        echo "other $(code "http://$3:8405/stats")"
        kill "$pid"; wait "$pid" 2>/dev/null
        cat "$1/haproxy.log" >&2`;
      const unshare = process.getuid?.() === 0 ? ["-n"] : ["-r", "-n"];
      const r = spawnSync("unshare", [...unshare, "bash", "-c", script, "bash", dir, lb, ENTRY], { encoding: "utf8", timeout: 30_000 });
      fs.rmSync(dir, { recursive: true, force: true });
      assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
      assert.match(r.stdout, /^before-route 000$/m, "not reachable before the route: the bind did not need it");
      assert.match(r.stdout, /^own 200$/m, r.stdout + r.stderr);
      assert.match(r.stdout, /^entry 200$/m, r.stdout + r.stderr);
      assert.match(r.stdout, /^other 403$/m, r.stdout + r.stderr);
      assert.doesNotMatch(r.stderr, /cannot bind|balancer_health'? .*(error|fail)/i, r.stderr);
    });
  });
});
