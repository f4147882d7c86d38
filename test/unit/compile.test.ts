import { strict as assert } from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { spawnSync } from "child_process";
import { stepScript } from "../../roles/script";
import { compile, planGraph, ROLES, topoOrder } from "../../roles/compile";
import { checkShellReferences, run as runHandler, shellFn, type Action, type FileAction, type ShellFn } from "../../roles/step";
import { PRELUDE } from "../../roles/script";
import { shell as etcdShell } from "../../roles/etcd";
import type { Plan } from "../../roles/types";
import { localSpec, hostsOf, testPki, TEST_SECRETS, fileOf } from "../support/fixtures";
import { hostFirewall } from "../../roles/firewall";
import { run } from "../support/tools";
import { parseClusterSpec } from "../../model/config";
import { readStackFile } from "../../model/stackFile";

async function localPlan(): Promise<Plan> {
  const spec = localSpec();
  const hosts = hostsOf(spec);
  return compile(spec, hosts, await testPki(spec, hosts), TEST_SECRETS);
}

describe("compile()", () => {
  let plan: Plan;
  before(async () => { plan = await localPlan(); });

  it("is deterministic: the same inputs give the same bytes", async () => {
    const again = await localPlan();
    assert.equal(JSON.stringify(again), JSON.stringify(plan));
  });

  it("gives one step per host and role, with unique ids and digests of their scripts", () => {
    const ids = plan.steps.map((s) => s.id);
    assert.equal(new Set(ids).size, ids.length);
    assert.deepEqual(ids.filter((i) => i.startsWith("pg1/")).sort(), ["pg1/common", "pg1/database", "pg1/etcd", "pg1/exporters", "pg1/firewall", "pg1/patroni", "pg1/pgbackrest", "pg1/pgbouncer", "pg1/postgresql", "pg1/restart", "pg1/update"]);
    assert.deepEqual(ids.filter((i) => i.startsWith("lb1/")).sort(), ["lb1/common", "lb1/exporters", "lb1/firewall", "lb1/haproxy", "lb1/keepalived", "lb1/update"]);
    assert.deepEqual(ids.filter((i) => i.startsWith("backup1/")).sort(), ["backup1/backup", "backup1/common", "backup1/drill", "backup1/dump", "backup1/exporters", "backup1/firewall", "backup1/stanza", "backup1/update"]);
    // monitoring.enabled: the monitoring host has its exporters and Prometheus, nothing else.
    assert.deepEqual(ids.filter((i) => i.startsWith("mon1/")).sort(), ["mon1/common", "mon1/exporters", "mon1/firewall", "mon1/monitoring"]);
    const digests = new Set(plan.steps.map((s) => s.digest));
    assert.equal(digests.size, plan.steps.length, "every step's script differs");
  });

  it("orders cross-host work: all etcd members before any Patroni, the bootstrap member before replicas", () => {
    const order = topoOrder(plan.steps).map((s) => s.id);
    const at = (id: string) => order.indexOf(id);
    for (const e of ["pg1/etcd", "pg2/etcd", "pg3/etcd"])
      for (const p of ["pg1/patroni", "pg2/patroni", "pg3/patroni"]) assert.ok(at(e) < at(p), `${e} before ${p}`);
    assert.ok(at("pg1/patroni") < at("pg2/patroni") && at("pg1/patroni") < at("pg3/patroni"));
    const p2 = plan.steps.find((s) => s.id === "pg2/patroni")!;
    assert.ok(p2.after.includes("pg1/patroni"));
    const haproxy = plan.steps.find((s) => s.id === "lb1/haproxy")!;
    assert.ok(haproxy.after.includes("pg3/pgbouncer"));
    assert.ok(at("pg1/postgresql") < at("pg1/patroni"));
  });

  it("depends only on steps that exist, without cycles", () => {
    const ids = new Set(plan.steps.map((s) => s.id));
    for (const s of plan.steps) for (const a of s.after) assert.ok(ids.has(a), `${s.id} -> ${a}`);
    assert.equal(topoOrder(plan.steps).length, plan.steps.length);
  });

  it("changes only the affected steps when one setting changes", async () => {
    const sf = readStackFile("local");
    const spec = parseClusterSpec({ ...sf.values, pgbouncer: { defaultPoolSize: 33 } }, { stack: "local", secretKeys: new Set(), source: "t" });
    const hosts = hostsOf(spec);
    const other = compile(spec, hosts, await testPki(spec, hosts), TEST_SECRETS);
    const changed = other.steps.filter((s, i) => s.digest !== plan.steps[i].digest).map((s) => s.id);
    // The monitoring host's alert rules name the pool size (PgBouncerClientsWaiting's description).
    assert.deepEqual(changed, ["pg1/pgbouncer", "pg2/pgbouncer", "pg3/pgbouncer", "mon1/monitoring"]);
  });

  it("ends every script with the handlers and the machine-readable result line", () => {
    for (const s of plan.steps) {
      assert.match(stepScript(s), /^#!\/bin\/bash\nset -euo pipefail\n/);
      assert.match(stepScript(s), /pgc_handlers\npgc_result\n\} <\/dev\/null\n$/);
      assert.ok(stepScript(s).includes(`PGC_STEP='${s.id}'`));
    }
  });

  it("puts secrets only inside quoted here-documents or bash-quoted words, never in a command line", () => {
    for (const s of plan.steps) {
      const lines = stepScript(s).split("\n");
      let inDoc: string | undefined;
      for (const line of lines) {
        if (inDoc) { if (line === inDoc) inDoc = undefined; continue; }
        const m = /<<'([A-Z_0-9a-z]+)'$/.exec(line);
        if (m) { inDoc = m[1]; continue; }
        for (const secret of Object.values(TEST_SECRETS)) {
          if (!line.includes("quote")) continue;
          // the one place a secret is a word: the argument of pgc_curl_as, a shell function
          // (no process, no argv) whose printf builtin feeds curl's config on stdin
          if (line.includes(secret.slice(0, 10))) {
            assert.match(line, /^\s*pgc_curl_as '[^']*' '/, `${s.id}: secret on a command line: ${line}`);
            const body = stepScript(s).slice(stepScript(s).indexOf("\npgc_curl_as() {"), stepScript(s).indexOf("\n}\n", stepScript(s).indexOf("\npgc_curl_as() {")));
            assert.ok(body.includes(`printf 'user = "%s:%s"\\n' "$user" "$password" | curl -K - "$@"`), body);
          }
        }
      }
    }
  });

  it("every script passes bash -n and shellcheck", function () {
    this.timeout(120000);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgc-plan-"));
    const files = plan.steps.map((s) => {
      const f = path.join(dir, s.id.replace("/", "_") + ".sh");
      fs.writeFileSync(f, stepScript(s));
      return f;
    });
    for (const f of files) {
      const r = run("bash", ["-n", f]);
      assert.equal(r.code, 0, `${f}: ${r.out}`);
    }
    const sc = run("shellcheck", ["--severity=warning", "--shell=bash", ...files]);
    assert.equal(sc.code, 0, sc.out);
    fs.rmSync(dir, { recursive: true });
  });
});

