// The balancer pair of a static inventory: keepalived's config as each balancer gets it, checked
// by keepalived itself (-t), the floating address in HAProxy's binds and the node certificates,
// and what GCP gets instead (nothing: its internal load balancer).
import { strict as assert } from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { X509Certificate } from "crypto";
import { fileOf, gcpStackSpec, hostsOf, localSpec, testPki, TEST_SECRETS } from "../support/fixtures";
import { compile } from "../../roles/compile";
import { CONFIG_FILE, INTERFACE_FILE, VRRP_PASSWORD_LENGTH } from "../../roles/keepalived";
import { stepScript } from "../../roles/script";
import type { Plan, Secrets } from "../../roles/types";

/** keepalived's own parser on a config, with the interface include pointed at a scratch file. */
function keepalivedCheck(conf: string): string {
  if (spawnSync("keepalived", ["--version"]).error) throw new Error("keepalived is not installed; .ci/run installs it (apt-get install keepalived)");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgc-ka-"));
  try {
    fs.writeFileSync(path.join(dir, "iface.conf"), "interface eth0\n");
    fs.writeFileSync(path.join(dir, "k.conf"), conf.replace(INTERFACE_FILE, path.join(dir, "iface.conf")));
    const r = spawnSync("keepalived", ["-n", "-t", "-f", path.join(dir, "k.conf")], { encoding: "utf8" });
    // keepalived -t exits the same way whatever it finds: what it prints is the verdict.
    return `${r.stdout}${r.stderr}`.split("\n").filter((l) => l.trim() && l.trim() !== "Terminated").join("\n");
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
}

describe("balancer pair (keepalived, static inventories)", () => {
  let plan: Plan;
  const spec = localSpec();
  const hosts = hostsOf(spec);
  before(async () => { plan = compile(spec, hosts, await testPki(spec, hosts), TEST_SECRETS); });
  const step = (id: string) => plan.steps.find((s) => s.id === id)!;

  it("runs on each balancer after its HAProxy routes; the local stack has two around 10.213.0.5", () => {
    assert.deepEqual(plan.steps.filter((s) => s.role === "keepalived").map((s) => [s.id, s.after]), [
      ["lb1/keepalived", ["lb1/haproxy"]], ["lb2/keepalived", ["lb2/haproxy"]],
    ]);
  });

  it("each balancer's config: unicast to the other one, the floating address, nopreempt, authentication, HAProxy's own health as the check", () => {
    for (const [me, peer] of [["lb1", "10.213.0.9"], ["lb2", "10.213.0.10"]]) {
      const conf = fileOf(step(`${me}/keepalived`), CONFIG_FILE);
      const own = hosts.find((h) => h.name === me)!.address;
      for (const line of [
        `router_id ${me}`, "state BACKUP", "nopreempt", "virtual_router_id 51", "priority 250", "advert_int 1",
        `unicast_src_ip ${own}`, "auth_type PASS", `auth_pass ${TEST_SECRETS.vrrpPassword.slice(0, VRRP_PASSWORD_LENGTH)}`,
        "10.213.0.5/32", `include ${INTERFACE_FILE}`, "enable_script_security", "script_user nobody nogroup",
        `script "/usr/bin/curl -fs -o /dev/null --max-time 1 http://${own}:8405/health"`,
      ]) assert.ok(conf.split("\n").some((l) => l.trim() === line), `${me}: ${line}\n${conf}`);
      const peers = conf.slice(conf.indexOf("unicast_peer {") + 14, conf.indexOf("}", conf.indexOf("unicast_peer {"))).trim().split(/\s+/);
      assert.deepEqual(peers, [peer], `${me}'s peers`);
      assert.equal(keepalivedCheck(conf), "", `keepalived -t accepts ${me}'s config`);
    }
  });

  it("keepalived -t is a real check: it names what it refuses", () => {
    const conf = fileOf(step("lb1/keepalived"), CONFIG_FILE);
    assert.ok(conf.includes("    nopreempt\n"));
    assert.match(keepalivedCheck(conf.replace("    nopreempt\n", "    nopreemptx\n")), /Unknown keyword 'nopreemptx'/);
  });

  it("the config holds the VRRP password: installed 0600, never shown in a diff, validated before it replaces the old one", () => {
    const s = stepScript(step("lb1/keepalived"));
    assert.match(s, /pgc_file '\/etc\/keepalived\/keepalived\.conf' 'root' 'root' '0600' --secret --notify 'reload:keepalived' --validate 'pgc_keepalived_check \{\}'/);
    assert.ok(s.indexOf("pgc_keepalived_interface\n") < s.indexOf("pgc_file '/etc/keepalived/keepalived.conf'"), "the interface include exists before the config is checked");
    assert.ok(s.includes("pgc_wait 30 'the floating address 10.213.0.5 answering HAProxy'\\''s health from lb1' pgc_floating_answers"));
  });

  it("a VRRP password that is not a plain word is refused at render time, without showing it", async () => {
    const bad = { ...TEST_SECRETS, vrrpPassword: "ab\ncd'ef-secretvalue" } as Secrets;
    const pki = await testPki(spec, hosts);
    assert.throws(() => compile(spec, hosts, pki, bad), (e: Error) => /the VRRP password cannot be written into an identifier: it contains U\+000A/.test(e.message) && !e.message.includes("secretvalue"));
  });

  it("HAProxy binds the floating address too (transparent: a backup balancer does not hold it), and answers its own health", () => {
    for (const lb of ["lb1", "lb2"]) {
      const cfg = fileOf(step(`${lb}/haproxy`), "/etc/haproxy/haproxy.cfg");
      for (const port of [5000, 5001, 5002, 8405]) assert.ok(cfg.includes(`bind 10.213.0.5:${port} transparent`), `${lb}: ${port}`);
      assert.match(cfg, /monitor-uri \/health/);
    }
  });

  it("node certificates carry the floating address (sslmode=verify-full against the address clients dial)", async () => {
    const pki = await testPki(spec, hosts);
    for (const n of ["pg1", "pg2", "pg3"]) {
      const san = new X509Certificate(pki.nodes[n].cert).subjectAltName ?? "";
      assert.ok(san.includes("IP Address:10.213.0.5"), `${n}: ${san}`);
    }
  });

  it("without a floating address the step only keeps keepalived stopped and HAProxy binds no other address; GCP has no keepalived step", async () => {
    const pki = await testPki(spec, hosts);
    const one = { ...spec, hosts: spec.hosts.filter((h) => h.name !== "lb2"), network: { ...spec.network, floatingAddress: undefined } };
    const p1 = compile(one, hostsOf(one), pki, TEST_SECRETS);
    assert.deepEqual(p1.steps.find((x) => x.id === "lb1/keepalived")!.actions.map((a) => a.kind), ["stopped"]);
    assert.doesNotMatch(fileOf(p1.steps.find((x) => x.id === "lb1/haproxy"), "/etc/haproxy/haproxy.cfg"), /transparent|10\.213\.0\.5/);
    const dev = gcpStackSpec("dev");
    const dh = hostsOf(dev);
    // Node certificates do not matter here: only which steps exist.
    const pair = { cert: "C", key: "K" };
    const dp = compile(dev, dh, { ...pki, nodes: Object.fromEntries(dh.map((h) => [h.name, pair])) }, TEST_SECRETS, "10.99.0.200");
    assert.ok(dp.steps.some((x) => x.role === "haproxy"));
    assert.deepEqual(dp.steps.filter((x) => x.role === "keepalived"), []);
  });
});
