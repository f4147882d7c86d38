// Rolling minor updates (issue 13 item 4), offline: the packages.versions grammar, the apt pins
// file, the update step's place in the plan, and its shell run as the host runs it against a
// stand-in dpkg-query / apt-cache (what is installed, what the mirror has).
import { strict as assert } from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { compile, planGraph } from "../../roles/compile";
import { readStackFile, specFromStackFile } from "../../model/stackFile";
import { ConfigError, type ClusterSpec } from "../../model/config";
import { APT_PINS_FILE } from "../../model/identities";
import { fileOf, hostsOf, localSpec, testPki, TEST_SECRETS } from "../support/fixtures";

function specWith(packages: unknown): ClusterSpec {
  const sf = readStackFile("local");
  sf.values.packages = packages;
  return specFromStackFile(sf);
}

async function stepOf(spec: ClusterSpec, id: string) {
  const hosts = hostsOf(spec);
  return compile(spec, hosts, await testPki(spec, hosts), TEST_SECRETS).steps.find((s) => s.id === id)!;
}

function updateShell(step: { actions: { kind: string; template?: string; source?: string }[] }): string {
  const a = step.actions.find((x) => x.kind === "shell" && x.template === "update/update.sh");
  assert.ok(a?.source, "the step carries update.sh");
  return a.source;
}

/** Runs `fn` of the update shell with stand-ins: `installed` (dpkg), `candidates` and `madison` (apt). */
function runShell(source: string, fn: string, host: { installed: Record<string, string>; candidates: Record<string, string>; madison: Record<string, string[]> }, check = 0) {
  const stub = `
PGC_CHECK=${check}; PGC_TMP=$(mktemp -d); PGC_CHANGED=()
declare -A INSTALLED=(${Object.entries(host.installed).map(([k, v]) => `[${k}]='${v}'`).join(" ")})
declare -A CANDIDATE=(${Object.entries(host.candidates).map(([k, v]) => `[${k}]='${v}'`).join(" ")})
declare -A MADISON=(${Object.entries(host.madison).map(([k, v]) => `[${k}]='${v.join(" ")}'`).join(" ")})
dpkg-query() { local p=\${!#}; [[ -n \${INSTALLED[$p]:-} ]] || return 1; if [[ $* == *Version* && $* == *Status* ]]; then echo "install ok installed \${INSTALLED[$p]}"; else echo "install ok installed"; fi; }
apt-cache() { local p=\${!#}; case $1 in policy) echo "$p:"; echo "  Candidate: \${CANDIDATE[$p]:-(none)}";; madison) local v; for v in \${MADISON[$p]:-}; do echo " $p | $v | http://mirror bookworm/main amd64 Packages"; done;; esac; }
pgc_changed() { echo "CHANGED $1"; }
pgc_notify() { echo "NOTIFY $1"; }
pgc_fail() { echo "FAIL $*"; exit 1; }
pgc_apt_update() { echo "APT-UPDATE"; }
`;
  return spawnSync("bash", ["-c", `${stub}\n${source}\n${fn}`], { encoding: "utf8" });
}

