// The alert rules (templates/monitoring/alerts.yml.hbs) under promtool: `check rules`, and
// `test rules` with the cases in test/unit/alerts/*.promtool.yml, where every rule fires in
// one case and stays silent in another. promtool comes with Debian's prometheus (.ci/run).
import { strict as assert } from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import YAML from "yaml";
import type { ClusterSpec, HostSpec } from "../../model/config";
import { renderAlertRules } from "../../roles/monitoring/alerts";
import { render } from "../../roles/render";
import { localSpec } from "../support/fixtures";
import { run } from "../support/tools";

const CASES = path.join(__dirname, "alerts");
interface Rule { alert: string; expr: string; for?: string; labels?: Record<string, string>; annotations?: Record<string, string> }
const rulesOf = (text: string): Rule[] => (YAML.parse(text) as { groups: { rules: Rule[] }[] }).groups.flatMap((g) => g.rules);

/** The spec the "changed" cases are written for (every value the rules take differs from the defaults). */
function changedSpec(): ClusterSpec {
  const s = localSpec();
  const host = (name: string, roles: HostSpec["roles"]): HostSpec => ({ name, roles, address: "10.0.0.1", sshUser: "root", sshPort: 22, kind: "static" });
  return {
    ...s,
    clusterName: "orders",
    hosts: [...["db1", "db2", "db3", "db4", "db5"].map((n) => host(n, ["etcd", "postgres"])), host("lb1", ["balancer"])],
    patroni: { ...s.patroni, maximumLagOnFailover: 8388608 },
    backup: { ...s.backup, enabled: true, archiveTimeout: 300 },
    tls: { ...s.tls, earlyRenewalHours: 48 },
    pgbouncer: { ...s.pgbouncer, maxClientConn: 100 },
    monitoring: { ...s.monitoring, alerts: { backupMaxAgeHours: 50, fullBackupMaxAgeHours: 400, restoreDrillMaxAgeHours: 24, slotRetainedWalMb: 64 } },
  };
}

/**
 * Runs `promtool test rules` on case files against `rules`, in a directory of its own. `strip`:
 * without annotations, which promtool compares verbatim (annotations.promtool.yml checks them).
 */
