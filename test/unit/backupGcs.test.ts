// Backups on GCP (issue #11 item 1): backup.* on provider gcp, the plan's pgBackRest files with
// the Cloud Storage repository on every database node, the primary-only backup script, and the
// rendered configuration checked by pgBackRest 2.45 itself, offline.
import { strict as assert } from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import * as ini from "ini";
import { backupBucketName, bucketNameProblem, ConfigError, parseClusterSpec, type ClusterSpec } from "../../model/config";
import { readStackFile } from "../../model/stackFile";
import { compile } from "../../roles/compile";
import { dcsConfig } from "../../roles/patroni";
import { stepScript } from "../../roles/script";
import type { FileAction } from "../../roles/step";
import type { Plan, RoleContext, Secrets } from "../../roles/types";
import { fileOf, hostsOf, localSpec, testPki, TEST_SECRETS } from "../support/fixtures";
import { run } from "../support/tools";

const PEM = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU=\n-----END OPENSSH PRIVATE KEY-----\n";
const CONF = "/etc/pgbackrest/pgbackrest.conf";
const SCRIPT = "/usr/local/lib/pgcluster/pgcluster-backup";
const PASSPHRASE = TEST_SECRETS.backupCipherPassphrase!;
const NODES = ["pgdev-db-1", "pgdev-db-2", "pgdev-db-3"];

/** The dev stack (gcp) with backup on, changed by `edit`, parsed (throws ConfigError). */
function devWith(edit: (raw: Record<string, any>) => void = () => {}): ClusterSpec {
  const raw = structuredClone(readStackFile("dev").values) as Record<string, any>;
  raw.sshPrivateKey = PEM;
  raw.backup = { enabled: true };
  edit(raw);
  return parseClusterSpec(raw, { stack: "dev", secretKeys: new Set(["sshPrivateKey"]), source: "test" });
}

function problems(parse: () => unknown): string {
  try {
    parse();
  } catch (e) {
    if (e instanceof ConfigError) return e.message;
    throw e;
  }
  return "";
}

describe("backups on gcp: config", () => {
  it("backup.enabled is allowed on gcp, with the bucket's policies and a derived bucket name", () => {
    const spec = devWith();
    assert.equal(spec.backup.enabled, true);
    assert.deepEqual(spec.backup.bucket, { softDeleteDays: 14, noncurrentVersionDays: 30 });
    assert.equal(backupBucketName(spec.gcp!.project, spec.clusterName), "pgcluster-dev-pgdev-backup");
    const custom = devWith((raw) => { raw.backup.bucket = { softDeleteDays: 90, noncurrentVersionDays: 7 }; });
    assert.deepEqual(custom.backup.bucket, { softDeleteDays: 90, noncurrentVersionDays: 7 });
  });

  it("bounds the bucket's days, refuses hostile and odd values, and any other key (the name is derived, never given)", () => {
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ softDeleteDays: 6 }, /backup\.bucket\.softDeleteDays: must be at least 7 \(days\): Cloud Storage's soft delete keeps objects 7 to 90 days/],
      [{ softDeleteDays: 91 }, /backup\.bucket\.softDeleteDays: must be at most 90 \(days\)/],
      [{ softDeleteDays: 7.5 }, /backup\.bucket\.softDeleteDays: must be a whole number/],
      [{ softDeleteDays: "14" }, /backup\.bucket\.softDeleteDays: .*expected number/i],
      [{ noncurrentVersionDays: 0 }, /backup\.bucket\.noncurrentVersionDays: must be greater than 0/],
      [{ noncurrentVersionDays: 3651 }, /backup\.bucket\.noncurrentVersionDays: must be at most 3650/],
      [{ noncurrentVersionDays: "30\nrepo1-path=/x" }, /backup\.bucket\.noncurrentVersionDays: .*expected number/i],
      [{ noncurrentVersionDays: -1 }, /backup\.bucket\.noncurrentVersionDays: must be greater than 0/],
      [{ name: "someone-elses-bucket" }, /backup\.bucket\.name: unknown key/],
      [{ retentionPolicyDays: 30 }, /backup\.bucket\.retentionPolicyDays: unknown key/],
    ];
    for (const [bucket, why] of bad) assert.match(problems(() => devWith((raw) => { raw.backup.bucket = bucket; })), why, JSON.stringify(bucket));
  });

  it("refuses a cluster whose bucket name Cloud Storage would refuse", () => {
    assert.match(problems(() => devWith((raw) => { raw.clusterName = "googledb"; })), /pgcluster:clusterName: gives the backup bucket name "pgcluster-dev-googledb-backup": Cloud Storage refuses names that start with "goog" or contain "google"/);
    assert.match(problems(() => devWith((raw) => { raw.clusterName = "g00gle"; })), /contain "google" \(or a look-alike\)/);
    // Without backup, no bucket: the name is not checked.
    assert.equal(problems(() => devWith((raw) => { raw.clusterName = "googledb"; raw.backup = { enabled: false }; })), "");
    assert.match(bucketNameProblem(`a${"b".repeat(63)}`)!, /not 3 to 63/);
    assert.match(bucketNameProblem("bad_name.with.dots")!, /not 3 to 63 lower-case letters, digits and '-'/);
    // The longest project id and clusterName the config allows still give a valid name.
    assert.equal(bucketNameProblem(backupBucketName("p".repeat(30), "c".repeat(24))), undefined);
  });

  it("backup.bucket is refused on a static inventory (its repository is the backup host)", () => {
    const raw = structuredClone(readStackFile("local").values) as Record<string, any>;
    raw.sshPrivateKey = PEM;
    raw.backup = { ...raw.backup, bucket: { softDeleteDays: 30 } };
    assert.match(problems(() => parseClusterSpec(raw, { stack: "local", secretKeys: new Set(["sshPrivateKey"]), source: "t" })),
      /pgcluster:backup\.bucket: is only for provider gcp/);
  });
});

