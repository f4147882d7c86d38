// Backups (issue #11): the backup.* config, the plan's pgBackRest files and archiving settings,
// and the rendered pgBackRest configuration checked by pgBackRest 2.45 itself, offline.
import { strict as assert } from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as ini from "ini";
import YAML from "yaml";
import { ConfigError, parseClusterSpec, type ClusterSpec } from "../../model/config";
import { DRILL, DUMP } from "../../model/identities";
import { readStackFile } from "../../model/stackFile";
import { compile } from "../../roles/compile";
import { dcsConfig } from "../../roles/patroni";
import { hostFirewall } from "../../roles/firewall";
import { stepScript } from "../../roles/script";
import type { Pki, Plan, RoleContext, Secrets } from "../../roles/types";
import { fileOf, hostsOf, localSpec, testPki, TEST_SECRETS } from "../support/fixtures";
import { run } from "../support/tools";
import { describeBackupStatus, describeRepository, systemIdOf } from "../../local/backup";

const PEM = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU=\n-----END OPENSSH PRIVATE KEY-----\n";
const CONF = "/etc/pgbackrest/pgbackrest.conf";
const PASSPHRASE = TEST_SECRETS.backupCipherPassphrase!;

/** The local stack file's config, changed by `edit`, parsed (throws ConfigError). */
function localWith(edit: (raw: Record<string, any>) => void, secretKeys: string[] = ["sshPrivateKey"]): ClusterSpec {
  const raw = structuredClone(readStackFile("local").values) as Record<string, any>;
  raw.sshPrivateKey = PEM;
  edit(raw);
  return parseClusterSpec(raw, { stack: "local", secretKeys: new Set(secretKeys), source: "test" });
}

function problems(edit: (raw: Record<string, any>) => void, secretKeys?: string[]): string {
  try {
    localWith(edit, secretKeys);
  } catch (e) {
    if (e instanceof ConfigError) return e.message;
    throw e;
  }
  return "";
}

const withoutBackup = (raw: Record<string, any>) => {
  raw.backup = { enabled: false };
  raw.hosts = raw.hosts.filter((h: { roles: string[] }) => !h.roles.includes("backup"));
};

