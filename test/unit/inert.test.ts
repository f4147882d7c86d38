// Issue #9 item 3: even a config value that bypassed validation stays inert where it is used.
// The spec is built directly (no parseClusterSpec) from the local stack's, with hostile values.
// Shell fragments taken from the compiled plan run under bash with a PATH that holds only stubs
// of the system commands (they record their argv) and a few harmless real tools, touch among
// them: an injected `$(touch …)` would leave a marker file, and none may appear.
import { strict as assert } from "assert";
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import YAML from "yaml";
import { compile } from "../../roles/compile";
import { database } from "../../roles/database";
import { render } from "../../roles/render";
import { shq, sqlLiteral } from "../../roles/quote";
import { stepScript } from "../../roles/script";
import { StepBuilder } from "../../roles/step";
import type { ClusterSpec, Pki, Plan, RoleContext, Secrets } from "../../roles/types";
import { ensurePki } from "../../local/pki";
import { writeEnvFile, type LocalCluster } from "../../local/cluster";
import { localSpec, hostsOf, testPki, TEST_SECRETS, fileOf } from "../support/fixtures";
import { run } from "../support/tools";

const PRELUDE = fs.readFileSync(path.join(__dirname, "../../roles/lib/prelude.sh"), "utf8");

/** A value that tries every way into bash: $( ), backticks, ; and both quotes, and a line break. */
function hostile(tag: string, dir: string): string {
  const t = (n: number) => `touch ${dir}pwned-${tag}-${n}`;
  return `${tag}$(${t(1)})\`${t(2)}\`;${t(3)};'"$(${t(4)})"'\n$(${t(5)}) `;
}
/** The same without a line break (formats that refuse one are tested for the refusal). */
const oneLine = (tag: string, dir: string) => hostile(tag, dir).replace(/\n/g, " ");

function markers(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.name.startsWith("pwned")) out.push(path.join(d, e.name));
      if (e.isDirectory() && !e.isSymbolicLink()) walk(path.join(d, e.name));
    }
  };
  walk(dir);
  return out;
}

function which(cmd: string): string {
  const r = spawnSync("bash", ["-c", `command -v ${cmd}`], { encoding: "utf8" });
  const p = r.stdout.trim();
  if (!p.startsWith("/")) throw new Error(`${cmd} not found on this machine`);
  return p;
}

interface Sandbox { dir: string; work: string; bin: string }

function sandbox(): Sandbox {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgc-inert-"));
  const work = path.join(dir, "work");
  const bin = path.join(dir, "bin");
  fs.mkdirSync(work);
  fs.mkdirSync(bin);
  // Real tools that change nothing outside the sandbox; touch must be real so an injection shows.
  for (const t of ["touch", "mktemp", "rm", "grep", "cat", "sleep", "tail", "date", "stat"]) fs.symlinkSync(which(t), path.join(bin, t));
  fs.symlinkSync("/usr/bin/python3", path.join(bin, "python3")); // Debian's, as on the hosts
  return { dir, work, bin };
}

/**
 * A stub command: records its name, argv, stdin and the content of any @file argument (curl's
 * --data-binary) as one record, then runs `body` (bash, builtins only).
 */
function stub(sb: Sandbox, name: string, body = "exit 0"): void {
  fs.writeFileSync(path.join(sb.bin, name), [
    "#!/bin/bash",
    'stdin=""; [[ -t 0 ]] || IFS= read -r -d "" stdin || true',
    'files=(); for a in "$@"; do [[ $a == @/* && -f ${a#@} ]] && files+=("FILE:$(<"${a#@}")"); done',
    '{ printf "%s\\0" "${0##*/}" "$@" "STDIN:$stdin" "${files[@]}"; printf "\\1"; } >> "$PGC_TEST_CALLS"',
    body, "",
  ].join("\n"), { mode: 0o755 });
}

interface Call { cmd: string; args: string[]; stdin: string; files: string[] }

