// Logs and statements (issue #14 item 4): the config keys, PostgreSQL's logging and
// pg_stat_statements in Patroni's DCS configuration (and run for real in a scratch PostgreSQL 15
// on a socket in a temporary directory: no cluster, no TCP port), and journald's retention drop-in.
import { strict as assert } from "assert";
import { spawn, type ChildProcess } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ConfigError, LOGGING_OWNED_PARAMETERS, parseClusterSpec, type ClusterSpec } from "../../model/config";
import { readStackFile } from "../../model/stackFile";
import { compile } from "../../roles/compile";
import { JOURNALD_DROPIN } from "../../roles/common";
import { dcsConfig, dcsJson } from "../../roles/patroni";
import { render } from "../../roles/render";
import { stepScript } from "../../roles/script";
import type { FileAction } from "../../roles/step";
import type { Plan, RoleContext } from "../../roles/types";
import { fileOf, hostsOf, localSpec, testPki, TEST_SECRETS } from "../support/fixtures";
import { run } from "../support/tools";

const PEM = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU=\n-----END OPENSSH PRIVATE KEY-----\n";

/** The local stack file's config, changed by `edit`, parsed (throws ConfigError). */
function localWith(edit: (raw: Record<string, any>) => void): ClusterSpec {
  const raw = structuredClone(readStackFile("local").values) as Record<string, any>;
  raw.sshPrivateKey = PEM;
  edit(raw);
  return parseClusterSpec(raw, { stack: "local", secretKeys: new Set(["sshPrivateKey"]), source: "test" });
}

function problems(edit: (raw: Record<string, any>) => void): string {
  try {
    localWith(edit);
  } catch (e) {
    if (e instanceof ConfigError) return e.message;
    throw e;
  }
  return "";
}

const pgWith = (over: Record<string, unknown>) => (raw: Record<string, any>) => { raw.postgresql = { ...raw.postgresql, ...over }; };
const logsWith = (over: Record<string, unknown>) => (raw: Record<string, any>) => { raw.logs = { ...raw.logs, ...over }; };
const parameters = (spec: ClusterSpec) => (dcsConfig({ spec } as RoleContext) as any).postgresql.parameters as Record<string, string | number>;