describe("roles as typed units", () => {
  it("the plan's graph comes from the spec alone and is the compiled plan's, step for step (local and GCP stacks)", () => {
    for (const stack of ["local", "dev", "prod"]) {
      const sf = readStackFile(stack);
      const key = "-----BEGIN OPENSSH PRIVATE KEY-----\ntest\n-----END OPENSSH PRIVATE KEY-----\n";
      const spec = stack === "local" ? localSpec() : parseClusterSpec({ ...sf.values, sshPrivateKey: key }, { stack, secretKeys: new Set(["sshPrivateKey"]), source: stack });
      const graph = planGraph(spec); // no address, certificate or password exists yet
      const hosts = hostsOf(spec);
      const pair = { cert: "CERT", key: "KEY" };
      const pki = { ca: "CA", caBundle: "CA", nodes: Object.fromEntries(hosts.map((h) => [h.name, pair])), replication: pair, pooler: pair };
      // GCP: the internal load balancer's address, known only once it is reserved.
      const plan = compile(spec, hosts, pki, TEST_SECRETS, spec.provider === "gcp" ? "10.99.0.200" : undefined);
      assert.deepEqual(plan.steps.map(({ id, host, role, after }) => ({ id, host, role, after })), graph, stack);
      assert.deepEqual(new Set(graph.map((s) => s.role)), new Set(ROLES.filter((r) => r.hosts(spec).length).map((r) => r.name)), stack);
    }
  });

  it("GCP with monitoring.enabled: the monitoring instance gets common, exporters, firewall and monitoring; Prometheus scrapes every node; the host firewalls admit it", () => {
    const sf = readStackFile("dev");
    const key = "-----BEGIN OPENSSH PRIVATE KEY-----\ntest\n-----END OPENSSH PRIVATE KEY-----\n";
    const spec = parseClusterSpec({ ...sf.values, monitoring: { enabled: true }, network: { ...(sf.values.network as object), adminCidrs: ["10.20.5.0/24"] }, sshPrivateKey: key }, { stack: "dev", secretKeys: new Set(["sshPrivateKey"]), source: "dev" });
    const hosts = hostsOf(spec);
    const pair = { cert: "CERT", key: "KEY" };
    const pki = { ca: "CA", caBundle: "CA", nodes: Object.fromEntries(hosts.map((h) => [h.name, pair])), replication: pair, pooler: pair };
    const plan = compile(spec, hosts, pki, TEST_SECRETS, "10.99.0.200");
    assert.deepEqual(plan.steps.map(({ id, host, role, after }) => ({ id, host, role, after })), planGraph(spec));
    const ids = plan.steps.map((s) => s.id);
    assert.deepEqual(ids.filter((i) => i.startsWith("pgdev-mon-1/")).sort(), ["pgdev-mon-1/common", "pgdev-mon-1/exporters", "pgdev-mon-1/firewall", "pgdev-mon-1/monitoring"]);
    assert.deepEqual(ids.filter((i) => i.endsWith("/monitoring")), ["pgdev-mon-1/monitoring"], "one Prometheus");
    for (const h of hosts) assert.ok(ids.includes(`${h.name}/exporters`), `${h.name}: exporters`);
    // Prometheus's targets: every host's node exporter, the nodes' postgres_exporter and Patroni, etcd, HAProxy's exporter.
    const promYml = fileOf(plan.steps.find((s) => s.id === "pgdev-mon-1/monitoring"), "/etc/prometheus/prometheus.yml");
    const addr = (r: string) => hosts.filter((h) => h.roles.includes(r as never)).map((h) => h.address);
    for (const [port, addrs] of [[9100, hosts.map((h) => h.address)], [9187, addr("postgres")], [8008, addr("postgres")], [2379, addr("etcd")], [8406, addr("balancer")]] as const)
      for (const a of addrs) assert.ok(promYml.includes(`"${a}:${port}"`), `target ${a}:${port}`);
    // The nodes' nftables admit the monitoring instance to what it scrapes; its own admits operators to 9090.
    const ctx = { spec, hosts, pki, secrets: TEST_SECRETS };
    const mon = hosts.find((h) => h.kind === "monitoring")!;
    for (const h of hosts) {
      const fromMon = hostFirewall(ctx, h).admissions.filter((a) => a.source === `${mon.address}/32`).map((a) => a.port).sort((a, b) => a - b);
      const want = h === mon ? [9090, 9100] : h.roles.includes("postgres") ? [2379, 8008, 9100, 9187] : h.roles.includes("balancer") ? [8406, 9100] : [2379, 9100];
      assert.deepEqual(fromMon, want, `${h.name}: admits the monitoring instance to`);
    }
    assert.deepEqual(hostFirewall(ctx, mon).admissions.filter((a) => a.port === 9090).map((a) => a.source).sort(), ["10.20.5.0/24", `${mon.address}/32`]);
  });

  it("handlers and waits are typed references: the script says exactly the functions the step carries", async () => {
    const plan = await localPlan();
    const etcd = plan.steps.find((s) => s.id === "pg1/etcd")!;
    // (The join drop-in only asks systemd to re-read units: it matters at a member's first start.)
    const restarts = etcd.actions.filter((a): a is FileAction => a.kind === "file" && !a.path.startsWith("/etc/systemd/system/etcd.service.d/")).flatMap((f) => f.notify);
    assert.ok(restarts.length > 0 && restarts.every((h) => h.kind === "run" && h.fn === etcdShell.restart && h.unit === "etcd"));
    assert.match(stepScript(etcd), /--notify 'run:pgc_etcd_restart:etcd'/);
    const patroni = plan.steps.find((s) => s.id === "pg2/patroni")!;
    const waits = patroni.actions.filter((a) => a.kind === "wait").map((a) => (a as { check: ShellFn }).check.name);
    assert.deepEqual(waits, ["pgc_etcd_quorum", "pgc_patroni_health"]);
  });

  it("a reference to a function its template does not define, or to a template the step does not carry, fails the compile naming both", () => {
    const fn = shellFn("etcd/etcd.sh", "pgc_etcd_restart");
    const shell = (template: string, source: string): Action => ({ kind: "shell", template, source });
    const file = (notify: ShellFn): Action => ({ kind: "file", path: "/x", content: "x", owner: "root", group: "root", mode: "0644", secret: false, notify: [runHandler(notify)] });
    assert.doesNotThrow(() => checkShellReferences("pg1/etcd", [shell("etcd/etcd.sh", "pgc_etcd_restart() {\n  :\n}"), file(fn)], PRELUDE));
    assert.throws(() => checkShellReferences("pg1/etcd", [shell("etcd/etcd.sh", "pgc_etcd_restart_v2() {\n  :\n}"), file(fn)], PRELUDE),
      /step pg1\/etcd:\n  - file refers to pgc_etcd_restart, which etcd\/etcd.sh does not define/);
    assert.throws(() => checkShellReferences("pg1/etcd", [file(fn)], PRELUDE), /file refers to pgc_etcd_restart of etcd\/etcd.sh, but the step does not carry etcd\/etcd.sh/);
    assert.throws(() => checkShellReferences("pg1/x", [shell("x/y.sh", "pgc_wait 5 'x' pgc_nowhere")], PRELUDE), /its shell runs pgc_nowhere, which no shell of the step defines/);
    assert.doesNotThrow(() => checkShellReferences("pg1/x", [shell("x/y.sh", 'while read -r pgc_v; do echo "$pgc_v ${pgc_v}"; done; pgc_w=1')], PRELUDE), "variables are not functions");
  });

  describe("renaming a shell function in a role's shell fails compile(), not a run on a host", function () {
    this.timeout(120_000);
    const root = path.join(__dirname, "..", "..");
    let tree: string;
    before(() => {
      // A copy of the code: the real compile() reads that copy's role shell.
      tree = fs.mkdtempSync(path.join(os.tmpdir(), "pgc-rename-"));
      for (const d of ["model", "roles", "templates", "local", "test"]) fs.cpSync(path.join(root, d), path.join(tree, d), { recursive: true });
      for (const f of ["package.json", "tsconfig.json", "Pulumi.local.yaml"]) fs.copyFileSync(path.join(root, f), path.join(tree, f));
      fs.symlinkSync(path.join(root, "node_modules"), path.join(tree, "node_modules"));
    });
    after(() => fs.rmSync(tree, { recursive: true, force: true }));

    const compileIn = (template: string, from: string, to: string) => {
      const file = path.join(tree, "roles", template + ".hbs");
      const original = fs.readFileSync(file, "utf8");
      assert.ok(original.includes(from), `${template} has no ${from}`);
      fs.writeFileSync(file, original.split(from).join(to));
      try {
        const code = `const fx = require("./test/support/fixtures"); const { compile } = require("./roles/compile");
          const spec = fx.localSpec(); const hosts = fx.hostsOf(spec); const pair = { cert: "C", key: "K" };
          compile(spec, hosts, { ca: "C", caBundle: "C", nodes: Object.fromEntries(hosts.map((h) => [h.name, pair])), replication: pair, pooler: pair }, fx.TEST_SECRETS);
          console.log("COMPILED");`;
        const r = spawnSync(path.join(root, "node_modules", ".bin", "tsx"), ["-e", code], { cwd: tree, encoding: "utf8" });
        return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
      } finally {
        fs.writeFileSync(file, original);
      }
    };

    it("the copy compiles as it is (the check below is not a broken copy)", () => {
      const r = compileIn("etcd/etcd.sh", "pgc_etcd_restart()", "pgc_etcd_restart()");
      assert.equal(r.code, 0, r.out);
      assert.match(r.out, /COMPILED/);
    });

    it("a handler's function (pgc_etcd_restart, notified by etcd's files)", () => {
      const r = compileIn("etcd/etcd.sh", "pgc_etcd_restart()", "pgc_etcd_restart_renamed()");
      assert.notEqual(r.code, 0);
      assert.match(r.out, /step pg1\/etcd:\n\s+- file refers to pgc_etcd_restart, which etcd\/etcd.sh does not define/);
    });

    it("a wait's function (pgc_patroni_health)", () => {
      const r = compileIn("patroni/patroni.sh", "pgc_patroni_health()", "pgc_patroni_healthy()");
      assert.notEqual(r.code, 0);
      assert.match(r.out, /step pg1\/patroni:[^]*wait refers to pgc_patroni_health, which patroni\/patroni.sh does not define/);
    });

    it("a function only the shell itself calls (pgc_etcdctl_at, in etcdctl.sh)", () => {
      const r = compileIn("etcd/etcdctl.sh", "pgc_etcdctl_at()", "pgc_etcdctl_on()");
      assert.notEqual(r.code, 0);
      assert.match(r.out, /its shell runs pgc_etcdctl_at, which no shell of the step defines/);
    });
  });
});
