import { strict as assert } from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { compile, topoOrder } from "../../roles/compile";
import type { Plan } from "../../roles/types";
import { localSpec, hostsOf, testPki, TEST_SECRETS } from "../support/fixtures";
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
    assert.deepEqual(ids.filter((i) => i.startsWith("pg1/")).sort(), ["pg1/common", "pg1/database", "pg1/etcd", "pg1/firewall", "pg1/patroni", "pg1/pgbouncer", "pg1/postgresql"]);
    assert.deepEqual(ids.filter((i) => i.startsWith("lb1/")).sort(), ["lb1/common", "lb1/firewall", "lb1/haproxy"]);
    const digests = new Set(plan.steps.map((s) => s.digest));
    assert.equal(digests.size, plan.steps.length, "every step's script differs");
  });

  it("orders cross-host work: all etcd members before any Patroni, the bootstrap member before replicas", () => {
    const order = topoOrder(plan).map((s) => s.id);
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
    assert.equal(topoOrder(plan).length, plan.steps.length);
  });

  it("changes only the affected steps when one setting changes", async () => {
    const sf = readStackFile("local");
    const spec = parseClusterSpec({ ...sf.values, pgbouncer: { defaultPoolSize: 33 } }, { stack: "local", secretKeys: new Set(), source: "t" });
    const hosts = hostsOf(spec);
    const other = compile(spec, hosts, await testPki(spec, hosts), TEST_SECRETS);
    const changed = other.steps.filter((s, i) => s.digest !== plan.steps[i].digest).map((s) => s.id);
    assert.deepEqual(changed, ["pg1/pgbouncer", "pg2/pgbouncer", "pg3/pgbouncer"]);
  });

  it("ends every script with the handlers and the machine-readable result line", () => {
    for (const s of plan.steps) {
      assert.match(s.script, /^#!\/bin\/bash\nset -euo pipefail\n/);
      assert.match(s.script, /pgc_handlers\npgc_result\n\} <\/dev\/null\n$/);
      assert.ok(s.script.includes(`PGC_STEP='${s.id}'`));
    }
  });

  it("puts secrets only inside quoted here-documents or bash-quoted words, never in a command line", () => {
    for (const s of plan.steps) {
      const lines = s.script.split("\n");
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
            const body = s.script.slice(s.script.indexOf("\npgc_curl_as() {"), s.script.indexOf("\n}\n", s.script.indexOf("\npgc_curl_as() {")));
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
      fs.writeFileSync(f, s.script);
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