describe("backups on gcp: the plan", () => {
  let spec: ClusterSpec;
  let plan: Plan;
  const step = (id: string) => plan.steps.find((s) => s.id === id);
  before(async () => {
    spec = devWith();
    const hosts = hostsOf(spec);
    const local = localSpec();
    const pki = await testPki(local, hostsOf(local));
    // Node certificates do not matter to the repository: GCP nodes reach it with their service account.
    const pair = { cert: "C", key: "K" };
    plan = compile(spec, hosts, { ...pki, nodes: Object.fromEntries(hosts.map((h) => [h.name, pair])) }, TEST_SECRETS, "10.99.0.200");
  });

  it("every database node gets pgBackRest and the stanza step, after every node's restart; no backup host, no other host", () => {
    const of = (role: string) => plan.steps.filter((s) => s.role === role).map((s) => s.host);
    assert.deepEqual(of("pgbackrest"), NODES);
    assert.deepEqual(of("stanza"), NODES);
    assert.deepEqual(of("backup"), []);
    for (const n of NODES) {
      assert.ok(step(`${n}/patroni`)!.after.includes(`${n}/pgbackrest`), n);
      for (const m of NODES) for (const r of ["pgbackrest", "restart"]) assert.ok(step(`${n}/stanza`)!.after.includes(`${m}/${r}`), `${n}/stanza after ${m}/${r}`);
    }
  });

  it("the node's file: the cluster's bucket with the instance's service account (key type auto), encrypted, retention, no TLS server", () => {
    const text = fileOf(step("pgdev-db-2/pgbackrest"), CONF);
    const c = ini.parse(text);
    assert.equal(c.global["repo1-type"], "gcs");
    assert.equal(c.global["repo1-gcs-bucket"], "pgcluster-dev-pgdev-backup");
    assert.equal(c.global["repo1-gcs-key-type"], "auto");
    assert.equal(c.global["repo1-gcs-key"], undefined, "no key file: the metadata server's tokens");
    assert.equal(c.global["repo1-path"], "/pgbackrest");
    assert.equal(c.global["repo1-cipher-type"], "aes-256-cbc");
    // ini would cut the value at its '#'; pgBackRest takes the whole line after '=' (the offline check below reads the file).
    assert.ok(text.split("\n").includes(`repo1-cipher-pass=${PASSPHRASE}`));
    assert.equal(c.global["repo1-retention-full"], "2");
    assert.equal(c.global["repo1-retention-diff"], "7");
    assert.equal(c["global:archive-get"]["io-timeout"], "5");
    // And the primary's archive_command fails in bounded time too (a stopped primary waits on it).
    assert.deepEqual([c["global:archive-push"]["io-timeout"], c["global:archive-push"]["protocol-timeout"]], ["5", "60"]);
    assert.equal(c.pgdev["pg1-path"], "/var/lib/postgresql/15/main");
    assert.deepEqual(Object.keys(c.global).filter((k) => /^(repo1-host|tls-server)/.test(k)), []);
    const s = step("pgdev-db-2/pgbackrest")!;
    assert.deepEqual(s.actions.filter((a) => a.kind === "stopped").map((a) => a.kind === "stopped" && a.unit), ["pgbackrest"]);
    assert.ok(!s.actions.some((a) => a.kind === "file" && a.path.startsWith("/etc/pgbackrest/pki")), "no TLS files");
  });

  it("the passphrase: in each node's configuration file only (0640 root:postgres, secret), never on a command line or elsewhere", () => {
    const holders = plan.steps.filter((s) => stepScript(s).includes(PASSPHRASE)).map((s) => s.id);
    assert.deepEqual(holders, NODES.map((n) => `${n}/pgbackrest`));
    for (const n of NODES) {
      const s = step(`${n}/pgbackrest`)!;
      const files = s.actions.filter((a): a is FileAction => a.kind === "file" && a.content.includes(PASSPHRASE));
      assert.deepEqual(files.map((f) => [f.path, f.mode, f.owner, f.group, f.secret]), [[CONF, "0640", "root", "postgres", true]]);
      const body = stepScript(s).replace(/<<'(PGC_EOF_[0-9a-f]+)'\n[\s\S]*?\n\1/g, "");
      assert.ok(!body.includes(PASSPHRASE), n);
    }
  });

  it("refuses a passphrase or bucket value that would add a line to pgBackRest's file", () => {
    const hosts = hostsOf(spec);
    const pki = { ca: "C", caBundle: "C", nodes: Object.fromEntries(hosts.map((h) => [h.name, { cert: "C", key: "K" }])), replication: { cert: "C", key: "K" }, pooler: { cert: "C", key: "K" } };
    const evil = { ...TEST_SECRETS, backupCipherPassphrase: "x\nrepo1-gcs-bucket=attacker" } as Secrets;
    assert.throws(() => compile(spec, hosts, pki, evil, "10.99.0.200"), /the backup cipher passphrase cannot be written into pgBackRest's configuration: it contains U\+000A/);
    const evilProject = { ...spec, gcp: { ...spec.gcp!, project: "p\nrepo1-path=/x" } };
    assert.throws(() => compile(evilProject, hosts, pki, TEST_SECRETS, "10.99.0.200"), /the backup bucket cannot be written into pgBackRest's configuration/);
  });

  it("archives through Patroni's DCS configuration and restores from the bucket (the same commands as with a backup host)", () => {
    const dcs = dcsConfig({ spec } as RoleContext) as any;
    assert.equal(dcs.postgresql.parameters.archive_command, "pgbackrest --stanza=pgdev archive-push %p");
    assert.equal(dcs.postgresql.recovery_conf, undefined);
    const fetching = { ...spec, backup: { ...spec.backup, replicasUseRepository: true } };
    assert.equal((dcsConfig({ spec: fetching } as RoleContext) as any).postgresql.recovery_conf.restore_command, `pgbackrest --stanza=pgdev archive-get %f "%p"`);
  });

  it("timers on every node; the unit runs the primary-only script; the stanza is created by the primary, read back elsewhere", () => {
    for (const n of NODES) {
      const s = step(`${n}/stanza`)!;
      assert.match(fileOf(s, "/etc/systemd/system/pgcluster-backup-full.timer"), /^OnCalendar=Sun \*-\*-\* 01:00:00$/m);
      assert.match(fileOf(s, "/etc/systemd/system/pgcluster-backup-diff.timer"), /^Unit=pgcluster-backup@diff\.service$/m);
      const unit = fileOf(s, "/etc/systemd/system/pgcluster-backup@.service");
      assert.match(unit, /^ExecStart=\/usr\/local\/lib\/pgcluster\/pgcluster-backup %i$/m);
      assert.match(unit, /^User=postgres$/m);
      const f = s.actions.find((a): a is FileAction => a.kind === "file" && a.path === SCRIPT)!;
      assert.deepEqual([f.mode, f.owner], ["0755", "root"]);
      const script = stepScript(s);
      assert.ok(script.includes("pgc_backup_stanza_gcs"), n);
      assert.ok(!script.includes(PASSPHRASE), n);
    }
  });

  it("the backup script backs up on the primary only; not the primary: nothing, exit 0; role unknown: nothing, and fails", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgc-backup-script-"));
    try {
      // A fake curl answering what Patroni's /primary would, and a fake pgBackRest that says how it was called.
      fs.writeFileSync(path.join(dir, "curl"), `#!/bin/bash\nprintf '%s' "$FAKE_CODE"\n[[ -n $FAKE_CODE ]] || exit 7\n`, { mode: 0o755 });
      fs.writeFileSync(path.join(dir, "pgbackrest"), `#!/bin/bash\necho "pgbackrest $*"\n`, { mode: 0o755 });
      const text = fileOf(step("pgdev-db-1/stanza"), SCRIPT);
      assert.ok(text.startsWith("#!/bin/bash\n") && text.includes("\nset -euo pipefail\n"));
      assert.match(text, /--cacert \/etc\/patroni\/pki\/ca\.crt https:\/\/127\.0\.0\.1:8008\/primary/);
      const file = path.join(dir, "pgcluster-backup");
      fs.writeFileSync(file, text.replace("exec /usr/bin/pgbackrest", `exec ${dir}/pgbackrest`), { mode: 0o755 });
      const go = (type: string, code: string) => {
        const r = spawnSync("bash", [file, type], { encoding: "utf8", env: { PATH: `${dir}:/usr/bin:/bin`, FAKE_CODE: code } });
        return { code: r.status, out: r.stdout + r.stderr };
      };
      assert.deepEqual(go("diff", "200"), { code: 0, out: "pgbackrest --stanza=pgdev --type=diff backup\n" });
      const standby = go("full", "503");
      assert.equal(standby.code, 0);
      assert.match(standby.out, /this node is not the primary: the primary's timer takes the full backup/);
      for (const code of ["", "000", "500", "401"]) {
        const r = go("full", code);
        assert.equal(r.code, 1, code);
        assert.match(r.out, /cannot tell whether this node is the primary; no backup/, code);
        assert.doesNotMatch(r.out, /pgbackrest --stanza/, code);
      }
      for (const type of ["", "full;reboot", "--type=full"]) {
        const r = go(type, "200");
        assert.equal(r.code, 2, type);
        assert.doesNotMatch(r.out, /pgbackrest --stanza/, type);
      }
      const sc = run("shellcheck", ["--severity=warning", "--shell=bash", file]);
      assert.equal(sc.code, 0, sc.out);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the restore drill and the logical dump: timers on every database node, one node acts (pgcluster-turn), the drill restores on the data disk with the node's own configuration, the dump goes to the bucket", () => {
    for (const n of NODES) {
      const d = step(`${n}/drill`)!;
      const drill = fileOf(d, "/usr/local/lib/pgcluster/restore-drill");
      assert.ok(drill.includes("readonly DIR='/var/lib/postgresql/pgcluster-drill'") && drill.includes("readonly CONFIG='/etc/pgbackrest/pgbackrest.conf'"), n);
      assert.match(drill, /turn=\$\('\/usr\/local\/lib\/pgcluster\/pgcluster-turn'\)/);
      assert.ok(!d.actions.some((a) => a.kind === "file" && (a.path === "/etc/pgbackrest/drill.conf" || a.path === "/etc/postgresql-common/createcluster.conf")), `${n}: the node's own files stay the postgresql and pgbackrest steps'`);
      const dump = fileOf(step(`${n}/dump`)!, "/usr/local/lib/pgcluster/pgcluster-dump");
      assert.ok(dump.includes("readonly BUCKET='pgcluster-dev-pgdev-backup' PREFIX='dumps/'") && dump.includes("PGHOST=/var/run/postgresql"), n);
      assert.ok(!dump.includes(PASSPHRASE), `${n}: the dump reads the passphrase from pgBackRest's file, at run time`);
      assert.match(dump, /-H @"\$header"/, "the token reaches curl in a file, not in argv");
      assert.match(fileOf(step(`${n}/stanza`)!, "/usr/local/lib/pgcluster/pgcluster-turn"), new RegExp(`' *${n}' "\\$cluster"|'${n}' "\\$cluster"`));
    }
  });

  it("pgcluster-turn picks one node: the first running asynchronous replica by name, else the synchronous standby, else the leader; unknown when Patroni does not answer", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgc-turn-"));
    try {
      fs.writeFileSync(path.join(dir, "curl"), `#!/bin/bash
[[ -n $FAKE_CLUSTER ]] || exit 7
printf '%s' "$FAKE_CLUSTER"
`, { mode: 0o755 });
      const text = fileOf(step("pgdev-db-2/stanza"), "/usr/local/lib/pgcluster/pgcluster-turn");
      const file = path.join(dir, "turn");
      fs.writeFileSync(file, text, { mode: 0o755 });
      const ask = (members: [string, string, string][] | undefined) => {
        const cluster = members ? JSON.stringify({ members: members.map(([name, role, state]) => ({ name, role, state })) }) : "";
        const r = spawnSync("bash", [file], { encoding: "utf8", env: { PATH: `${dir}:/usr/bin:/bin`, FAKE_CLUSTER: cluster } });
        return { code: r.status, out: (r.stdout + r.stderr).trim() };
      };
      const all: [string, string, string][] = [["pgdev-db-1", "leader", "running"], ["pgdev-db-2", "replica", "streaming"], ["pgdev-db-3", "sync_standby", "streaming"]];
      assert.deepEqual(ask(all), { code: 0, out: "pgdev-db-2" });
      assert.deepEqual(ask([all[0], ["pgdev-db-2", "sync_standby", "streaming"], ["pgdev-db-3", "replica", "streaming"]]), { code: 1, out: "pgdev-db-3" });
      assert.deepEqual(ask([all[0], ["pgdev-db-2", "replica", "stopped"], all[2]]), { code: 1, out: "pgdev-db-3" }, "a stopped replica is passed over");
      assert.deepEqual(ask([["pgdev-db-1", "replica", "stopped"], ["pgdev-db-2", "leader", "running"]]), { code: 0, out: "pgdev-db-2" }, "the leader when no replica runs");
      assert.equal(ask([["pgdev-db-1", "replica", "stopped"]]).code, 2);
      const unknown = ask(undefined);
      assert.equal(unknown.code, 2);
      assert.match(unknown.out, /Patroni's REST API did not answer/);
      const sc = run("shellcheck", ["--severity=warning", "--shell=bash", file]);
      assert.equal(sc.code, 0, sc.out);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("every gcp backup step passes bash -n and shellcheck (the drill, the dump and their installed scripts too)", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgc-gcs-plan-"));
    try {
      const files = plan.steps.filter((s) => ["pgbackrest", "stanza", "drill", "dump"].includes(s.role)).map((s) => {
        const f = path.join(dir, s.id.replace("/", "_") + ".sh");
        fs.writeFileSync(f, stepScript(s));
        return f;
      });
      // The scripts the drill and dump steps install (their content is data in the step's script).
      for (const [id, p] of [["pgdev-db-1/drill", "/usr/local/lib/pgcluster/restore-drill"], ["pgdev-db-1/dump", "/usr/local/lib/pgcluster/pgcluster-dump"], ["pgdev-db-1/stanza", "/usr/local/lib/pgcluster/pgcluster-turn"]]) {
        const f = path.join(dir, path.basename(p));
        fs.writeFileSync(f, fileOf(step(id), p));
        files.push(f);
      }
      for (const f of files) assert.equal(run("bash", ["-n", f]).code, 0, f);
      const sc = run("shellcheck", ["--severity=warning", "--shell=bash", ...files]);
      assert.equal(sc.code, 0, sc.out);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("backups on gcp: pgBackRest 2.45 reads the node's file (offline)", () => {
  let dir: string;
  let good: string;
  let closedPort: number;
  before(async () => {
    const spec = devWith();
    const hosts = hostsOf(spec);
    const pair = { cert: "C", key: "K" };
    const pki = { ca: "C", caBundle: "C", nodes: Object.fromEntries(hosts.map((h) => [h.name, pair])), replication: pair, pooler: pair };
    const plan = compile(spec, hosts, pki, TEST_SECRETS, "10.99.0.200");
    good = fileOf(plan.steps.find((s) => s.id === "pgdev-db-1/pgbackrest"), CONF);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgc-pgbackrest-gcs-"));
    // A loopback port nothing listens on: where the repository's endpoint is pointed below.
    closedPort = await new Promise<number>((resolve) => {
      const srv = net.createServer().listen(0, "127.0.0.1", () => {
        const p = (srv.address() as net.AddressInfo).port;
        srv.close(() => resolve(p));
      });
    });
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  function write(name: string, content: string): string {
    const f = path.join(dir, name);
    fs.writeFileSync(f, content, { mode: 0o600 });
    return f;
  }
  const help = (file: string, command: string, option?: string, extra: string[] = []) => run("pgbackrest", [`--config=${file}`, "--stanza=pgdev", ...extra, "help", command, ...(option ? [option] : [])]);

  /**
   * The repository opened for real with the file: pgBackRest reads every option, builds the GCS
   * storage and dials its endpoint. Only the authentication is swapped (key type auto asks the
   * metadata server, which exists only on GCE) for a dummy token, and the endpoint for a closed
   * loopback port: reaching "unable to connect" means the file left nothing missing.
   */
  function openRepository(file: string) {
    const r = spawnSync("pgbackrest", [`--config=${file}`, "--stanza=pgdev", "--repo1-gcs-key-type=token", `--repo1-gcs-endpoint=127.0.0.1:${closedPort}`,
      "--io-timeout=2", "--log-level-console=error", "--log-level-file=off", "repo-ls"], {
      encoding: "utf8", env: { PATH: "/usr/bin:/bin", PGBACKREST_REPO1_GCS_KEY: "dummy-token" }, timeout: 30000,
    });
    return { code: r.status, out: `${r.stdout}${r.stderr}` };
  }

  it("archive-push, archive-get, backup, expire, check, stanza-create and info parse it without a warning; the passphrase is never printed", () => {
    const f = write("node.conf", good);
    for (const cmd of ["archive-push", "archive-get", "backup", "expire", "check", "stanza-create", "info"]) {
      const r = help(f, cmd);
      assert.equal(r.code, 0, `${cmd}: ${r.out}`);
      assert.doesNotMatch(r.out, /WARN|ERROR/, cmd);
      assert.ok(!r.out.includes(PASSPHRASE), cmd);
    }
    assert.match(help(f, "archive-push", "repo1-gcs-key-type").out, /current: auto/);
    assert.match(help(f, "backup", "repo1-gcs-bucket").out, /current: pgcluster-dev-pgdev-backup/);
    // The command's start line (at log level info) lists every option as parsed, secure ones redacted.
    const begin = help(f, "backup", undefined, ["--log-level-console=info"]).out;
    for (const o of ["--repo1-type=gcs", "--repo1-cipher-pass=<redacted>", "--repo1-cipher-type=aes-256-cbc", "--repo1-path=/pgbackrest"]) assert.ok(begin.includes(o), o);
  });

  it("opens the repository with it: every option it needs is there (it gets as far as dialling the endpoint)", () => {
    const r = openRepository(write("open.conf", good));
    assert.equal(r.code, 49, r.out);
    assert.match(r.out, new RegExp(`unable to connect to '127\\.0\\.0\\.1:${closedPort}'`));
  });

  it("the check bites: a file without the bucket or the passphrase, an unknown key type or a typo is refused", () => {
    const noBucket = openRepository(write("nobucket.conf", good.replace(/^repo1-gcs-bucket=.*\n/m, "")));
    assert.equal(noBucket.code, 37);
    assert.match(noBucket.out, /requires option: repo1-gcs-bucket/);
    const noPass = openRepository(write("nopass.conf", good.replace(/^repo1-cipher-pass=.*\n/m, "")));
    assert.match(noPass.out, /requires option: repo1-cipher-pass/);
    const service = write("type.conf", good.replace("repo1-gcs-key-type=auto", "repo1-gcs-key-type=metadata"));
    assert.match(help(service, "archive-push").out, /ERROR: \[032\]: 'metadata' is not allowed for 'repo1-gcs-key-type' option/);
    const typo = write("typo.conf", good.replace("repo1-gcs-bucket=", "repo1-gcs-buckett="));
    assert.match(help(typo, "backup").out, /WARN: configuration file contains invalid option 'repo1-gcs-buckett'/);
  });
});