function promtoolTest(rules: string, caseFiles: string[], strip = true): { code: number; out: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgc-alerts-"));
  try {
    const doc = YAML.parse(rules);
    if (strip) for (const g of doc.groups) for (const r of g.rules) delete r.annotations;
    fs.writeFileSync(path.join(dir, "alerts.yml"), YAML.stringify(doc));
    for (const f of caseFiles) fs.copyFileSync(path.join(CASES, f), path.join(dir, f));
    return run("promtool", ["test", "rules", ...caseFiles.map((f) => path.join(dir, f))]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Alert names a case file expects firing, and those it expects silent. */
function coverage(files: string[]): { fires: Set<string>; silent: Set<string> } {
  const fires = new Set<string>(), silent = new Set<string>();
  for (const f of files) {
    const doc = YAML.parse(fs.readFileSync(path.join(CASES, f), "utf8")) as { tests: { alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[] }[] };
    for (const t of doc.tests) for (const a of t.alert_rule_test ?? []) (a.exp_alerts?.length ? fires : silent).add(a.alertname);
  }
  return { fires, silent };
}

describe("alert rules (promtool)", function () {
  this.timeout(240_000);
  let rules: string;
  let backupSpec: ClusterSpec;
  before(() => {
    const s = localSpec();
    // The local stack takes backups; said here so the test does not depend on it.
    backupSpec = { ...s, backup: { ...s.backup, enabled: true } };
    rules = renderAlertRules(backupSpec);
  });

  it("promtool check rules accepts the rendered rules and refuses a broken rule", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgc-alerts-"));
    try {
      const good = path.join(dir, "alerts.yml"), bad = path.join(dir, "bad.yml");
      fs.writeFileSync(good, rules);
      const ok = run("promtool", ["check", "rules", good]);
      assert.equal(ok.code, 0, ok.out);
      assert.match(ok.out, new RegExp(`SUCCESS: ${rulesOf(rules).length} rules found`));
      fs.writeFileSync(bad, rules.replace("patroni_pending_restart == 1", "patroni_pending_restart == ("));
      const refused = run("promtool", ["check", "rules", bad]);
      assert.notEqual(refused.code, 0, "a rule that does not parse must be refused");
      assert.match(refused.out, /PostgresPendingRestart|parse error/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("every rule has a severity and a summary and description (with its first response)", () => {
    for (const r of rulesOf(rules)) {
      assert.ok(["critical", "warning", "info"].includes(r.labels?.severity ?? ""), `${r.alert}: severity`);
      assert.ok(r.annotations?.summary, `${r.alert}: summary`);
      assert.match(r.annotations?.description ?? "", /First response: /, `${r.alert}: description`);
    }
  });

  it("every rule fires in a promtool case and stays silent in another", () => {
    const { fires, silent } = coverage(["defaults.promtool.yml", "defaults-days.promtool.yml"]);
    for (const { alert } of rulesOf(rules)) {
      assert.ok(fires.has(alert), `${alert} has no case where it fires`);
      assert.ok(silent.has(alert), `${alert} has no case where it stays silent`);
    }
    const known = new Set(rulesOf(rules).map((r) => r.alert));
    for (const name of [...fires, ...silent]) assert.ok(known.has(name), `a case names ${name}, which is no rule`);
  });

  it("promtool test rules: the cases pass on the rules rendered from the defaults", () => {
    const r = promtoolTest(rules, ["defaults.promtool.yml", "defaults-days.promtool.yml"]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /SUCCESS/);
  });

  it("the cases bite: rules rendered with another failover lag limit fail them", () => {
    const s = backupSpec;
    const r = promtoolTest(renderAlertRules({ ...s, patroni: { ...s.patroni, maximumLagOnFailover: 3_000_000 } }), ["defaults.promtool.yml"]);
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /FAILED:[\s\S]*alertname: PatroniReplicaLagOverFailoverLimit/);
  });

  it("changed config values reach the rules (lag limit, etcd quorum, archive timeout, backup and drill ages, renewal window, pgBouncer limit, slot WAL limit)", () => {
    const changed = renderAlertRules(changedSpec());
    const r = promtoolTest(changed, ["changed.promtool.yml", "changed-days.promtool.yml"]);
    assert.equal(r.code, 0, r.out);
    // And the defaults fail those cases: each is written where the two differ.
    const withDefaults = promtoolTest(rules, ["changed.promtool.yml"]);
    assert.equal(withDefaults.code, 1, withDefaults.out);
  });

  it("annotations name the host and the figure (promtool, with the annotations as rendered)", () => {
    const r = promtoolTest(rules, ["annotations.promtool.yml"], false);
    assert.equal(r.code, 0, r.out);
  });

  it("without backup.enabled there are no backup or WAL archive rules (an unbacked cluster archives nothing and is not paged for it)", () => {
    const s = localSpec();
    const names = rulesOf(renderAlertRules({ ...s, backup: { ...s.backup, enabled: false } })).map((r) => r.alert);
    for (const n of ["BackupTooOld", "FullBackupTooOld", "BackupMetricsMissing", "RestoreDrillFailed", "RestoreDrillOverdue", "WalArchiveFailing", "WalArchiveBehind"]) assert.ok(!names.includes(n), n);
    assert.ok(names.includes("PatroniNoLeader") && names.includes("TargetDown"));
  });

  it("a hostile cluster name or number is refused at render time, never spliced into PromQL", () => {
    const ctx = (over: object) => ({ cluster: "pglocal", lagLimitBytes: 1, etcdMembers: 3, etcdQuorum: 2, archiveTimeout: 60, archiveDueSeconds: 180, archiveWindowSeconds: 480,
      backupEnabled: true, backupMaxAgeSeconds: 1, fullBackupMaxAgeSeconds: 1, drillMaxAgeSeconds: 1, renewalWindowSeconds: 1, slotRetainedWalBytes: 1, pgbouncerMaxClientConn: 1, pgbouncerPoolSize: 1, ...over });
    assert.doesNotThrow(() => render("monitoring", "alerts.yml", ctx({})));
    assert.throws(() => render("monitoring", "alerts.yml", ctx({ cluster: 'x"}) or vector(1) #' })), /clusterName/);
    assert.throws(() => render("monitoring", "alerts.yml", ctx({ lagLimitBytes: "1 or vector(1)" })), /maximumLagOnFailover/);
    assert.throws(() => render("monitoring", "alerts.yml", ctx({ pgbouncerMaxClientConn: "1\n- alert: x" })), /maxClientConn/);
    assert.throws(() => render("monitoring", "alerts.yml", ctx({ slotRetainedWalBytes: "1 or vector(1)" })), /slotRetainedWalMb/);
  });
});