describe("logs: config", () => {
  it("defaults: slow statements from 250 ms, autovacuum runs from 1 s, a 1G journal kept 30 days", () => {
    const s = localWith(() => {});
    assert.equal(s.postgresql.slowQueryMs, 250);
    assert.equal(s.postgresql.autovacuumLogMs, 1000);
    assert.deepEqual(s.logs, { journalMaxUse: "1G", retentionDays: 30 });
  });

  it("takes -1 (off) to a day in ms for slowQueryMs and autovacuumLogMs, whole numbers only", () => {
    assert.equal(localWith(pgWith({ slowQueryMs: -1 })).postgresql.slowQueryMs, -1);
    assert.equal(localWith(pgWith({ slowQueryMs: 0, autovacuumLogMs: 86_400_000 })).postgresql.autovacuumLogMs, 86_400_000);
    for (const key of ["slowQueryMs", "autovacuumLogMs"]) {
      assert.match(problems(pgWith({ [key]: -2 })), new RegExp(`postgresql\\.${key}: must be at least -1`));
      assert.match(problems(pgWith({ [key]: 86_400_001 })), new RegExp(`postgresql\\.${key}: must be at most 86400000`));
      assert.match(problems(pgWith({ [key]: 2.5 })), new RegExp(`postgresql\\.${key}: must be a whole number`));
      assert.match(problems(pgWith({ [key]: "250; DROP TABLE x" })), new RegExp(`postgresql\\.${key}: `));
    }
  });

  it("journalMaxUse: a whole number of M or G, 16M to 1024G; nothing that could add a line or a setting to the drop-in", () => {
    for (const ok of ["16M", "512M", "1G", "1024G"]) assert.equal(localWith(logsWith({ journalMaxUse: ok })).logs.journalMaxUse, ok);
    for (const bad of ["1G\nStorage=none", "1G #", "1 G", "1g", "10K", "1T", "01G", "0M", "-1G", "1.5G", "", "$(reboot)G"])
      assert.match(problems(logsWith({ journalMaxUse: bad })), /logs\.journalMaxUse: must be a size like 512M or 2G/, JSON.stringify(bad));
    assert.match(problems(logsWith({ journalMaxUse: "15M" })), /logs\.journalMaxUse: must be at least 16M/);
    assert.match(problems(logsWith({ journalMaxUse: "1025G" })), /logs\.journalMaxUse: must be at most 1024G/);
    assert.match(problems(logsWith({ journalMaxUse: 1024 })), /logs\.journalMaxUse: /);
  });

  it("retentionDays: 1 to 3650 whole days; unknown keys under logs are named", () => {
    assert.equal(localWith(logsWith({ retentionDays: 1 })).logs.retentionDays, 1);
    assert.match(problems(logsWith({ retentionDays: 0 })), /logs\.retentionDays: must be greater than 0/);
    assert.match(problems(logsWith({ retentionDays: 3651 })), /logs\.retentionDays: must be at most 3650 \(days\)/);
    assert.match(problems(logsWith({ retentionDays: "30\nStorage=none" })), /logs\.retentionDays: /);
    assert.match(problems(logsWith({ retentionDay: 7 })), /logs\.retentionDay: unknown key — did you mean "retentionDays"\?/);
  });

  it("refuses the logging parameters pgcluster sets, in any case, naming the key to use or why", () => {
    assert.match(problems(pgWith({ parameters: { log_min_duration_statement: 500 } })),
      /postgresql\.parameters\.log_min_duration_statement: is set by pgcluster: use postgresql\.slowQueryMs/);
    assert.match(problems(pgWith({ parameters: { Log_Autovacuum_Min_Duration: 0 } })),
      /postgresql\.parameters\.Log_Autovacuum_Min_Duration: is set by pgcluster: use postgresql\.autovacuumLogMs/);
    for (const p of Object.keys(LOGGING_OWNED_PARAMETERS))
      assert.match(problems(pgWith({ parameters: { [p]: "x" } })), new RegExp(`postgresql\\.parameters\\.${p}: is set by pgcluster: `), p);
    assert.match(problems(pgWith({ parameters: { logging_collector: true } })), /logging_collector: is set by pgcluster: PostgreSQL logs to stderr, which Patroni's unit hands to the journal/);
    // What stays the stack's: the logged events' switches, pg_stat_statements' own settings, more libraries.
    const s = localWith(pgWith({ parameters: { log_temp_files: "10MB", log_checkpoints: false, "pg_stat_statements.track": "all", shared_preload_libraries: "auto_explain" } }));
    assert.equal(s.postgresql.parameters.log_temp_files, "10MB");
  });
});

describe("logs: PostgreSQL's settings in Patroni's DCS configuration", () => {
  it("preloads pg_stat_statements; logs slow statements, checkpoints, lock waits, autovacuum and temp files to stderr with one prefix", () => {
    const p = parameters(localSpec());
    assert.equal(p.shared_preload_libraries, "pg_stat_statements");
    assert.equal(p.log_min_duration_statement, 250);
    assert.equal(p.log_autovacuum_min_duration, 1000);
    assert.equal(p.log_checkpoints, "on");
    assert.equal(p.log_lock_waits, "on");
    assert.equal(p.log_temp_files, 0);
    assert.equal(p.log_destination, "stderr");
    assert.equal(p.logging_collector, "off");
    assert.equal(p.log_line_prefix, "%m [%p] %quser=%u,db=%d,app=%a,client=%h ");
    // The DCS JSON (bootstrap and live) carries them and passes the parameter checks.
    assert.equal(JSON.parse(dcsJson({ spec: localSpec() } as RoleContext)).postgresql.parameters.shared_preload_libraries, "pg_stat_statements");
  });

  it("takes the values from config; the stack may switch the logged events and add libraries (pg_stat_statements stays, once)", () => {
    const p = parameters(localWith(pgWith({
      slowQueryMs: -1, autovacuumLogMs: 0,
      parameters: { shared_preload_libraries: "auto_explain, pg_stat_statements,pg_prewarm", log_temp_files: "10MB", log_lock_waits: false },
    })));
    assert.equal(p.log_min_duration_statement, -1);
    assert.equal(p.log_autovacuum_min_duration, 0);
    assert.equal(p.shared_preload_libraries, "pg_stat_statements,auto_explain,pg_prewarm");
    assert.equal(p.log_temp_files, "10MB");
    assert.equal(p.log_lock_waits, "off");
    assert.equal(parameters(localWith(pgWith({ parameters: { shared_preload_libraries: "" } }))).shared_preload_libraries, "pg_stat_statements");
  });

  it("the patroni step's bootstrap configuration carries the same settings", async () => {
    const spec = localSpec();
    const hosts = hostsOf(spec);
    const plan = compile(spec, hosts, await testPki(spec, hosts), TEST_SECRETS);
    const yml = fileOf(plan.steps.find((s) => s.id === "pg1/patroni"), "/etc/patroni/config.yml");
    assert.match(yml, /"shared_preload_libraries":"pg_stat_statements"/);
    assert.match(yml, /"log_line_prefix":"%m \[%p\] %quser=%u,db=%d,app=%a,client=%h "/);
  });
});

describe("logs: what the plan changes", () => {
  let plan: Plan;
  let spec: ClusterSpec;
  const changedBy = async (edit: (raw: Record<string, any>) => void) => {
    const other = localWith(edit);
    const hosts = hostsOf(other);
    const p = compile(other, hosts, await testPki(other, hosts), TEST_SECRETS);
    return p.steps.filter((s, i) => s.digest !== plan.steps[i].digest).map((s) => s.id);
  };
  before(async () => {
    spec = localSpec();
    const hosts = hostsOf(spec);
    plan = compile(spec, hosts, await testPki(spec, hosts), TEST_SECRETS);
  });

  it("every host's common step installs the journald drop-in and restarts journald only when it changed", () => {
    const commons = plan.steps.filter((s) => s.role === "common");
    assert.deepEqual(commons.map((s) => s.host).sort(), spec.hosts.map((h) => h.name).sort());
    for (const s of commons) {
      const f = s.actions.find((a): a is FileAction => a.kind === "file" && a.path === JOURNALD_DROPIN)!;
      assert.ok(f, s.id);
      assert.deepEqual(f.notify, [{ kind: "restart", unit: "systemd-journald" }]);
      assert.equal(f.content, commons[0].actions.find((a): a is FileAction => a.kind === "file" && a.path === JOURNALD_DROPIN)!.content, "the same on every host");
      // pgc_file notifies only when the file differs (a re-apply restarts nothing)
      assert.match(stepScript(s), /pgc_file '\/etc\/systemd\/journald\.conf\.d\/pgcluster\.conf' 'root' 'root' '0644' --notify 'restart:systemd-journald' <</);
    }
  });

  it("a retention change touches exactly the common step of every host; slowQueryMs only the DCS (the database nodes' patroni and restart steps)", async () => {
    assert.deepEqual(await changedBy(logsWith({ retentionDays: 7 })), spec.hosts.map((h) => `${h.name}/common`));
    assert.deepEqual(await changedBy(pgWith({ slowQueryMs: 1000 })), ["pg1/patroni", "pg2/patroni", "pg3/patroni", "pg1/restart", "pg2/restart", "pg3/restart"]);
  });

  it("the database step creates pg_stat_statements in postgres and the application database, with its slow-statement log off", () => {
    const script = stepScript(plan.steps.find((s) => s.id === "pg1/database")!);
    assert.match(script, /for db in template1 postgres 'app'; do/);
    assert.match(script, /\[\[ \$db == template1 \]\] && continue/);
    assert.match(script, /SELECT format\('CREATE EXTENSION IF NOT EXISTS %I', 'pg_stat_statements'\) WHERE :'check' <> '1' AND NOT EXISTS \(SELECT FROM pg_extension WHERE extname = 'pg_stat_statements'\) \\gexec/);
    assert.match(script, /PGOPTIONS='-c log_min_duration_statement=-1' psql /);
  });
});

describe("logs: journald drop-in", () => {
  let text: string;
  before(async () => {
    const spec = localSpec();
    const hosts = hostsOf(spec);
    text = fileOf(compile(spec, hosts, await testPki(spec, hosts), TEST_SECRETS).steps.find((s) => s.id === "pg1/common"), JOURNALD_DROPIN);
  });

  it("renders persistent storage, the size cap, the retention and daily files", () => {
    const settings = text.split("\n").filter((l) => l && !l.startsWith("#"));
    assert.deepEqual(settings, ["[Journal]", "Storage=persistent", "SystemMaxUse=1G", "MaxRetentionSec=30day", "MaxFileSec=1day"]);
    assert.match(render("common", "journald.conf", { maxUse: "512M", retentionDays: 7 }), /^SystemMaxUse=512M\nMaxRetentionSec=7day$/m);
  });

  it("the quoting bites even without validation: a value that would add a line is refused at render", () => {
    assert.throws(() => render("common", "journald.conf", { maxUse: "1G\nStorage=none", retentionDays: 30 }), /logs\.journalMaxUse cannot be written into a configuration file token: it contains U\+000A/);
    assert.throws(() => render("common", "journald.conf", { maxUse: "1G", retentionDays: "30\nStorage=none" }), /logs\.retentionDays cannot be written into an integer setting/);
  });

  it("Debian 12's journald knows every key, reads the drop-in's directory, and parses the time spans", () => {
    const binary = fs.readFileSync("/lib/systemd/systemd-journald").toString("latin1");
    for (const line of text.split("\n").filter((l) => /^[A-Za-z]+=/.test(l))) {
      const key = line.split("=")[0];
      assert.ok(binary.includes(`Journal.${key}\0`), `journald has no setting ${key}`);
    }
    assert.ok(!binary.includes("Journal.NoSuchSetting\0"), "the key check bites");
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "pgc-journald-"));
    try {
      fs.mkdirSync(path.join(root, path.dirname(JOURNALD_DROPIN)), { recursive: true });
      fs.writeFileSync(path.join(root, JOURNALD_DROPIN), text);
      const r = run("systemd-analyze", ["cat-config", `--root=${root}`, "systemd/journald.conf"]);
      assert.equal(r.code, 0, r.out);
      assert.ok(r.out.includes(`${JOURNALD_DROPIN}\n${text}`), r.out);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
    for (const span of ["30day", "1day", "3650day"]) {
      const r = run("systemd-analyze", ["timespan", span]);
      assert.equal(r.code, 0, r.out);
    }
  });
});