describe("backups: config", () => {
  it("the local stack has a backup host and backup on, with the documented defaults", () => {
    const spec = localSpec();
    assert.deepEqual(spec.hosts.filter((h) => h.roles.includes("backup")).map((h) => [h.name, h.address]), [["backup1", "10.213.0.30"]]);
    assert.deepEqual(spec.backup, {
      enabled: true, archiveTimeout: 60,
      schedule: { full: "Sun *-*-* 01:00:00", diff: "Mon..Sat *-*-* 01:00:00", drill: "Sun *-*-01..07 04:00:00", dump: "*-*-* 02:30:00" },
      replicasUseRepository: false,
      replicasFrom: "leader",
      retention: { full: 2, diff: 7, dumpDays: 7 },
      // gcp only (the bucket's policies); inert on a static inventory.
      bucket: { softDeleteDays: 14, noncurrentVersionDays: 30 },
    });
  });

  it("is off by default", () => {
    assert.equal(localWith(withoutBackup).backup.enabled, false);
    assert.equal(localWith((raw) => { withoutBackup(raw); delete raw.backup; }).backup.enabled, false);
  });

  it("refuses a calendar event that could add a line, a specifier or a continuation to the timer unit", () => {
    for (const bad of ["Sun *-*-* 01:00:00\nExecStart=/bin/sh", "daily %h", "daily\\", "daily;reboot", "'daily'", " daily", "daily ", "", "x".repeat(101)]) {
      const msg = problems((raw) => { raw.backup = { ...raw.backup, schedule: { full: bad } }; });
      assert.match(msg, /pgcluster:backup\.schedule\.full: must/, JSON.stringify(bad));
    }
    assert.equal(localWith((raw) => { raw.backup = { ...raw.backup, schedule: { full: "weekly", diff: "*-*-* 00/6:00:00" } }; }).backup.schedule.diff, "*-*-* 00/6:00:00");
  });

  it("bounds archiveTimeout and the retention counts", () => {
    assert.match(problems((raw) => { raw.backup = { ...raw.backup, archiveTimeout: 5 }; }), /backup\.archiveTimeout: must be at least 10 \(seconds\): each switch archives a 16 MB segment/);
    assert.match(problems((raw) => { raw.backup = { ...raw.backup, archiveTimeout: 1.5 }; }), /backup\.archiveTimeout: must be a whole number/);
    assert.match(problems((raw) => { raw.backup = { ...raw.backup, retention: { full: 0 } }; }), /backup\.retention\.full: must be greater than 0/);
    assert.match(problems((raw) => { raw.backup = { ...raw.backup, retention: { weekly: 3 } }; }), /backup\.retention\.weekly: unknown key/);
  });

  it("wants exactly one backup host, of its own, and only while backup is on", () => {
    assert.match(problems((raw) => { raw.hosts = raw.hosts.filter((h: { roles: string[] }) => !h.roles.includes("backup")); }),
      /pgcluster:hosts: gives no backup host, but backup\.enabled is true/);
    assert.match(problems((raw) => { raw.hosts.push({ name: "backup2", address: "10.213.0.31", roles: ["backup"] }); }),
      /gives 2 backup hosts \(backup1, backup2\); pgcluster keeps one repository/);
    const b = (readStackFile("local").values.hosts as { name: string }[]).findIndex((h) => h.name === "backup1");
    assert.match(problems((raw) => { raw.hosts[b].roles = ["backup", "postgres"]; }),
      new RegExp(`hosts\\[${b}\\]\\.roles: host "backup1" has role backup with postgres`));
    assert.match(problems((raw) => { raw.hosts[b].roles = ["backup", "postgres"]; }),
      /host "backup1" has role backup with postgres: the backup repository must be a host of its own/);
    assert.match(problems((raw) => { raw.backup = { enabled: false }; }),
      new RegExp(`hosts\\[${b}\\]\\.roles: host "backup1" has role backup, but backup\\.enabled is false`));
  });

  it("makes archive_mode and archive_timeout pgcluster's while backup is on (archive_command is always refused)", () => {
    assert.match(problems((raw) => { raw.postgresql = { parameters: { archive_timeout: 30 } }; }), /parameters\.archive_timeout: is set by pgcluster while backup\.enabled is true .*use backup\.archiveTimeout/);
    assert.match(problems((raw) => { raw.postgresql = { parameters: { ARCHIVE_MODE: "on" } }; }), /parameters\.ARCHIVE_MODE: is set by pgcluster/);
    assert.match(problems((raw) => { raw.postgresql = { parameters: { archive_command: "true" } }; }), /parameters\.archive_command: is refused/);
    assert.equal(localWith((raw) => { withoutBackup(raw); raw.postgresql = { parameters: { archive_timeout: 30 } }; }).postgresql.parameters.archive_timeout, 30);
  });

  it("takes the cipher passphrase only as a secret, never shows it, and needs it when nothing may be generated", () => {
    const value = "plain-passphrase-0123456789-XYZ";
    const plain = problems((raw) => { raw.backupCipherPassphrase = value; });
    assert.match(plain, /pgcluster:backupCipherPassphrase: is stored in plain text/);
    assert.ok(!plain.includes(value));
    const short = problems((raw) => { raw.backupCipherPassphrase = "short pass"; }, ["sshPrivateKey", "backupCipherPassphrase"]);
    assert.match(short, /backupCipherPassphrase: must be 16 to 128 printable ASCII characters without spaces \(the value is not shown\)/);
    assert.ok(!short.includes("short pass"));
    const given = localWith((raw) => { raw.backupCipherPassphrase = value; }, ["sshPrivateKey", "backupCipherPassphrase"]);
    assert.equal(given.secrets.backupPassphraseProvided, true);
    assert.ok(!JSON.stringify(given).includes(value), "the spec carries no secret value");
    assert.match(problems((raw) => { raw.secrets = { generate: false }; }), /pgcluster:backupCipherPassphrase: is required because backup\.enabled is true and pgcluster:secrets\.generate is false/);
  });

  it("is never rotated: secrets.rotate does not name it", () => {
    assert.match(problems((raw) => { raw.secrets = { rotate: { backupCipherPassphrase: "2" } }; }), /pgcluster:secrets\.rotate/);
  });
});