describe("rolling minor updates: packages.versions, the pins, the update step", () => {
  it("a version outside Debian's grammar or an unknown package set is refused, naming the key", () => {
    assert.throws(() => specWith({ versions: { postgresql: "15.18$(id)" } }), (e: unknown) => e instanceof ConfigError && /packages\.versions\.postgresql/.test(e.message) && /Debian package version/.test(e.message));
    assert.throws(() => specWith({ versions: { postgresql: "15.18-0+deb12u1\nPin-Priority: 1001" } }), /packages\.versions\.postgresql/);
    assert.throws(() => specWith({ versions: { redis: "7.0.15-1" } }), /packages\.versions.*redis/);
    assert.equal(specWith({ versions: { postgresql: "15.18-0+deb12u1", haproxy: "2.6.12-1+deb12u3" } }).packages.versions.haproxy, "2.6.12-1+deb12u3");
  });

  it("the common step pins each set's packages at priority 1001 before it installs anything; no pin, no file", async () => {
    const pinned = await stepOf(specWith({ versions: { postgresql: "15.18-0+deb12u1" } }), "pg1/common");
    assert.equal(fileOf(pinned, APT_PINS_FILE).split("\n").filter((l) => l && !l.startsWith("#")).join("\n"),
      "Package: postgresql-15 postgresql-client-15 libpq5\nPin: version 15.18-0+deb12u1\nPin-Priority: 1001");
    const pinAt = pinned.actions.findIndex((a) => a.kind === "file" && a.path === APT_PINS_FILE);
    const firstInstall = pinned.actions.findIndex((a) => a.kind === "packages");
    assert.ok(pinAt >= 0 && pinAt < firstInstall, "pins written before the first install");
    const free = await stepOf(localSpec(), "pg1/common");
    assert.ok(free.actions.some((a) => a.kind === "absent" && a.path === APT_PINS_FILE), "no pin: the file is removed");
  });

  it("each host's update step comes after every other step of its host, a database node's after every node's restart step", () => {
    const graph = planGraph(localSpec());
    for (const u of graph.filter((n) => n.role === "update")) {
      for (const other of graph.filter((n) => n.host === u.host && n.id !== u.id)) assert.ok(u.after.includes(other.id), `${u.id} after ${other.id}`);
      if (u.host.startsWith("pg")) for (const r of graph.filter((n) => n.role === "restart")) assert.ok(u.after.includes(r.id), `${u.id} after ${r.id}`);
    }
    assert.deepEqual(graph.filter((n) => n.role === "update").map((n) => n.host).sort(), ["backup1", "lb1", "lb2", "pg1", "pg2", "pg3"]);
  });

  const host = {
    installed: { "postgresql-15": "15.20-0+deb12u1", "postgresql-client-15": "15.20-0+deb12u1", libpq5: "15.20-0+deb12u1", patroni: "3.0.2-1", pgbouncer: "1.18.0-1+deb12u1", "etcd-server": "3.4.23-4+b4" },
    candidates: { "postgresql-15": "15.20-0+deb12u1", "postgresql-client-15": "15.20-0+deb12u1", libpq5: "15.20-0+deb12u1", patroni: "3.0.2-1", pgbouncer: "1.18.0-1+deb12u2", "etcd-server": "3.4.23-4+b4", "etcd-client": "3.4.23-4+b4" },
    madison: { "postgresql-15": ["15.20-0+deb12u1", "15.18-0+deb12u1"], "postgresql-client-15": ["15.20-0+deb12u1", "15.18-0+deb12u1"], libpq5: ["15.20-0+deb12u1", "15.18-0+deb12u1"] },
  };

  it("pinned: the packages installed at another version are pending and the rolling handler is notified; check mode only reports", async () => {
    const source = updateShell(await stepOf(specWith({ versions: { postgresql: "15.18-0+deb12u1" } }), "pg2/update"));
    const r = runShell(source, "pgc_update_check", host);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    for (const p of ["postgresql-15", "postgresql-client-15", "libpq5"]) assert.match(r.stdout, new RegExp(`CHANGED package:${p} 15\\.20-0\\+deb12u1 -> 15\\.18-0\\+deb12u1 \\(rolling update\\)`));
    assert.doesNotMatch(r.stdout, /pgbouncer/, "an unpinned package is left alone without packages.newest");
    assert.match(r.stdout, /NOTIFY run:pgc_update_rolling$/m);
    const check = runShell(source, "pgc_update_check", host, 1);
    assert.match(check.stdout, /CHANGED package:postgresql-15/);
    assert.doesNotMatch(check.stdout, /NOTIFY/);
  });

  it("newest: every installed package of the host's sets behind its candidate, the lists refreshed first", async () => {
    const r = runShell(updateShell(await stepOf(specWith({ newest: true }), "pg2/update")), "pgc_update_check", host);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^APT-UPDATE$/m);
    assert.deepEqual(r.stdout.split("\n").filter((l) => l.startsWith("CHANGED")), ["CHANGED package:pgbouncer 1.18.0-1+deb12u1 -> 1.18.0-1+deb12u2 (rolling update)"]);
  });

  it("a pinned version the mirror lacks fails before anything changes, naming the key and the version", async () => {
    const r = runShell(updateShell(await stepOf(specWith({ versions: { postgresql: "15.1-9+deb12u9" } }), "pg2/update")), "pgc_update_check", host);
    assert.notEqual(r.status, 0);
    assert.match(r.stdout, /FAIL packages\.versions: the mirror has no postgresql-15 version 15\.1-9\+deb12u9,postgresql-client-15 version/);
    assert.doesNotMatch(r.stdout, /CHANGED|NOTIFY/);
  });

  it("a hostile version (had it passed validation) stays data in the shell", async () => {
    const spec = localSpec();
    const marker = path.join(os.tmpdir(), `pgc-update-${process.pid}`);
    spec.packages.versions.postgresql = `1'$(touch ${marker})'"\`touch ${marker}\`"`;
    runShell(updateShell(await stepOf(spec, "pg2/update")), "pgc_update_check", host);
    assert.ok(!fs.existsSync(marker), "the version ran as a command");
  });
});
