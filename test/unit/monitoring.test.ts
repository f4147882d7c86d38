// Monitoring config (model/config.ts `monitoring`) and the files the monitoring role will install,
// checked offline by the tools that read them: promtool check web-config / check config, amtool
// check-config — each also shown to refuse a broken file, so the check bites.
import { strict as assert } from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import YAML from "yaml";
import { ConfigError, parseClusterSpec, type ClusterSpec } from "../../model/config";
import { readStackFile } from "../../model/stackFile";
import { renderAlertRules } from "../../roles/monitoring/alerts";
import { MONITORING_PATHS, renderAlertmanagerConfig, renderPrometheusConfig, scrapeJobs } from "../../roles/monitoring/configs";
import { BCRYPT_HASH, metricsPasswordHash, renderExporterWebConfig } from "../../roles/exporters/webConfig";
import bcryptjs from "bcryptjs";
import { gcpStackSpec, hostsOf, localSpec } from "../support/fixtures";
import { run } from "../support/tools";

/** The local stack (which has a monitoring host) with these monitoring settings, on unless they say otherwise. */
function localWith(monitoring: Record<string, unknown>): ClusterSpec {
  const sf = readStackFile("local");
  return parseClusterSpec({ ...sf.values, monitoring: { enabled: true, ...monitoring } }, { stack: "local", secretKeys: new Set(), source: "test" });
}
const problems = (monitoring: Record<string, unknown>): string[] => {
  try { localWith(monitoring); return []; } catch (e) { if (e instanceof ConfigError) return e.problems; throw e; }
};

/** A bcrypt hash made the way the hosts make it (Debian 12's python3 crypt, libxcrypt). */
function bcrypt(password: string): string {
  const r = spawnSync("/usr/bin/python3", ["-W", "ignore", "-c", "import crypt,sys; print(crypt.crypt(sys.stdin.read(), crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1024)))"], { input: password, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`python3 crypt failed: ${r.stderr}`);
  return r.stdout.trim();
}

describe("monitoring config", () => {
  it("is off by default, so the plans of existing stacks are unchanged", () => {
    const s = gcpStackSpec("dev");
    assert.deepEqual(s.monitoring, { enabled: false, scrapeIntervalSeconds: 15, retentionDays: 15, alertmanager: {}, alerts: { backupMaxAgeHours: 26, fullBackupMaxAgeHours: 170, restoreDrillMaxAgeHours: 864, slotRetainedWalMb: 1024 } });
  });

  it("the local stack has it on, with its monitoring host", () => {
    const s = localWith({ enabled: true });
    assert.equal(s.monitoring.enabled, true);
    assert.deepEqual(s.hosts.filter((h) => h.roles.includes("monitoring")).map((h) => h.name), ["mon1"]);
  });

  it("refuses a monitoring host that is missing, doubled, shared with another role, or without monitoring.enabled", () => {
    const sf = readStackFile("local");
    const hosts = sf.values.hosts as { name: string; address: string; roles: string[] }[];
    const parse = (over: Record<string, unknown>) => {
      try { parseClusterSpec({ ...sf.values, ...over }, { stack: "local", secretKeys: new Set(), source: "test" }); return ""; } catch (e) { if (e instanceof ConfigError) return e.problems.join("\n"); throw e; }
    };
    const without = hosts.filter((h) => !h.roles.includes("monitoring"));
    assert.match(parse({ hosts: without }), /pgcluster:hosts: gives no monitoring host, but monitoring\.enabled is true/);
    assert.match(parse({ hosts: [...hosts, { name: "mon2", address: "10.213.0.41", roles: ["monitoring"] }] }), /gives 2 monitoring hosts \(mon1, mon2\)/);
    assert.match(parse({ hosts: hosts.map((h) => (h.name === "mon1" ? { ...h, roles: ["monitoring", "backup"] } : h)) }), /host "mon1" has role monitoring with backup: the monitoring host must be a host of its own/);
    assert.match(parse({ monitoring: { enabled: false } }), /host "mon1" has role monitoring, but monitoring\.enabled is false/);
    assert.equal(parse({}), "", "the local stack as it is parses");
  });

  it("the metrics password's hash is bcrypt, verifies, stays the same for the same password and differs for another", () => {
    const pw = `pw-'"$\\x`;
    const h = metricsPasswordHash(pw);
    assert.match(h, BCRYPT_HASH);
    assert.ok(bcryptjs.compareSync(pw, h), "the hash verifies the password");
    assert.ok(!bcryptjs.compareSync(`${pw}x`, h), "and no other");
    assert.equal(metricsPasswordHash(pw), h, "a re-apply writes the same bytes");
    assert.notEqual(metricsPasswordHash(`${pw}2`), h);
    assert.throws(() => metricsPasswordHash(""), /empty/);
  });

  it("takes valid values", () => {
    const s = localWith({ scrapeIntervalSeconds: 30, retentionDays: 90, alertmanager: { webhookUrl: "https://hooks.example.com:8443/alert/pg_cluster-1" }, alerts: { backupMaxAgeHours: 50 } });
    assert.equal(s.monitoring.alertmanager.webhookUrl, "https://hooks.example.com:8443/alert/pg_cluster-1");
    assert.equal(s.monitoring.alerts.backupMaxAgeHours, 50);
    assert.equal(s.monitoring.alerts.fullBackupMaxAgeHours, 170);
  });

  it("refuses hostile and out-of-range values in every key, naming the key", () => {
    const hostileUrls = [
      "http://hooks.example.com/x", // plain text
      "https://user:pw@hooks.example.com/x", "https://hooks.example.com/x?token=1", "https://hooks.example.com/x#f",
      "https://hooks.example.com/x\nurl: https://evil", "https://hooks.example.com/\"x", "https://hooks.example.com/$(id)",
      "https://hooks.example.com/ x", "https://hooks.example.com:99999/x", "https://-bad.example.com/", "file:///etc/passwd", "",
      `https://hooks.example.com/${"a".repeat(500)}`,
    ];
    for (const url of hostileUrls)
      assert.match(problems({ alertmanager: { webhookUrl: url } }).join("\n"), /pgcluster:monitoring\.alertmanager\.webhookUrl: /, JSON.stringify(url));
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ enabled: "yes" }, /monitoring\.enabled/],
      [{ scrapeIntervalSeconds: 4 }, /monitoring\.scrapeIntervalSeconds: must be at least 5/],
      [{ scrapeIntervalSeconds: 31 }, /monitoring\.scrapeIntervalSeconds: must be at most 30 \(seconds\): the alert rules wait 1 min/],
      [{ scrapeIntervalSeconds: "15s" }, /monitoring\.scrapeIntervalSeconds/],
      [{ retentionDays: 0 }, /monitoring\.retentionDays/],
      [{ retentionDays: 1.5 }, /monitoring\.retentionDays: must be a whole number/],
      [{ alerts: { backupMaxAgeHours: "26h" } }, /monitoring\.alerts\.backupMaxAgeHours/],
      [{ alerts: { fullBackupMaxAgeHours: 0 } }, /monitoring\.alerts\.fullBackupMaxAgeHours/],
      [{ alerts: { restoreDrillMaxAgeHours: 1e9 } }, /monitoring\.alerts\.restoreDrillMaxAgeHours/],
      [{ alerts: { slotRetainedWalMb: 8 } }, /monitoring\.alerts\.slotRetainedWalMb/],
      [{ alerts: { slotRetainedWalMb: "1 or vector(1)" } }, /monitoring\.alerts\.slotRetainedWalMb/],
      [{ alerts: { other: 1 } }, /monitoring\.alerts\.other: unknown key/],
      [{ webhook: "https://x.example.com" }, /monitoring\.webhook: unknown key/],
    ];
    for (const [value, re] of cases) assert.match(problems(value).join("\n"), re, JSON.stringify(value));
  });
});