/**
 * PostgreSQL 15 run with the DCS parameters as Patroni writes them (`name = 'value'` in
 * postgresql.conf), as the postgres user (it refuses root), on a Unix socket only, its stderr
 * (what Patroni's unit hands to the journal) captured in a file.
 */
describe("logs: a scratch PostgreSQL 15 with the rendered settings (stderr as the journal gets it)", function () {
  this.timeout(120_000);
  const BIN = "/usr/lib/postgresql/15/bin";
  const PORT = 5499;
  let dir: string;
  let server: ChildProcess | undefined;
  const stderrFile = () => path.join(dir, "stderr.log");
  const asPostgres = (cmd: string, args: string[], env: Record<string, string> = {}, input?: string) =>
    run("runuser", ["-u", "postgres", "--", "env", ...Object.entries(env).map(([k, v]) => `${k}=${v}`), cmd, ...args], input);
  const psql = (sql: string, env: Record<string, string> = {}, vars: string[] = []) => {
    const r = asPostgres(`${BIN}/psql`, ["-XAtq", "-v", "ON_ERROR_STOP=1", ...vars, "-h", dir, "-p", String(PORT), "-d", "postgres"], { PGAPPNAME: "pgc-logs-test", ...env }, sql);
    assert.equal(r.code, 0, r.out);
    return r.out.trim();
  };
  const logLines = () => fs.readFileSync(stderrFile(), "utf8").split("\n");

  before(async function () {
    assert.ok(fs.existsSync(`${BIN}/postgres`), `${BIN} missing: .ci/run installs postgresql-15 (no cluster) for this check`);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgc-logs-"));
    const pgUid = Number(run("id", ["-u", "postgres"]).out.trim());
    fs.chownSync(dir, pgUid, -1);
    const init = asPostgres(`${BIN}/initdb`, ["-D", `${dir}/data`, "-A", "peer", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"]);
    assert.equal(init.code, 0, init.out);
    // Patroni's way: every parameter written as name = 'value' (quotes doubled).
    const spec = localWith((raw) => { raw.backup = { enabled: false }; raw.hosts = raw.hosts.filter((h: { roles: string[] }) => !h.roles.includes("backup")); });
    const params = { ...parameters(spec), listen_addresses: "", unix_socket_directories: dir, port: PORT };
    const conf = Object.entries(params).map(([k, v]) => `${k} = '${String(v).replace(/'/g, "''")}'`).join("\n");
    fs.appendFileSync(`${dir}/data/postgresql.conf`, `\n${conf}\n`);
    const err = fs.openSync(stderrFile(), "w");
    fs.chownSync(stderrFile(), pgUid, -1);
    server = spawn("runuser", ["-u", "postgres", "--", `${BIN}/postgres`, "-D", `${dir}/data`], { stdio: ["ignore", "ignore", err] });
    fs.closeSync(err);
    const t0 = Date.now();
    while (run(`${BIN}/pg_isready`, ["-h", dir, "-p", String(PORT)]).code !== 0) {
      if (Date.now() - t0 > 30_000 || server.exitCode !== null) throw new Error(`PostgreSQL did not start:\n${fs.readFileSync(stderrFile(), "utf8")}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  });

  after(async () => {
    if (server && server.exitCode === null) {
      const exited = new Promise((r) => server!.once("exit", r));
      asPostgres(`${BIN}/pg_ctl`, ["-D", `${dir}/data`, "stop", "-m", "fast", "-w"]);
      await exited;
    }
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("runs with the settings: pg_stat_statements loaded, logging to stderr without a collector", () => {
    assert.equal(psql("show shared_preload_libraries"), "pg_stat_statements");
    assert.equal(psql("show logging_collector"), "off");
    assert.equal(psql("show log_destination"), "stderr");
    assert.equal(psql("show log_min_duration_statement"), "250ms");
    assert.equal(psql("show log_autovacuum_min_duration"), "1s");
    assert.equal(psql("show log_lock_waits"), "on");
  });

  it("the database step's SQL: check mode reports the missing extension and creates nothing; apply creates it once; pg_stat_statements then counts", async () => {
    const spec = localSpec();
    const hosts = hostsOf(spec);
    const plan = compile(spec, hosts, await testPki(spec, hosts), TEST_SECRETS);
    const source = plan.steps.find((s) => s.id === "pg1/database")!.actions.map((a) => (a.kind === "shell" ? a.source : "")).join("\n");
    const sql = source.split("\n").filter((l) => /^SELECT 'extension:|^SELECT format\('CREATE EXTENSION/.test(l)).join("\n");
    assert.equal(sql.split("\n").length, 2, source);
    assert.equal(psql(sql, {}, ["-v", "check=1"]), "extension:postgres.pg_stat_statements created");
    assert.equal(psql("select count(*) from pg_extension where extname = 'pg_stat_statements'"), "0");
    assert.equal(psql(sql, {}, ["-v", "check=0"]), "extension:postgres.pg_stat_statements created");
    assert.equal(psql(sql, {}, ["-v", "check=0"]), "", "a second run changes nothing and says nothing (no NOTICE on stderr either)");
    psql("select pg_sleep(0.3)");
    assert.ok(Number(psql("select sum(calls) from pg_stat_statements where query like '%pg_sleep%'")) >= 1);
  });

  it("a slow statement is logged with its duration under the prefix (time, pid, user, database, application, client); a fast one is not", () => {
    psql("select pg_sleep(0.3) as slow_one");
    psql("select 1 as fast_one");
    const line = logLines().find((l) => l.includes("slow_one"));
    assert.ok(line, logLines().join("\n"));
    assert.match(line, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \S+ \[\d+\] user=postgres,db=postgres,app=pgc-logs-test,client=\[local\] LOG: {2}duration: \d+\.\d+ ms {2}statement: select pg_sleep\(0\.3\) as slow_one$/);
    assert.ok(!logLines().some((l) => l.includes("fast_one")));
  });

  it("checkpoints (no session: the prefix stops after the pid) and temporary files are logged", () => {
    psql("checkpoint");
    psql("set work_mem = '64kB'; select count(*) from (select g from generate_series(1, 100000) g order by g desc) s");
    assert.ok(logLines().some((l) => /^\S+ \S+ \S+ \[\d+\] LOG: {2}checkpoint complete: /.test(l)), logLines().join("\n"));
    assert.ok(logLines().some((l) => /\[\d+\] user=postgres,db=postgres,app=pgc-logs-test,client=\[local\] LOG: {2}temporary file: path "[^"]+", size \d+$/.test(l)), logLines().join("\n"));
  });

  it("the database step's sessions (PGOPTIONS) keep their statements out of the log", () => {
    psql("select pg_sleep(0.3) as hidden_one", { PGOPTIONS: "-c log_min_duration_statement=-1" });
    psql("select pg_sleep(0.3) as shown_one");
    assert.ok(logLines().some((l) => l.includes("shown_one")), "the same statement without PGOPTIONS is logged (the check bites)");
    assert.ok(!logLines().some((l) => l.includes("hidden_one")));
  });
});
