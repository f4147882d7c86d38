// HAProxy's stats page (issue #12 item 6): operators only (network.adminCidrs, an acl as second
// layer behind the host firewall), HTTP basic auth with the generated statsPassword, on every
// bind address. The rendered `listen stats` section runs in a real HAProxy on 127.0.0.1 here,
// with a hostile password: what it answers is measured, not read from the text.
import { strict as assert } from "assert";
import { spawn, type ChildProcess } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { compile } from "../../roles/compile";
import { haproxyQuoted, UnsafeValueError } from "../../roles/quote";
import type { ClusterSpec, Pki, Secrets } from "../../roles/types";
import type { FileAction } from "../../roles/step";
import { localSpec, hostsOf, testPki, TEST_SECRETS, fileOf } from "../support/fixtures";
import { run, freePort } from "../support/tools";

/** Every character HAProxy's parser treats specially, and both quotes. */
const HOSTILE = `pw'x"y$HOME#z\\w 'q'\\'' :end`;

function statsSection(cfg: string): string {
  const m = /^listen stats\n(?: {4}.*\n|\{\{.*\n)*/m.exec(cfg);
  if (!m) throw new Error("no listen stats section");
  return m[0];
}

/** One request on its own connection (HAProxy closes after a 401; a kept-alive socket would hang up). */
function get(port: number, auth?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const headers = auth === undefined ? {} : { authorization: `Basic ${Buffer.from(auth).toString("base64")}` };
    const req = http.get({ host: "127.0.0.1", port, path: "/;csv", headers, timeout: 3000, agent: false }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
  });
}

/** Runs the rendered stats section (its binds moved to 127.0.0.1:<port>) in a foreground HAProxy. */
async function runStats(dir: string, section: string): Promise<{ port: number; stop: () => void }> {
  const port = await freePort();
  const moved = section.replace(/^ {4}bind .*\n/gm, "").replace(/^listen stats\n/, `listen stats\n    bind 127.0.0.1:${port}\n`);
  const cfg = path.join(dir, `stats-${port}.cfg`);
  fs.writeFileSync(cfg, `defaults\n    timeout connect 2s\n    timeout server 5s\n\n${moved}`, { mode: 0o600 });
  const check = run("haproxy", ["-c", "-f", cfg]);
  assert.equal(check.code, 0, check.out.replace(HOSTILE, "<password>"));
  const p: ChildProcess = spawn("haproxy", ["-db", "-f", cfg], { stdio: "ignore" });
  const end = Date.now() + 5000;
  for (;;) {
    const up = await new Promise<boolean>((r) => net.connect(port, "127.0.0.1").on("connect", function (this: net.Socket) { this.destroy(); r(true); }).on("error", () => r(false)));
    if (up) break;
    if (Date.now() > end) { p.kill(); throw new Error("haproxy did not listen within 5 s"); }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { port, stop: () => p.kill() };
}

describe("HAProxy stats page: operators only, with a password", function () {
  this.timeout(30_000);
  let spec: ClusterSpec;
  let pki: Pki;
  let tmp: string;
  const secrets: Secrets = { ...TEST_SECRETS, statsPassword: HOSTILE };
  const cfgOf = (s: ClusterSpec, sec: Secrets = secrets, entry?: string) => {
    const hosts = hostsOf(s);
    return fileOf(compile(s, hosts, pki, sec, entry).steps.find((x) => x.id === "lb1/haproxy"), "/etc/haproxy/haproxy.cfg");
  };
  before(async () => {
    spec = localSpec();
    pki = await testPki(spec, hostsOf(spec));
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pgc-stats-"));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it("the section: every bind address (the entry address transparent), the adminCidrs acl before anything, basic auth with the password single-quoted", () => {
    const section = statsSection(cfgOf(spec, secrets, "10.213.0.5"));
    assert.match(section, /^ {4}bind 10\.213\.0\.10:8404\n {4}bind 10\.213\.0\.5:8404 transparent\n/m);
    assert.match(section, /^ {4}acl operators src 10\.213\.0\.1\/32\n {4}http-request deny unless operators\n/m);
    assert.ok(section.indexOf("http-request deny") < section.indexOf("stats enable"));
    // One argument: single quotes, each "'" closed, escaped and reopened (what HAProxy reads back is measured below).
    const quoted = `'${`stats:${HOSTILE}`.split("'").join("'\\''")}'`;
    assert.ok(section.includes(`    stats auth ${quoted}\n`), "quoted as one argument");
    assert.doesNotMatch(section, /stats admin|stats enable.*admin/, "read-only");
  });

  it("no adminCidrs: the page denies everyone", () => {
    const section = statsSection(cfgOf({ ...spec, network: { ...spec.network, adminCidrs: [] } }));
    assert.match(section, /^ {4}http-request deny\n/m);
    assert.doesNotMatch(section, /acl operators/);
  });

  it("the password is in haproxy.cfg only (0640 root:haproxy), in no other file, step or script of the plan", () => {
    const hosts = hostsOf(spec);
    const plan = compile(spec, hosts, pki, { ...secrets, statsPassword: "UniqueStatsPassword0123456789" });
    const where: string[] = [];
    for (const s of plan.steps) for (const a of s.actions) if (JSON.stringify(a).includes("UniqueStatsPassword0123456789")) where.push(`${s.id} ${a.kind} ${(a as FileAction).path ?? ""}`);
    const balancers = hosts.filter((h) => h.roles.includes("balancer")).map((h) => h.name);
    assert.ok(balancers.length >= 1);
    assert.deepEqual(where, balancers.map((b) => `${b}/haproxy file /etc/haproxy/haproxy.cfg`));
    for (const b of balancers) {
      const f = plan.steps.find((s) => s.id === `${b}/haproxy`)!.actions.find((a): a is FileAction => a.kind === "file" && a.path === "/etc/haproxy/haproxy.cfg")!;
      assert.deepEqual([f.owner, f.group, f.mode], ["root", "haproxy", "0640"], b);
    }
  });

  it("a control character in the password is refused, naming the purpose, not the value", () => {
    assert.throws(() => haproxyQuoted("ab\ncd", "the stats login"), (e: Error) => e instanceof UnsafeValueError && /the stats login .* U\+000A/.test(e.message) && !e.message.includes("ab"));
    assert.throws(() => cfgOf(spec, { ...secrets, statsPassword: "x\nlisten evil" }), /U\+000A/);
  });

  it("run by HAProxy: from an operator address, no credentials 401, a wrong password 401, the hostile password 200; from any other address 403 even with the password", async () => {
    // Operators: 127.0.0.1 added to adminCidrs, so this machine's request is an operator's.
    const asOperator = await runStats(tmp, statsSection(cfgOf({ ...spec, network: { ...spec.network, adminCidrs: [...spec.network.adminCidrs, "127.0.0.1/32"] } })));
    try {
      assert.equal((await get(asOperator.port)).status, 401);
      assert.equal((await get(asOperator.port, "stats:wrong-password")).status, 401);
      assert.equal((await get(asOperator.port, `admin:${HOSTILE}`)).status, 401, "another user name");
      const ok = await get(asOperator.port, `stats:${HOSTILE}`);
      assert.equal(ok.status, 200);
      assert.match(ok.body, /^stats,FRONTEND,/m);
    } finally { asOperator.stop(); }
    // The local stack's own acl (10.213.0.1/32 only): 127.0.0.1 is refused before the password counts.
    const asOther = await runStats(tmp, statsSection(cfgOf(spec)));
    try {
      assert.equal((await get(asOther.port, `stats:${HOSTILE}`)).status, 403);
      assert.equal((await get(asOther.port)).status, 403);
    } finally { asOther.stop(); }
  });
});