describe("backups: the plan", () => {
  let spec: ClusterSpec;
  let pki: Pki;
  let plan: Plan;
  let hosts: ReturnType<typeof hostsOf>;
  const step = (id: string) => plan.steps.find((s) => s.id === id);
  before(async () => {
    spec = localSpec();
    hosts = hostsOf(spec);
    pki = await testPki(spec, hosts);
    plan = compile(spec, hosts, pki, TEST_SECRETS);
  });

  it("the repository serves before any node's pgBackRest, that before the node's Patroni; the stanza after every node's restart step", () => {
    assert.deepEqual(step("backup1/backup")!.after, ["backup1/common", "backup1/firewall"]);
    for (const n of ["pg1", "pg2", "pg3"]) {
      assert.ok(step(`${n}/pgbackrest`)!.after.includes("backup1/backup"), n);
      assert.ok(step(`${n}/patroni`)!.after.includes(`${n}/pgbackrest`), n);
    }
    const b = step("backup1/stanza")!;
    for (const n of ["pg1", "pg2", "pg3"]) for (const r of ["pgbackrest", "restart"]) assert.ok(b.after.includes(`${n}/${r}`), `${n}/${r}`);
    assert.deepEqual(plan.steps.filter((s) => s.host === "backup1").map((s) => s.role), ["common", "firewall", "backup", "stanza", "drill", "dump", "exporters", "update"]);
  });

  it("a replica's restore_command gives up in seconds when the repository does not answer (it then streams)", () => {
    const c = ini.parse(fileOf(step("pg1/pgbackrest"), CONF));
    assert.equal(c["global:archive-get"]["io-timeout"], "5");
    // And the primary's archive_command fails in bounded time too (a stopped primary waits on it).
    assert.deepEqual([c["global:archive-push"]["io-timeout"], c["global:archive-push"]["protocol-timeout"]], ["5", "60"]);
  });

  it("without backup, the plan has no pgBackRest and the DCS no archiving (existing stacks unchanged)", async () => {
    const off = localWith(withoutBackup);
    const offPlan = compile(off, hostsOf(off), pki, TEST_SECRETS);
    assert.deepEqual(offPlan.steps.filter((s) => /pgbackrest|backup|stanza/.test(s.role)), []);
    const dcs = dcsConfig({ spec: off } as RoleContext) as any;
    assert.equal(dcs.postgresql.recovery_conf, undefined);
    assert.deepEqual(Object.keys(dcs.postgresql.parameters).filter((k) => k.startsWith("archive")), []);
    for (const s of offPlan.steps) assert.ok(!stepScript(s).includes("pgbackrest"), s.id);
  });

  it("archives through Patroni's DCS configuration, from whichever node is primary; replicas restore from the repository only with backup.replicasUseRepository", () => {
    const dcs = dcsConfig({ spec } as RoleContext) as any;
    assert.equal(dcs.postgresql.parameters.archive_mode, "on");
    assert.equal(dcs.postgresql.parameters.archive_command, "pgbackrest --stanza=pglocal archive-push %p");
    assert.equal(dcs.postgresql.parameters.archive_timeout, 60);
    assert.equal(dcs.postgresql.recovery_conf, undefined, "off by default: replicas stream from their slots");
    const fetching = localWith((raw) => { raw.backup = { ...raw.backup, replicasUseRepository: true }; });
    assert.equal((dcsConfig({ spec: fetching } as RoleContext) as any).postgresql.recovery_conf.restore_command, `pgbackrest --stanza=pglocal archive-get %f "%p"`);
    const archiveTimeout = localWith((raw) => { raw.backup = { ...raw.backup, archiveTimeout: 300 }; });
    assert.equal((dcsConfig({ spec: archiveTimeout } as RoleContext) as any).postgresql.parameters.archive_timeout, 300);
  });

  it("backup.replicasFrom: repository makes Patroni restore a new replica from the newest backup (pg_basebackup when that fails); refused without replicasUseRepository", async () => {
    assert.throws(() => localWith((raw) => { raw.backup = { ...raw.backup, replicasFrom: "repository" }; }), (e: Error) => e instanceof ConfigError && /backup\.replicasFrom.*needs backup\.enabled: true and backup\.replicasUseRepository: true/s.test(e.message));
    assert.throws(() => localWith((raw) => { raw.backup = { ...raw.backup, replicasFrom: "backup; rm -rf /" }; }), ConfigError);
    const patroniYaml = (sp: ClusterSpec) => YAML.parse(fileOf(compile(sp, hosts, pki, TEST_SECRETS).steps.find((s) => s.id === "pg2/patroni"), "/etc/patroni/config.yml"));
    assert.equal(patroniYaml(spec).postgresql.create_replica_methods, undefined, "default: pg_basebackup from the leader");
    const fromRepo = localWith((raw) => { raw.backup = { ...raw.backup, replicasUseRepository: true, replicasFrom: "repository" }; });
    const pg = patroniYaml(fromRepo).postgresql;
    assert.deepEqual(pg.create_replica_methods, ["pgbackrest", "basebackup"]);
    assert.deepEqual(pg.pgbackrest, { command: "/usr/bin/pgbackrest --stanza=pglocal --log-level-console=warn --delta --type=standby restore", keep_data: true, no_params: true });
  });

  it("database nodes: the repository over TLS with the node's own certificate, a TLS server admitting only the backup host, no passphrase", () => {
    const c = ini.parse(fileOf(step("pg2/pgbackrest"), CONF));
    assert.equal(c.global["repo1-host"], "backup1");
    assert.equal(c.global["repo1-host-type"], "tls");
    assert.equal(c.global["repo1-host-port"], "8432");
    assert.equal(c.global["repo1-host-cert-file"], "/etc/pgbackrest/pki/node.crt");
    assert.equal(c.global["tls-server-address"], "10.213.0.12");
    assert.equal(c.global["tls-server-auth"], "backup1=pglocal");
    assert.equal(c.pglocal["pg1-path"], "/var/lib/postgresql/15/main");
    assert.equal(Object.keys(c.global).filter((k) => k.includes("cipher")).length, 0);
    assert.equal(fileOf(step("pg2/pgbackrest"), "/etc/pgbackrest/pki/node.crt"), pki.nodes.pg2.cert);
  });

  it("the backup host: encrypted repository, retention, backups from a standby, every node admitted by its certificate's name", () => {
    const text = fileOf(step("backup1/backup"), CONF);
    // ini would merge the repeated tls-server-auth keys: read them as lines.
    const lines = text.split("\n");
    // The nodes by their certificates' names, and the standby clusters (standbyClusters) by the replication certificate.
    assert.deepEqual(lines.filter((l) => l.startsWith("tls-server-auth=")), ["tls-server-auth=pg1=pglocal", "tls-server-auth=pg2=pglocal", "tls-server-auth=pg3=pglocal", "tls-server-auth=replicator=pglocal"]);
    assert.ok(lines.includes(`repo1-cipher-pass=${PASSPHRASE}`));
    const c = ini.parse(text);
    assert.equal(c.global["repo1-cipher-type"], "aes-256-cbc");
    assert.equal(c.global["repo1-retention-full"], "2");
    assert.equal(c.global["repo1-retention-diff"], "7");
    assert.equal(c.global["backup-standby"], "y");
    assert.equal(c.global["tls-server-address"], "10.213.0.30");
    for (const [i, n] of ["pg1", "pg2", "pg3"].entries()) {
      assert.equal(c.pglocal[`pg${i + 1}-host`], n);
      assert.equal(c.pglocal[`pg${i + 1}-host-type`], "tls");
    }
  });

  it("the passphrase is only in the backup host's configuration file (0640, secret: no diff in check mode), never on a command line", () => {
    const holders = plan.steps.filter((s) => stepScript(s).includes(PASSPHRASE)).map((s) => s.id);
    // The repository's own config, and the restore drill's (which reads the same repository).
    assert.deepEqual(holders, ["backup1/backup", "backup1/drill"]);
    for (const [id, path] of [["backup1/backup", CONF], ["backup1/drill", DRILL.config]]) {
      const b = step(id)!;
      const files = b.actions.filter((a) => a.kind === "file" && a.content.includes(PASSPHRASE));
      assert.deepEqual(files.map((f) => f.kind === "file" && [f.path, f.mode, f.owner, f.group, f.secret]), [[path, "0640", "root", "postgres", true]]);
      // Outside the file's here-document, no line of the script carries it.
      const script = stepScript(b);
      const body = script.replace(/<<'(PGC_EOF_[0-9a-f]+)'\n[\s\S]*?\n\1/g, "");
      assert.ok(!body.includes(PASSPHRASE), id);
    }
  });

  it("refuses a passphrase that would add a line to pgBackRest's file (the quoting bites even without validation)", async () => {
    const evil = { ...TEST_SECRETS, backupCipherPassphrase: "x\nrepo1-path=/tmp/elsewhere" } as Secrets;
    assert.throws(() => compile(spec, hostsOf(spec), pki, evil), /the backup cipher passphrase cannot be written into pgBackRest's configuration: it contains U\+000A/);
    assert.throws(() => compile(spec, hostsOf(spec), pki, { ...TEST_SECRETS, backupCipherPassphrase: undefined } as Secrets), /backup\.enabled needs the repository's cipher passphrase/);
  });

  it("timers: full and differential on the configured calendar, one backup unit; systemd reads the calendar events", () => {
    const b = step("backup1/stanza")!;
    assert.match(fileOf(b, "/etc/systemd/system/pgcluster-backup-full.timer"), /^OnCalendar=Sun \*-\*-\* 01:00:00$/m);
    assert.match(fileOf(b, "/etc/systemd/system/pgcluster-backup-diff.timer"), /^Unit=pgcluster-backup@diff\.service$/m);
    assert.match(fileOf(b, "/etc/systemd/system/pgcluster-backup@.service"), /^ExecStart=\/usr\/bin\/pgbackrest --stanza=pglocal --type=%i backup$/m);
    for (const event of [spec.backup.schedule.full, spec.backup.schedule.diff]) {
      const r = run("systemd-analyze", ["calendar", event]);
      assert.equal(r.code, 0, r.out);
      assert.match(r.out, /Next elapse:/);
    }
  });

  it("the restore drill: on the backup host only, after the stanza; its timer on backup.schedule.drill; its script restores with archiving off into a scratch directory", () => {
    const d = step("backup1/drill")!;
    assert.ok(d.after.includes("backup1/stanza"));
    assert.deepEqual(plan.steps.filter((s) => s.role === "drill").map((s) => s.id), ["backup1/drill"]);
    assert.match(fileOf(d, `/etc/systemd/system/${DRILL.timer}`), /^OnCalendar=Sun \*-\*-01\.\.07 04:00:00$/m);
    assert.match(fileOf(d, `/etc/systemd/system/${DRILL.unit}`), new RegExp(`^ExecStart=${DRILL.script}$`, "m"));
    const script = fileOf(d, DRILL.script);
    assert.match(script, /--archive-mode=off/, "the copy never archives into the cluster's repository");
    assert.match(script, /^archive_mode = off$/m);
    assert.match(script, /^listen_addresses = ''$/m, "socket only");
    assert.match(script, /pg_amcheck" .*--all --install-missing/, "pg_amcheck of every database");
    const r = run("systemd-analyze", ["calendar", spec.backup.schedule.drill]);
    assert.equal(r.code, 0, r.out);
    // A hostile schedule never reaches the timer: the config refuses it (and the template's helper would too).
    assert.throws(() => localWith((raw) => { raw.backup = { ...raw.backup, schedule: { drill: "daily\nExecStart=/bin/sh" } }; }), /backup\.schedule\.drill: must/);
  });

  it("the logical dump: on the backup host after the drill and the database step; a standby first, by certificate, encrypted without the passphrase in argv; valid bash", () => {
    const d = step("backup1/dump")!;
    assert.deepEqual(plan.steps.filter((s) => s.role === "dump").map((s) => s.id), ["backup1/dump"]);
    for (const a of ["backup1/drill", "pg1/database", "pg2/database", "pg3/database"]) assert.ok(d.after.includes(a), a);
    assert.match(fileOf(d, `/etc/systemd/system/${DUMP.timer}`), /^OnCalendar=\*-\*-\* 02:30:00$/m);
    const script = fileOf(d, DUMP.script);
    assert.match(script, /^export PGHOST='10\.213\.0\.11,10\.213\.0\.12,10\.213\.0\.13' PGPORT=5432 PGUSER='pgcluster_dump'/m);
    assert.match(script, /^export PGTARGETSESSIONATTRS=prefer-standby/m);
    assert.match(script, /PGSSLMODE=verify-full/);
    assert.match(script, /-pass fd:3/, "the passphrase on a file descriptor");
    assert.ok(!script.includes(PASSPHRASE), "the passphrase is read on the host, not written into the script");
    assert.match(script, /^readonly KEEP_DAYS=7$/m);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgc-dump-"));
    try {
      fs.writeFileSync(path.join(dir, "dump.sh"), script);
      for (const [cmd, args] of [["bash", ["-n"]], ["shellcheck", ["-S", "warning", "-s", "bash"]]] as const) {
        const r = run(cmd, [...args, path.join(dir, "dump.sh")]);
        assert.equal(r.code, 0, `${cmd}: ${r.out}`);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    // The database step creates the role (certificate login only); no backup host, no role and no pg_hba line.
    assert.match(stepScript(step("pg1/database")!), /CREATE ROLE %I LOGIN IN ROLE pg_read_all_data', 'pgcluster_dump'/);
    const off = localWith(withoutBackup);
    const offPlan = compile(off, hostsOf(off), pki, TEST_SECRETS);
    assert.ok(!offPlan.steps.some((s) => s.role === "dump"));
    assert.ok(!stepScript(offPlan.steps.find((s) => s.id === "pg1/database")!).includes("pgcluster_dump"));
    assert.throws(() => localWith((raw) => { raw.backup = { ...raw.backup, schedule: { dump: "daily\nExecStart=/bin/sh" } }; }), /backup\.schedule\.dump: must/);
    assert.throws(() => localWith((raw) => { raw.backup = { ...raw.backup, retention: { dumpDays: 0 } }; }), /backup\.retention\.dumpDays/);
  });

  it("firewall: 8432 on the backup host from the database nodes (and operators); on the nodes from the backup host", () => {
    const ctx: RoleContext = { spec, hosts: hostsOf(spec), pki, secrets: TEST_SECRETS };
    const fwOf = (n: string) => hostFirewall(ctx, ctx.hosts.find((h) => h.name === n)!);
    const sources = (n: string) => fwOf(n).admissions.filter((a) => a.port === 8432).map((a) => a.source).sort();
    assert.deepEqual(sources("backup1"), ["10.213.0.1/32", "10.213.0.11/32", "10.213.0.12/32", "10.213.0.13/32", "10.213.0.48/29"]);
    assert.deepEqual(sources("pg1"), ["10.213.0.1/32", "10.213.0.30/32"]);
    assert.deepEqual(sources("lb1"), []);
    // Besides SSH and pgBackRest, only node exporter (monitoring.enabled).
    assert.deepEqual(fwOf("backup1").admissions.filter((a) => a.port !== 8432 && a.port !== 22 && a.port !== 9100).map((a) => a.port), []);
    // The logical dump: PostgreSQL on the nodes from the backup host.
    assert.ok(fwOf("pg1").admissions.some((a) => a.port === 5432 && a.source === "10.213.0.30/32" && a.who === "the backup host"));
  });
});

describe("backups: pgBackRest 2.45 reads the rendered files (offline: its help command parses the file with each command's rules)", () => {
  let dir: string;
  let plan: Plan;
  before(async () => {
    const spec = localSpec();
    const hosts = hostsOf(spec);
    plan = compile(spec, hosts, await testPki(spec, hosts), TEST_SECRETS);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgc-pgbackrest-"));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** `pgbackrest help <command>` on the file: the option values as pgBackRest parsed them, or its complaint. */
  function pgbackrest(file: string, command: string, stanza: boolean, option?: string) {
    return run("pgbackrest", [`--config=${file}`, ...(stanza ? ["--stanza=pglocal"] : []), "help", command, ...(option ? [option] : [])]);
  }
  function write(name: string, content: string): string {
    const f = path.join(dir, name);
    fs.writeFileSync(f, content, { mode: 0o600 });
    return f;
  }
  const clean = (r: { code: number; out: string }, what: string) => {
    assert.equal(r.code, 0, `${what}: ${r.out}`);
    assert.doesNotMatch(r.out, /WARN|ERROR/, what);
  };

  it("the database node's file, for archive-push, archive-get and the server", () => {
    const f = write("node.conf", fileOf(plan.steps.find((s) => s.id === "pg1/pgbackrest"), CONF));
    for (const cmd of ["archive-push", "archive-get"]) clean(pgbackrest(f, cmd, true), cmd);
    clean(pgbackrest(f, "server", false), "server");
    assert.match(pgbackrest(f, "archive-push", true, "repo1-host").out, /current: backup1/);
    // pgBackRest itself reads the bounded timeouts for archive-push (and only there).
    assert.match(pgbackrest(f, "archive-push", true, "io-timeout").out, /current: 5/);
    assert.match(pgbackrest(f, "archive-push", true, "protocol-timeout").out, /current: 60/);
    assert.doesNotMatch(pgbackrest(f, "server", false, "io-timeout").out, /current: 5/);
    assert.match(pgbackrest(f, "server", false, "tls-server-auth").out, /current: backup1=pglocal/);
  });

  it("the backup host's file, for backup, expire, check, stanza-create and the server; the passphrase is never printed", () => {
    const f = write("repo.conf", fileOf(plan.steps.find((s) => s.id === "backup1/backup"), CONF));
    for (const cmd of ["backup", "expire", "check", "stanza-create", "info"]) {
      const r = pgbackrest(f, cmd, true);
      clean(r, cmd);
      assert.ok(!r.out.includes(PASSPHRASE), cmd);
    }
    clean(pgbackrest(f, "server", false), "server");
    assert.match(pgbackrest(f, "backup", true, "repo1-retention-full").out, /current: 2/);
    // The command's start line (log-level-console=info) lists every option as parsed, secure ones redacted.
    const begin = pgbackrest(f, "backup", true).out;
    for (const o of ["--pg3-host=pg3", "--pg3-host-type=tls", "--repo1-cipher-pass=<redacted>", "--backup-standby", "--repo1-retention-diff=7"]) assert.ok(begin.includes(` ${o} `) || begin.includes(` ${o}\n`), o);
    const auth = pgbackrest(f, "server", false, "tls-server-auth").out;
    for (const n of ["pg1", "pg2", "pg3"]) assert.match(auth, new RegExp(`${n}=pglocal`));
    const pass = pgbackrest(f, "backup", true, "repo1-cipher-pass");
    assert.ok(!pass.out.includes(PASSPHRASE), "help shows no secure option's value");
  });

  it("the restore drill's file, for info, restore and archive-get (what the restored copy runs); the passphrase is never printed", () => {
    const f = write("drill.conf", fileOf(plan.steps.find((s) => s.id === "backup1/drill"), DRILL.config));
    for (const cmd of ["info", "restore", "archive-get"]) {
      const r = pgbackrest(f, cmd, true);
      clean(r, cmd);
      assert.ok(!r.out.includes(PASSPHRASE), cmd);
    }
    assert.match(pgbackrest(f, "restore", true, "repo1-path").out, /current: \/var\/lib\/pgbackrest/);
    assert.doesNotMatch(fs.readFileSync(f, "utf8"), /-host=/, "the drill never reaches the database nodes");
  });

  it("the check bites: an unknown option, a bad value or a misplaced one fails it", () => {
    const good = fileOf(plan.steps.find((s) => s.id === "backup1/backup"), CONF);
    const typo = write("typo.conf", good.replace("repo1-retention-full=", "repo1-retention-fulll="));
    assert.match(pgbackrest(typo, "backup", true).out, /WARN: configuration file contains invalid option 'repo1-retention-fulll'/);
    const value = write("value.conf", good.replace("repo1-cipher-type=aes-256-cbc", "repo1-cipher-type=rot13"));
    assert.match(pgbackrest(value, "backup", true).out, /ERROR: \[032\]: 'rot13' is not allowed for 'repo1-cipher-type' option/);
    const both = write("both.conf", good.replace("[global]\n", "[global]\nrepo1-host=elsewhere\n"));
    assert.match(pgbackrest(both, "backup", true).out, /ERROR: \[027\]: pg and repo hosts cannot both be configured as remote/);
  });
});

describe("backups: npm run backups (the listing)", () => {
  it("shows each backup with type, end time, sizes and WAL range, and the restorable window; says when nothing can be restored", () => {
    const info = {
      stanza: "pglocal", status: "ok", walMin: "000000010000000000000003", walMax: "0000000A000000000000001C",
      backups: [{ label: "20261127-102632F", type: "full", start: new Date("2026-11-27T10:26:32Z"), stop: new Date("2026-11-27T10:26:41Z"), size: 32_296_960, repoSize: 3_984_588, walStart: "0000000A000000000000001D", walStop: "0000000A000000000000001E" }],
    };
    const lines = describeRepository(info);
    assert.equal(lines[0], "stanza pglocal: ok; WAL archive 000000010000000000000003 … 0000000A000000000000001C");
    assert.match(lines[1], /^ {2}20261127-102632F +full {2}2026-11-27T10:26:41\.000Z {2}database +30\.8 MB {2}stored +3\.8 MB {2}WAL 0000000A000000000000001D … 0000000A000000000000001E$/);
    assert.equal(lines[2], "restorable from 2026-11-27T10:26:41.000Z to the end of the newest archived WAL segment (0000000A000000000000001C)");
    assert.equal(describeRepository({ ...info, walMaxArchivedAt: new Date("2026-11-27T11:00:00Z") })[2],
      "restorable from 2026-11-27T10:26:41.000Z to the end of the newest archived WAL segment (0000000A000000000000001C, archived 2026-11-27T11:00:00.000Z: the latest restorable time is before that)");
    assert.deepEqual(describeRepository({ ...info, backups: [] }).slice(1), ["no backup yet: nothing can be restored"]);
  });
});

describe("backups: the repository's system identifier", () => {
  it("is read as text, all 64 bits (JSON.parse would round it), from the stanza's newest database entry", () => {
    const text = '[{"archive":[{"database":{"id":2,"repo-key":1},"id":"15-2","max":"x","min":"y"}],"backup":[],"cipher":"aes-256-cbc","db":[{"id":1,"repo-key":1,"system-id":7713075608024260001,"version":"15"},{"id":2,"repo-key":1,"system-id":7713075608024268383,"version":"15"}],"name":"pglocal","repo":[],"status":{"code":0,"message":"ok"}}]';
    assert.equal(String(JSON.parse(text)[0].db[1]["system-id"]), "7713075608024269000", "JSON.parse rounds it (why it is read as text)");
    assert.equal(systemIdOf(text), "7713075608024268383");
    assert.equal(systemIdOf('[{"db":[],"name":"pglocal"}]'), undefined);
  });
});

describe("backups: npm run status (the newest backup's age, the last drill)", () => {
  const info = {
    stanza: "pglocal", status: "ok", walMin: "000000010000000000000003", walMax: "00000001000000000000000A",
    backups: [{ label: "20261127-102632F", type: "full", start: new Date("2026-11-27T10:26:32Z"), stop: new Date("2026-11-27T10:26:41Z"), size: 1, repoSize: 1, walStart: "x", walStop: "y" }],
  };
  const drill = { stanza: "pglocal", result: "pass" as const, reason: null, backup: "20261127-102632F", startedAt: 0, finishedAt: Date.parse("2026-11-27T11:00:00Z") / 1000, seconds: 9, tables: 2, rows: 10, recoveredTo: null };
  it("says how old the newest backup and the last drill are, and a failed drill's reason", () => {
    const now = new Date("2026-11-27T13:26:41Z");
    assert.deepEqual(describeBackupStatus(info, drill, now), [
      "backups: newest 20261127-102632F (full) ended 3 h ago; 1 in the repository",
      "restore drill: passed 2 h ago on 20261127-102632F",
    ]);
    assert.match(describeBackupStatus(info, { ...drill, result: "fail", reason: "checksum mismatch" }, now)[1], /^restore drill: FAILED \(checksum mismatch\) 2 h ago/);
  });
  it("says loudly when there is no backup and no drill", () => {
    assert.deepEqual(describeBackupStatus({ ...info, backups: [] }, undefined, new Date()), ["backups: NONE in the repository (nothing can be restored)", "restore drill: never run (npm run backup:verify)"]);
  });
});