describe("monitoring files, checked by promtool and amtool", function () {
  this.timeout(60_000);
  let tmp: string;
  before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pgc-mon-")); });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const write = (name: string, text: string) => { const p = path.join(tmp, name); fs.writeFileSync(p, text); return p; };

  it("an exporter's web config (TLS with the node certificate, basic auth with a bcrypt hash) passes promtool check web-config; a broken one does not", () => {
    const password = `test-metrics-'quote"dq$dollar`;
    const hash = bcrypt(password);
    // promtool loads the key pair: a throwaway one (not the project's PKI).
    const [certFile, keyFile] = [path.join(tmp, "node.crt"), path.join(tmp, "node.key")];
    const made = run("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", keyFile, "-out", certFile, "-subj", "/CN=pg1", "-days", "1"]);
    assert.equal(made.code, 0, made.out);
    const good = write("web.yml", renderExporterWebConfig({ certFile, keyFile, passwordHash: hash }));
    const text = fs.readFileSync(good, "utf8");
    assert.ok(!text.includes(password), "the password itself is never in the file");
    assert.deepEqual(YAML.parse(text).basic_auth_users, { prometheus: hash });
    const ok = run("promtool", ["check", "web-config", good]);
    assert.equal(ok.code, 0, ok.out);
    const bad = write("web-bad.yml", text.replace("min_version: TLS12", "min_version: TLS9"));
    assert.notEqual(run("promtool", ["check", "web-config", bad]).code, 0, "an unknown TLS version must be refused");
    const noKey = write("web-nokey.yml", text.replace(/ {2}key_file: .*\n/, ""));
    assert.notEqual(run("promtool", ["check", "web-config", noKey]).code, 0, "a certificate without its key must be refused");
    assert.throws(() => renderExporterWebConfig({ certFile: "/c", keyFile: "/k", passwordHash: password }), /not a bcrypt hash/);
    assert.throws(() => renderExporterWebConfig({ certFile: "/c", keyFile: "/k", passwordHash: `${hash}\nbasic_auth_users: {}` }), /not a bcrypt hash/);
  });

  it("prometheus.yml scrapes every target of the cluster by host name over TLS, and passes promtool check config; a broken one does not", () => {
    const spec = localSpec();
    const hosts = hostsOf(spec);
    // Files the config names must exist for promtool: point them into the scratch directory.
    const paths = { ...MONITORING_PATHS };
    for (const k of Object.keys(paths) as (keyof typeof paths)[]) paths[k] = path.join(tmp, path.basename(paths[k]));
    fs.writeFileSync(paths.rules, renderAlertRules(spec));
    for (const k of ["ca", "clientCert", "clientKey", "metricsPassword"] as const) fs.writeFileSync(paths[k], "x\n");
    const text = renderPrometheusConfig({ ...spec, monitoring: { ...spec.monitoring, enabled: true } }, hosts, paths);
    const cfg = YAML.parse(text);
    const byJob = Object.fromEntries(cfg.scrape_configs.map((j: any) => [j.job_name, j]));
    const instances = (job: string) => byJob[job].static_configs.map((s: any) => s.labels.instance).sort();
    const targets = (job: string) => byJob[job].static_configs.flatMap((s: any) => s.targets).sort();
    const db = hosts.filter((h) => h.roles.includes("postgres"));
    assert.deepEqual(instances("node"), hosts.map((h) => h.name).sort());
    assert.deepEqual(instances("postgres"), db.map((h) => h.name).sort());
    assert.deepEqual(targets("patroni"), db.map((h) => `${h.address}:8008`).sort());
    assert.deepEqual(targets("etcd"), hosts.filter((h) => h.roles.includes("etcd")).map((h) => `${h.address}:2379`).sort());
    assert.deepEqual(instances("haproxy"), hosts.filter((h) => h.roles.includes("balancer")).map((h) => h.name).sort());
    assert.deepEqual(targets("haproxy"), hosts.filter((h) => h.roles.includes("balancer")).map((h) => `${h.address}:8406`).sort());
    assert.deepEqual(targets("prometheus"), ["10.213.0.40:9090"]);
    assert.equal(byJob.pgbouncer, undefined, "pgBouncer's metrics come with node exporter's textfiles");
    for (const job of ["prometheus", "node", "postgres", "patroni", "etcd", "haproxy"]) {
      assert.equal(byJob[job].scheme, "https", job);
      assert.equal(byJob[job].tls_config.ca_file, paths.ca, job);
    }
    assert.equal(byJob.node.basic_auth.username, "prometheus");
    assert.equal(byJob.node.basic_auth.password_file, paths.metricsPassword, "the password is read from a file, never written in the config");
    assert.equal(cfg.global.scrape_interval, "15s");
    assert.equal(cfg.global.external_labels.cluster, "pglocal");
    const good = write("prometheus.yml", text);
    const ok = run("promtool", ["check", "config", good]);
    assert.equal(ok.code, 0, ok.out);
    assert.match(ok.out, /SUCCESS: 27 rules found/);
    const bad = write("prometheus-bad.yml", text.replace("job_name: postgres", "job_name: node"));
    const refused = run("promtool", ["check", "config", bad]);
    assert.notEqual(refused.code, 0, "two jobs of one name must be refused");
    assert.match(refused.out, /multiple scrape configs with job name "node"/);
  });

  it("a hostile host name or address is refused at render time", () => {
    const spec = localSpec();
    const hosts = hostsOf(spec);
    assert.throws(() => renderPrometheusConfig(spec, [{ ...hosts[0], name: 'x"}\n- job_name: evil' }]), /host name/);
    assert.throws(() => renderPrometheusConfig(spec, [{ ...hosts[0], address: "10.0.0.1:1/../x" }]), /host address/);
    assert.equal(scrapeJobs(hosts).find((j) => j.name === "pgbouncer"), undefined);
  });

  it("alertmanager.yml with and without a webhook passes amtool check-config; a broken one does not", () => {
    const spec = localSpec();
    const withHook = renderAlertmanagerConfig({ ...spec, monitoring: { ...spec.monitoring, alertmanager: { webhookUrl: "https://hooks.example.com/pg" } } });
    assert.equal(YAML.parse(withHook).receivers[0].webhook_configs[0].url, "https://hooks.example.com/pg");
    for (const [name, text] of [["am-hook.yml", withHook], ["am-none.yml", renderAlertmanagerConfig(spec)]]) {
      const r = run("amtool", ["check-config", write(name, text)]);
      assert.equal(r.code, 0, r.out);
      assert.match(r.out, /SUCCESS/);
    }
    const bad = write("am-bad.yml", withHook.replace("receiver: pgcluster\n  group_by", "receiver: nobody\n  group_by"));
    const refused = run("amtool", ["check-config", bad]);
    assert.notEqual(refused.code, 0, "a route to an undefined receiver must be refused");
  });
});