function runIn(sb: Sandbox, script: string, env: Record<string, string> = {}): { code: number; out: string; calls: Call[] } {
  const calls = path.join(sb.dir, "calls");
  fs.writeFileSync(calls, "");
  const file = path.join(sb.dir, "script.sh");
  fs.writeFileSync(file, script);
  const r = spawnSync("/bin/bash", [file], {
    cwd: sb.work, encoding: "utf8", input: "",
    env: { PATH: sb.bin, HOME: sb.dir, PGC_TEST_CALLS: calls, LC_ALL: "C.UTF-8", ...env },
  });
  const parsed = fs.readFileSync(calls, "utf8").split("\x01").filter(Boolean).map((rec) => {
    const f = rec.split("\0").slice(0, -1);
    const stdinAt = f.findIndex((x) => x.startsWith("STDIN:"));
    return { cmd: f[0], args: f.slice(1, stdinAt), stdin: f[stdinAt].slice(6), files: f.slice(stdinAt + 1).map((x) => x.slice(5)) };
  });
  return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}`, calls: parsed };
}

/** The prelude's helpers around a fragment, as in a step script. */
const harness = (fragment: string) => `set -euo pipefail\nPGC_STEP=test\n{\n${PRELUDE}\n${fragment}\npgc_result\n} </dev/null\n`;

function clone(spec: ClusterSpec): ClusterSpec {
  return structuredClone(spec);
}

/** Compile with certificates for every host name (a hostile name gets pg1's pair). */
function compileWith(spec: ClusterSpec, pki: Pki, secrets: Secrets = TEST_SECRETS): Plan {
  const hosts = hostsOf(spec);
  const nodes = Object.fromEntries(hosts.map((h) => [h.name, pki.nodes[h.name] ?? pki.nodes.pg1]));
  return compile(spec, hosts, { ...pki, nodes }, secrets);
}

describe("an unvalidated config value stays inert where it is used", function () {
  this.timeout(60000);
  let pki: Pki;
  let base: ClusterSpec;
  const boxes: Sandbox[] = [];
  const box = () => { const b = sandbox(); boxes.push(b); return b; };
  before(async () => {
    base = localSpec();
    pki = await testPki(base, hostsOf(base));
  });
  after(() => boxes.forEach((b) => fs.rmSync(b.dir, { recursive: true, force: true })));

  it("control: this harness does see an injection (a value spliced raw into bash runs)", () => {
    const sb = box();
    stub(sb, "blkid");
    runIn(sb, `blkid ${hostile("raw", "")} || true\n`);
    assert.ok(markers(sb.work).length > 0, "the unquoted splice created no marker: the harness could not tell");
  });

  describe("hosts[].dataDevice (data-disk step), in check mode and in apply mode", () => {
    let sb: Sandbox;
    let device: string;
    let fragment: string;
    before(() => {
      sb = box();
      // An existing block device under the hostile name, so the script takes its real path.
      const blockDev = fs.readdirSync("/dev").map((f) => `/dev/${f}`).find((f) => { try { return fs.statSync(f).isBlockDevice(); } catch { return false; } });
      assert.ok(blockDev, "no block device on this machine to point the hostile device name at");
      fs.mkdirSync(path.join(sb.dir, "dev"));
      device = path.join(sb.dir, "dev", hostile("disk", "")); // markers relative to the working dir
      fs.symlinkSync(blockDev, device);
      const spec = clone(base);
      spec.hosts.find((h) => h.name === "pg1")!.dataDevice = device;
      const script = stepScript(compileWith(spec, pki).steps.find((s) => s.id === "pg1/postgresql")!);
      const start = script.indexOf("# Data disk:");
      const end = script.indexOf("\npgc_packages ", start);
      assert.ok(start > 0 && end > start, "data-disk fragment not found");
      // The fragment's own fstab, in the sandbox.
      fragment = script.slice(start, end).replace(/\/etc\/fstab/g, path.join(sb.dir, "fstab"));
      fs.writeFileSync(path.join(sb.dir, "fstab"), "");
      stub(sb, "blkid", 'case " $* " in *" UUID "*) echo 0000-TEST ;; *) exit 2 ;; esac');
      stub(sb, "mountpoint", "exit 1");
      for (const c of ["mkfs.ext4", "mount", "install"]) stub(sb, c);
      stub(sb, "hostname", "echo testhost");
    });

    it("check mode: reports, changes nothing, runs nothing from the value", () => {
      const r = runIn(sb, harness(fragment), { PGCLUSTER_CHECK: "1" });
      assert.equal(r.code, 0, r.out);
      assert.deepEqual(markers(sb.dir), []);
      assert.deepEqual(r.calls.find((c) => c.cmd === "blkid")!.args, ["-o", "value", "-s", "TYPE", "--", device], "the device reached blkid as one literal argument");
      assert.ok(!r.calls.some((c) => ["mkfs.ext4", "mount", "install"].includes(c.cmd)), "check mode ran a changing command");
      assert.ok(r.out.includes(`DRIFT disk:${device} formatted ext4`));
    });

    it("apply mode: mkfs and fstab get the literal device and mount point", () => {
      const r = runIn(sb, harness(fragment), { PGCLUSTER_CHECK: "0" });
      assert.equal(r.code, 0, r.out);
      assert.deepEqual(markers(sb.dir), []);
      assert.deepEqual(r.calls.find((c) => c.cmd === "mkfs.ext4")!.args, ["-q", "-L", "pgdata", "--", device]);
      assert.deepEqual(r.calls.find((c) => c.cmd === "mount")!.args, ["--", "/var/lib/postgresql"]);
      assert.equal(fs.readFileSync(path.join(sb.dir, "fstab"), "utf8"), "UUID=0000-TEST /var/lib/postgresql ext4 defaults,noatime,nofail 0 2\n");
    });

    it("the issue's own value (/dev/sdz$(cmd), check mode) runs nothing", () => {
      const issue = path.join(sb.dir, "dev", "sdz$(touch pwned-issue)");
      fs.symlinkSync(fs.readlinkSync(device), issue);
      const spec = clone(base);
      spec.hosts.find((h) => h.name === "pg1")!.dataDevice = issue;
      const script = stepScript(compileWith(spec, pki).steps.find((s) => s.id === "pg1/postgresql")!);
      const start = script.indexOf("# Data disk:");
      const r = runIn(sb, harness(script.slice(start, script.indexOf("\npgc_packages ", start))), { PGCLUSTER_CHECK: "1" });
      assert.equal(r.code, 0, r.out);
      assert.deepEqual(markers(sb.dir), []);
      assert.deepEqual(r.calls.find((c) => c.cmd === "blkid")!.args, ["-o", "value", "-s", "TYPE", "--", issue]);
    });

    it("a device that does not exist: the failure names it literally", () => {
      const spec = clone(base);
      const missing = `/dev/sdz${hostile("nodisk", `${sb.dir}/`)}`;
      spec.hosts.find((h) => h.name === "pg1")!.dataDevice = missing;
      const script = stepScript(compileWith(spec, pki).steps.find((s) => s.id === "pg1/postgresql")!);
      const start = script.indexOf("# Data disk:");
      const r = runIn(sb, harness(script.slice(start, script.indexOf("\npgc_packages ", start))), { PGCLUSTER_CHECK: "1" });
      assert.equal(r.code, 1);
      assert.ok(r.out.includes(`FAILED: data device ${missing} does not exist on testhost`), r.out);
      assert.deepEqual(markers(sb.dir), []);
    });
  });

  describe("postgresql.database, postgresql.appUser, clusterName and parameters in the database step (bash and SQL)", () => {
    let sb: Sandbox;
    let ctx: RoleContext;
    let names: { database: string; appUser: string; cluster: string; param: string };
    const step = (c: RoleContext) => stepScript({ id: "pg1/database", actions: database.step(c, c.hosts.find((h) => h.name === "pg1")!).actions });
    before(() => {
      sb = box();
      const d = `${sb.dir}/`;
      names = { database: oneLine("db", d), appUser: oneLine("app", d), cluster: hostile("cluster", d), param: hostile("param", d).replace(/\n/g, "") };
      const spec = clone(base);
      spec.postgresql.database = names.database;
      spec.postgresql.appUser = names.appUser;
      spec.clusterName = names.cluster;
      spec.postgresql.parameters = { application_name: names.param };
      ctx = { spec, hosts: hostsOf(spec), pki, secrets: TEST_SECRETS };
      stub(sb, "runuser", 'case "$*" in *pg_is_in_recovery*) echo f ;; esac');
      stub(sb, "curl", 'case "$*" in */cluster*) echo \'"role": "leader"\' ;; esac');
    });

    it("the values appear only in their quoted forms (the script is the benign one with the quoted value swapped in)", () => {
      const benign = clone(ctx.spec);
      Object.assign(benign.postgresql, { database: "benigndb", appUser: "benignapp", parameters: { application_name: "benignparam" } });
      benign.clusterName = "benigncluster";
      let text = step(ctx);
      for (const [v, b] of [[names.database, "benigndb"], [names.appUser, "benignapp"], [names.cluster, "benigncluster"]]) {
        text = text.split(shq(v)).join(shq(b));
        if (!v.includes("\n")) text = text.split(sqlLiteral(v)).join(sqlLiteral(b));
      }
      const expected = step({ ...ctx, spec: benign });
      const at = [...text].findIndex((ch, i) => ch !== expected[i]);
      assert.equal(at, -1, `differs at: ${JSON.stringify(text.slice(at - 40, at + 40))} vs ${JSON.stringify(expected.slice(at - 40, at + 40))}`);
      assert.equal(text.length, expected.length);
      assert.ok(!text.includes("pwned"), "a piece of a value outside its quoted form");
    });

    for (const check of ["0", "1"]) {
      it(`runs without executing anything from the values (${check === "1" ? "check" : "apply"} mode); each reaches psql as one literal`, () => {
        const r = runIn(sb, step(ctx), { PGCLUSTER_CHECK: check });
        assert.equal(r.code, 0, r.out.replace(/test-[A-Za-z]+Password[^\n]*/g, "<secret>"));
        assert.deepEqual(markers(sb.dir), []);
        assert.ok(r.out.includes(`a leader in cluster ${names.cluster}: ok`) || check === "1");
        const psql = r.calls.filter((c) => c.cmd === "runuser");
        if (check === "0") {
          // the database by PGDATABASE (libpq takes it literally), never by a -d argument
          assert.ok(psql.some((c) => c.args.includes(`PGDATABASE=${names.database}`)), "database not passed as one literal");
          const main = psql.find((c) => c.stdin.includes("ensure_role"))!.stdin;
          assert.ok(main.includes(`WHERE datname = ${sqlLiteral(names.database)}`));
          assert.ok(main.includes(`pg_temp.ensure_role(${sqlLiteral(names.appUser)},`));
        } else {
          assert.ok(psql.some((c) => c.args.includes(`db=${names.database}`) && c.stdin === "select 1 from pg_database where datname = :'db'\n"),
            "check mode looks the database up through a psql variable");
        }
      });
    }
  });

  describe("postgresql.parameters in the patroni step's DCS sync (JSON in one bash word, to patronictl on stdin)", () => {
    for (const check of ["0", "1"]) {
      it(`runs nothing from the value (${check === "1" ? "check" : "apply"} mode); the value reaches patronictl as its JSON value`, () => {
        const sb = box();
        const param = hostile("param", `${sb.dir}/`).replace(/\n/g, "");
        const spec = clone(base);
        spec.postgresql.parameters = { application_name: param };
        const dcs = compileWith(spec, pki).steps.find((s) => s.id === "pg1/patroni")!.actions.find((a) => a.kind === "shell" && a.template === "patroni/dcs.sh");
        assert.ok(dcs && dcs.kind === "shell", "the patroni step carries the DCS shell");
        // runuser -u postgres -- CMD: runs CMD with its stdin (not a recording stub, which reads stdin).
        fs.writeFileSync(path.join(sb.bin, "runuser"), '#!/bin/bash\nwhile [[ $1 != -- ]]; do shift; done; shift; exec "$@"\n', { mode: 0o755 });
        stub(sb, "patronictl", 'case "$*" in *show-config*) echo "ttl: 10" ;; esac');
        const r = runIn(sb, harness(`${dcs.source}\npgc_dcs_sync`), { PGCLUSTER_CHECK: check });
        assert.equal(r.code, 0, r.out);
        assert.deepEqual(markers(sb.dir), []);
        assert.ok(r.out.includes(`patroni-dcs:postgresql.parameters.application_name=${JSON.stringify(param)}`), `the difference is reported with the value as JSON: ${r.out}`);
        const edit = r.calls.find((c) => c.cmd === "patronictl" && c.args.includes("edit-config"));
        if (check === "1") assert.equal(edit, undefined, "check mode changed the DCS");
        else assert.equal(JSON.parse(edit!.stdin).postgresql.parameters.application_name, param, "the parameter reached patronictl as its JSON value");
      });
    }
  });

  describe("config files: a value the format cannot hold is refused at render time, naming its purpose", () => {
    const refuses = (mutate: (s: ClusterSpec) => void, pattern: RegExp, secrets?: Secrets) => () => {
      const spec = clone(base);
      mutate(spec);
      assert.throws(() => compileWith(spec, pki, secrets), (e: Error) => {
        assert.match(e.message, pattern);
        assert.ok(!/touch|Pre-Invoke|trust/.test(e.message), `the refusal repeats the value: ${e.message}`);
        return true;
      });
    };
    const d = "/tmp/";
    it("apt.proxy: a quote would end the apt.conf string (Dpkg::Pre-Invoke runs as root)",
      refuses((s) => { s.apt.proxy = `http://10.213.0.1:3142/"; Dpkg::Pre-Invoke {"touch /tmp/pwned";}; //`; }, /apt-proxy\.conf\.hbs: apt\.proxy cannot be written into an apt\.conf string: it contains '"'/));
    it("apt.proxy: a line break, braces, ';'", () => {
      for (const [v, ch] of [["http://p:1/\nDpkg::Pre-Invoke", "U+000A"], ["http://p:1/{x}", "'{'"], ["http://p:1/;", "';'"], ["http://p:1/a b", "' '"]])
        refuses((s) => { s.apt.proxy = v; }, new RegExp(`apt\\.proxy cannot be written into an apt\\.conf string: it contains ${ch.replace(/[{}+]/g, "\\$&")}`))();
    });
    it("host name (etcd.env, haproxy.cfg, patroni.yml)", refuses((s) => { s.hosts[1].name = oneLine("host", d); }, /host name cannot be written into an identifier: it contains '\$'/));
    it("host address", refuses((s) => { s.hosts[1].address = "10.213.0.11\nETCD_INITIAL_CLUSTER_STATE=existing"; }, /host address cannot be written into an IPv4 address/));
    it("clusterName", refuses((s) => { s.clusterName = hostile("cl", d); }, /clusterName cannot be written into an identifier/));
    it("pgbouncer.poolMode", refuses((s) => { s.pgbouncer.poolMode = "session\nauth_type = trust" as any; }, /pgbouncer\.poolMode cannot be written into an identifier: it contains U\+000A/));
    it("pgbouncer.maxClientConn (a string where a number belongs)", refuses((s) => { (s.pgbouncer as any).maxClientConn = "100\nauth_type = trust"; }, /pgbouncer\.maxClientConn cannot be written into an integer setting/));
    it("haproxy.maxConn", refuses((s) => { (s.haproxy as any).maxConn = "10\n    stats socket /tmp/x level admin"; }, /haproxy\.maxConn cannot be written into an integer setting/));
    it("network.cidr (pg_hba)", refuses((s) => { s.network.cidr = "all trust\nhost all all 0.0.0.0/0"; }, /network\.cidr cannot be written into an IPv4 CIDR/));
    it("postgresql.appUser with a line break (pg_hba: one entry per line)", refuses((s) => { s.postgresql.appUser = "x\nhost all all 0.0.0.0/0 trust"; }, /a pooled user cannot be written into pg_hba\.conf: it contains U\+000A/));
    it("postgresql.database with a line break (the SQL travels in a here-document)", refuses((s) => { s.postgresql.database = "x\nPGC_SQL\ntouch /tmp/pwned"; }, /postgresql\.database cannot be written into a SQL string literal: it contains U\+000A/));
    it("postgresql.parameters: a name Patroni would write unquoted, a value with a line break", () => {
      refuses((s) => { s.postgresql.parameters = { "work_mem = '1MB'\nssl": "off" }; }, /a key of postgresql\.parameters cannot be written into postgresql\.conf/)();
      refuses((s) => { s.postgresql.parameters = { work_mem: "1MB'\nssl = off" }; }, /postgresql\.parameters\.work_mem cannot be written into postgresql\.conf: it contains U\+000A/)();
    });
    it("a provided pgbouncerAuthPassword with a line break (userlist.txt: one entry per line)",
      refuses(() => {}, /pgbouncerAuthPassword cannot be written into pgBouncer's auth_file/, { ...TEST_SECRETS, pgbouncerAuthPassword: "pw\n\"postgres\" \"x\"" }));
  });

  it("apt.proxy: every other printable character survives apt's own parser unchanged", () => {
    const sb = box();
    const proxy = "http://us%40er:p'a$s(w)o!r*d@10.213.0.1:3142/a#b//c/*x*/?q=1&r=[2]~+,=";
    const file = path.join(sb.dir, "proxy.conf");
    fs.writeFileSync(file, render("common", "apt-proxy.conf", { proxy }));
    const r = run("apt-config", ["-c", file, "dump", "Acquire::http::Proxy"]);
    assert.equal(r.code, 0, r.out);
    assert.ok(r.out.includes(`Acquire::http::Proxy "${proxy}";`), r.out);
  });

  it("pg_hba / pg_ident: an appUser that is a keyword or holds blanks stays one quoted name", () => {
    const spec = clone(base);
    spec.postgresql.appUser = "all 0.0.0.0/0 trust #";
    const cfg = YAML.parse(fileOf(compileWith(spec, pki).steps.find((s) => s.id === "pg1/patroni"), "/etc/patroni/config.yml"));
    const line = (cfg.postgresql.pg_hba as string[]).find((l) => l.includes("map=pooler"))!;
    assert.equal(line, 'hostssl all "all 0.0.0.0/0 trust #",pgbouncer_auth 127.0.0.1/32 cert map=pooler');
    assert.ok((cfg.postgresql.pg_ident as string[]).includes('pooler pgbouncer "all 0.0.0.0/0 trust #"'));
    spec.postgresql.appUser = "all";
    const cfg2 = YAML.parse(fileOf(compileWith(spec, pki).steps.find((s) => s.id === "pg1/patroni"), "/etc/patroni/config.yml"));
    assert.ok((cfg2.postgresql.pg_hba as string[]).includes('hostssl all "all",pgbouncer_auth 127.0.0.1/32 cert map=pooler'), "a quoted keyword is a name");
  });

  describe("tls.rotation in certificate subjects (local PKI)", () => {
    for (const rotation of ["1, CN=evil", "1+CN=evil", "#3003020101", '1\\, CN="evil"']) {
      it(`"${rotation}": exactly one CN, the value only inside serialNumber`, async () => {
        const spec = clone(base);
        spec.tls.rotation = rotation;
        const state = await ensurePki(spec, { lb1: "10.213.0.10", lb2: "10.213.0.9", pg1: "10.213.0.11", pg2: "10.213.0.12", pg3: "10.213.0.13", backup1: "10.213.0.30", mon1: "10.213.0.40" }, undefined);
        for (const id of ["pg1", "replication"]) {
          const cert = new x509.X509Certificate(state.certs[id].cert);
          assert.deepEqual(cert.subjectName.getField("CN"), [id === "pg1" ? "pg1" : "replicator"]);
          assert.deepEqual(cert.subjectName.getField("2.5.4.5"), [`ca-1.r-${rotation}`]);
          assert.equal(cert.subjectName.toJSON().length, 3, "CN, O, serialNumber: no attribute added");
          // OpenSSL reads it the same way: one commonName line.
          const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgc-cn-"));
          fs.writeFileSync(path.join(dir, "c.pem"), state.certs[id].cert);
          const r = run("openssl", ["x509", "-noout", "-subject", "-nameopt", "multiline", "-in", path.join(dir, "c.pem")]);
          fs.rmSync(dir, { recursive: true });
          assert.equal((r.out.match(/commonName/g) ?? []).length, 1, r.out);
        }
      });
    }
  });

  it("the local env file: quotes, $( ) and backticks in passwords and names stay literal when sourced", () => {
    const sb = box();
    const d = `${sb.dir}/`;
    const spec = clone(base);
    spec.postgresql.appUser = oneLine("envapp", d);
    const c = {
      spec, hosts: hostsOf(spec), stateDir: sb.dir,
      secrets: { ...TEST_SECRETS, superuserPassword: hostile("su", d), appPassword: `'${oneLine("apppw", d)}'` },
    } as unknown as LocalCluster;
    const file = writeEnvFile(c);
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    const r = spawnSync("/bin/bash", ["-c", `. ${shq(file)} && printf '%s\\0' "$PGCLUSTER_SUPERUSER_PASSWORD" "$DATABASE_URL_PRIMARY"`], { cwd: sb.work, encoding: "utf8", env: { PATH: sb.bin } });
    assert.equal(r.status, 0, r.stderr);
    const [su, url] = r.stdout.split("\0");
    assert.ok(su === hostile("su", d), "superuser password read back unchanged");
    assert.ok(url.startsWith(`postgresql://${encodeURIComponent(spec.postgresql.appUser)}:${encodeURIComponent(c.secrets.appPassword)}@10.213.0.5:5000/`), "URL read back unchanged (user and password URL-encoded)");
    assert.deepEqual(markers(sb.dir), []);
  });

  it("a written file's content cannot end its here-document early or be expanded", () => {
    const sb = box();
    const d = `${sb.dir}/`;
    const target = path.join(sb.dir, "out.txt");
    const content = `PGC_EOF_0123456789abcdef\n${hostile("doc", d)}\nPGC_EOF_\n'PGC_EOF'\n$HOME \\$(x)\n`;
    const script = stepScript({ id: "test/file", actions: new StepBuilder().file({ path: target, content, owner: os.userInfo().username, group: spawnSync("id", ["-gn"], { encoding: "utf8" }).stdout.trim(), mode: "0600" }).actions });
    fs.symlinkSync(which("cmp"), path.join(sb.bin, "cmp"));
    fs.symlinkSync(which("install"), path.join(sb.bin, "install"));
    for (const t of ["mv", "dirname"]) fs.symlinkSync(which(t), path.join(sb.bin, t));
    const r = runIn(sb, script);
    assert.equal(r.code, 0, r.out);
    assert.ok(fs.readFileSync(target, "utf8") === content, "the file holds exactly the content");
    assert.deepEqual(markers(sb.dir), []);
  });
});
