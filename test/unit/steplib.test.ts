// The step library's calls to etcd and Patroni, run for real in bash against fake etcdctl, curl,
// systemctl and psql that answer as the real ones did in the failures seen on the hosts: a
// transient gRPC error while another member restarted, a member restarting under another node's
// lock, a switchover that Patroni refused because the candidate was not the synchronous standby.
import { strict as assert } from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { spawnSync } from "child_process";
import { renderShell } from "../../roles/render";
import { ports } from "../../model/identities";

const PRELUDE = fs.readFileSync(path.join(__dirname, "../../roles/lib/prelude.sh"), "utf8");
const ENDPOINTS = ["https://10.0.0.1:2379", "https://10.0.0.2:2379", "https://10.0.0.3:2379"];

// Each fake logs its call and answers from $FAKE/<name>: one line per call, the last one repeated.
const POP = `pop() { local f=$FAKE/$1 l; l=$(head -n 1 "$f"); if [[ $(wc -l <"$f") -gt 1 ]]; then sed -i 1d "$f"; fi; printf '%s' "$l"; }`;
const FAKES: Record<string, string> = {
  etcdctl: `#!/bin/bash
${POP}
echo "etcdctl $*" >>"$FAKE/calls"
case " $* " in
  *" endpoint health "*)
    if [[ $* == *127.0.0.1* ]]; then echo "https://127.0.0.1:2379 is healthy: successfully committed proposal"; exit 0; fi
    n=$(pop health)
    for i in 1 2 3; do if ((i <= n)); then echo "https://10.0.0.$i:2379 is healthy: successfully committed proposal"; else echo "https://10.0.0.$i:2379 is unhealthy: failed to commit proposal: context deadline exceeded" >&2; fi; done
    ((n == 3)) ;;
  *" endpoint status "*) cat "$FAKE/status" ;;
  *" lock "*)
    a=$(pop lock)
    # Holds until SIGINT, as etcdctl does (a background bash would ignore SIGINT; Go and Python do not).
    if [[ $a == ok ]]; then exec python3 -c 'import signal, sys, time; signal.signal(signal.SIGINT, lambda *a: sys.exit(0)); print("pgcluster/lock/694d8c1f", flush=True); time.sleep(120)'; fi
    echo '{"level":"warn","msg":"retrying of unary invoker failed"}' >&2
    echo "Error: $a" >&2
    exit 1 ;;
esac`,
  // A unit named in $FAKE/inactive is neither enabled nor running.
  systemctl: `#!/bin/bash
echo "systemctl $*" >>"$FAKE/calls"
case $1 in is-active | is-enabled) [[ -f $FAKE/inactive ]] && grep -qx "\${@: -1}" "$FAKE/inactive" && exit 3 ;; esac
exit 0`,
  logger: `#!/bin/bash
echo "logger $*" >>"$FAKE/calls"`,
  // runuser -u postgres -- CMD...: runs CMD.
  runuser: `#!/bin/bash
while [[ $1 != -- ]]; do shift; done; shift; exec "$@"`,
  psql: `#!/bin/bash
case "$*" in
  *pg_stat_wal_receiver*) cat "$FAKE/wal_receiver" ;;
  *pg_stat_replication*) cat "$FAKE/replication" ;;
esac`,
  // patronictl: show-config prints $FAKE/live_config; edit-config --replace - keeps what it was
  // given in $FAKE/replaced, or fails as on a concurrent change while $FAKE/edit says so.
  patronictl: `#!/bin/bash
${POP}
echo "patronictl $*" >>"$FAKE/calls"
case " $* " in
  *" show-config "*) cat "$FAKE/live_config" ;;
  *" edit-config "*)
    if [[ -f $FAKE/edit && $(pop edit) == conflict ]]; then cat >/dev/null; echo "Error: Config modification aborted due to concurrent changes" >&2; exit 1; fi
    cat >"$FAKE/replaced" ;;
esac`,
  // curl: the answer for METHOD path from $FAKE/http/METHOD_path ("CODE BODY"), -o, -w, --fail, -K -.
  curl: `#!/bin/bash
${POP}
out="" fmt="" method=GET fail=0 url=""
while (($#)); do
  case $1 in
    -o) out=$2; shift ;;
    -w) fmt=$2; shift ;;
    -X) method=$2; shift ;;
    -K) [[ $2 == - ]] && cat >/dev/null; shift ;;
    -H | --data-binary | --max-time | --cacert) shift ;;
    --fail) fail=1 ;;
    https://*) url=$1 ;;
  esac
  shift
done
p=\${url#https://*/}
a=$(pop "http/\${method}_$p")
code=\${a%% *} body=\${a#* }
echo "curl $method /$p -> $code" >>"$FAKE/calls"
[[ $code == 000 ]] && exit 7
if [[ -n $out ]]; then printf '%s' "$body" >"$out"; else printf '%s' "$body"; fi
[[ $fmt == "%{http_code}" ]] && printf "%s" "$code"
if ((fail && code >= 400)); then echo "curl: (22) The requested URL returned error: $code" >&2; exit 22; fi
exit 0`,
};

interface Run { code: number; out: string; calls: string[]; seconds: number; replaced?: string }

/** Runs BODY after the step library (prelude + etcdctl functions + `lib`) with the fakes first on PATH. */
function runLib(lib: string, body: string, answers: Record<string, string>): Run {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgc-steplib-"));
  const bin = path.join(dir, "bin");
  fs.mkdirSync(bin);
  fs.mkdirSync(path.join(dir, "http"));
  for (const [name, text] of Object.entries(FAKES)) fs.writeFileSync(path.join(bin, name), text + "\n", { mode: 0o755 });
  for (const [name, text] of Object.entries(answers)) fs.writeFileSync(path.join(dir, name), text.endsWith("\n") ? text : text + "\n");
  fs.writeFileSync(path.join(dir, "calls"), "");
  const etcdctl = renderShell("etcd", "etcdctl.sh", { tls: "/nonexistent/pki", endpoints: ENDPOINTS, count: 3 });
  const script = ["#!/bin/bash", "set -euo pipefail", "PGC_STEP='pgx/steplib-test'", "{", PRELUDE, etcdctl, lib, body, "} </dev/null", ""].join("\n");
  const t = Date.now();
  const r = spawnSync("bash", ["-c", script], { encoding: "utf8", timeout: 150_000, env: { ...process.env, FAKE: dir, PATH: `${bin}:${process.env.PATH}` } });
  const replaced = path.join(dir, "replaced");
  const res = {
    code: r.status ?? -1, out: `${r.stdout}${r.stderr}`, calls: fs.readFileSync(path.join(dir, "calls"), "utf8").trim().split("\n"), seconds: (Date.now() - t) / 1000,
    replaced: fs.existsSync(replaced) ? fs.readFileSync(replaced, "utf8") : undefined,
  };
  fs.rmSync(dir, { recursive: true, force: true });
  return res;
}

const etcdLib = () => renderShell("etcd", "etcd.sh", { dataDir: "/nonexistent/etcd", count: 3, clientPort: ports.etcdClient });
const patroniLib = () => renderShell("patroni", "patroni.sh", { tls: "/nonexistent/pki", ports, name: "pg1", restApiUser: "patroni", restApiPassword: "not-a-real-secret" });

describe("step library: etcd and Patroni calls meet transient errors", function () {
  this.timeout(180_000);

  it("the etcd lock: a transient gRPC error (a member restarting) is retried within the deadline, and the tries are reported", () => {
    const transient = "rpc error: code = Internal desc = server closed the stream without sending trailers";
    const r = runLib("", "pgc_with_etcd_lock pgcluster/test echo INSIDE-THE-LOCK", { lock: `${transient}\n${transient}\nok`, health: "3" });
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /INSIDE-THE-LOCK/);
    assert.equal(r.calls.filter((c) => c.startsWith("etcdctl ") && c.includes(" lock ")).length, 3, r.calls.join("\n"));
    assert.match(r.out, /etcd lock pgcluster\/test taken on try 3, after \d+ s \(earlier tries ended with: Error: rpc error: code = Internal desc = server closed the stream/);
    assert.ok(r.calls.some((c) => c.startsWith("logger ") && c.includes("taken on try 3")), "the retries are kept in the host's journal");
  });

  it("the etcd lock: an error that is not transient fails at once, with the real error", () => {
    const r = runLib("", "pgc_with_etcd_lock pgcluster/test echo INSIDE-THE-LOCK", { lock: "x509: certificate signed by unknown authority", health: "3" });
    assert.equal(r.code, 1, r.out);
    assert.doesNotMatch(r.out, /INSIDE-THE-LOCK/);
    assert.match(r.out, /could not take the etcd lock pgcluster\/test: etcdctl lock ended with: Error: x509: certificate signed by unknown authority \(try 1, after \d+ s; not a transient error, not retried\)/);
    assert.doesNotMatch(r.out, /within 600 s/);
    assert.ok(r.seconds < 10, `failed after ${r.seconds} s`);
  });

  it("an etcd restart while another member restarts under the lock (2/3 healthy) waits for the lock and for every member, never restarts beside it", () => {
    const r = runLib(etcdLib(), "pgc_etcd_restart", { health: "2\n2\n2\n3", lock: "ok" });
    assert.equal(r.code, 0, r.out);
    const lock = r.calls.findIndex((c) => c.startsWith("etcdctl ") && c.includes(" lock "));
    const restart = r.calls.findIndex((c) => c.startsWith("systemctl restart"));
    assert.ok(lock >= 0 && restart > lock, `the lock before the restart:\n${r.calls.join("\n")}`);
    assert.equal(r.calls[restart], "systemctl restart etcd", "a blocking restart, under the lock");
    const healthAfterLock = r.calls.slice(lock, restart).filter((c) => c.includes("endpoint health") && !c.includes("127.0.0.1"));
    assert.ok(healthAfterLock.length >= 2, `every member healthy again before the restart:\n${r.calls.join("\n")}`);
  });

  it("a unit whose drop-in was written earlier in the step starts only after systemd has read it (daemon-reload first)", () => {
    // Seen on the hosts: etcd started before its drop-in was read missed the bootstrap list and
    // formed a cluster of its own, and Patroni elected a leader in each.
    const r = runLib("", 'PGC_PENDING=$FAKE/pending; pgc_notify daemon-reload restart:etcd; pgc_service etcd --no-block; pgc_handlers; echo "LEFT:${PGC_HANDLERS[*]}"', { inactive: "etcd" });
    assert.equal(r.code, 0, r.out);
    const reload = r.calls.indexOf("systemctl daemon-reload");
    const start = r.calls.indexOf("systemctl start --no-block etcd");
    assert.ok(reload >= 0 && start > reload, `daemon-reload before the start:\n${r.calls.join("\n")}`);
    assert.equal(r.calls.filter((c) => c === "systemctl daemon-reload").length, 1, r.calls.join("\n"));
    assert.ok(!r.calls.includes("systemctl restart etcd"), `started here, not restarted again:\n${r.calls.join("\n")}`);
    assert.match(r.out, /^LEFT:$/m);
  });

  it("etcd members that answer as separate clusters stop the step before Patroni starts, naming each cluster; one cluster passes", () => {
    const status = (ids: string[]) => JSON.stringify(ids.map((id, i) => ({ Endpoint: ENDPOINTS[i], Status: { header: { cluster_id: Number(id), member_id: i + 1 } } })));
    const split = runLib("", "pgc_etcd_require_one_cluster; echo NOT-REACHED", { status: status(["6109437702990449795", "11562042772387688518", "6109437702990449795"]) });
    assert.equal(split.code, 1, split.out);
    assert.doesNotMatch(split.out, /NOT-REACHED/);
    assert.match(split.out, /the etcd members answer as separate clusters \(cluster [0-9a-f]+: https:\/\/10\.0\.0\.1:2379, https:\/\/10\.0\.0\.3:2379; cluster [0-9a-f]+: https:\/\/10\.0\.0\.2:2379\)/);
    const one = runLib("", "pgc_etcd_require_one_cluster; echo PASSED", { status: status(["42", "42"]) });
    assert.equal(one.code, 0, one.out);
    assert.match(one.out, /PASSED/);
  });

  it("a call to Patroni's REST API that meets a busy or restarting Patroni (503, no answer) is retried, and its output stays clean", () => {
    const r = runLib("", 'current=$(pgc_retry 60 "GET /config of Patroni" curl -sS --fail https://127.0.0.1:8008/config); echo "GOT:$current"', {
      "http/GET_config": '503 {"error": "busy"}\n000\n200 {"ttl": 10}',
    });
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /^GOT:\{"ttl": 10\}$/m);
    assert.match(r.out, /GET \/config of Patroni: ok on try 3, after \d+ s \(before: /);
    assert.equal(r.calls.filter((c) => c.startsWith("curl GET /config")).length, 3);
  });

  it("an answer no retry can change (401) is not retried: the call fails at once with it", () => {
    const r = runLib("", 'pgc_retry 60 "PATCH /config of Patroni" pgc_curl_as patroni not-a-real-secret -sS --fail -X PATCH https://127.0.0.1:8008/config', {
      "http/PATCH_config": "401 no auth header received",
    });
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /PATCH \/config of Patroni: curl: \(22\) The requested URL returned error: 401 \(try 1; not retried\)/);
    assert.equal(r.calls.filter((c) => c.startsWith("curl PATCH /config")).length, 1);
  });

  describe("switchover before a Patroni restart on the leader", () => {
    const cluster = (sync: string | undefined) => JSON.stringify({
      members: [
        { name: "pg1", role: "leader", state: "running", timeline: 4 },
        { name: "pg2", role: sync === "pg2" ? "sync_standby" : "replica", state: "running", timeline: 4, lag: 0 },
        { name: "pg3", role: sync === "pg3" ? "sync_standby" : "replica", state: "running", timeline: 4, lag: 0 },
      ],
    });
    const config = JSON.stringify({ synchronous_mode: true, maximum_lag_on_failover: 1048576 });

    it("right after a standby's restart (no synchronous standby yet) no candidate is offered, and the reason says why", () => {
      const r = runLib(patroniLib(), "pgc_switchover_candidate", {
        "http/GET_cluster": `200 ${cluster(undefined)}`, "http/GET_config": `200 ${config}`, replication: "pg2 async\npg3 async",
      });
      assert.equal(r.code, 1, r.out);
      assert.match(r.out, /no member can take over \(pg2: not the synchronous standby; pg3: not the synchronous standby\)/);
    });

    it("the candidate is the synchronous standby that streams from the leader", () => {
      const r = runLib(patroniLib(), "pgc_switchover_candidate", {
        "http/GET_cluster": `200 ${cluster("pg3")}`, "http/GET_config": `200 ${config}`, replication: "pg2 async\npg3 sync",
      });
      assert.equal(r.code, 0, r.out);
      assert.equal(r.out.trim(), "pg3");
    });

    it("a refused switchover (412) is asked again once a candidate exists; Patroni's answers are reported, then Patroni restarts", () => {
      const r = runLib(patroniLib(), "PGC_IN_HANDLERS=1; pgc_patroni_restart_now", {
        "http/GET_patroni": ['{"role": "master"}', '{"role": "master"}', '{"role": "master"}', '{"role": "replica"}'].map((b) => `200 ${b}`).join("\n"),
        "http/GET_cluster": `200 ${cluster("pg3")}`, "http/GET_config": `200 ${config}`, "http/GET_health": "200 {}",
        "http/POST_switchover": '412 candidate name does not match with sync_standby\n200 Successfully switched over to "pg3"',
        replication: "pg2 async\npg3 sync", wal_receiver: "streaming",
      });
      assert.equal(r.code, 0, r.out);
      assert.equal(r.calls.filter((c) => c.startsWith("curl POST /switchover")).length, 2, r.calls.join("\n"));
      assert.match(r.out, /switchover from pg1 to pg3 not done: HTTP 412: candidate name does not match with sync_standby; asking again/);
      assert.match(r.out, /switchover from pg1 to pg3: HTTP 200: Successfully switched over to "pg3" \(request 2, after \d+ s\)/);
      assert.ok(r.calls.includes("systemctl restart patroni"), r.calls.join("\n"));
      assert.ok(r.calls.indexOf("systemctl restart patroni") > r.calls.lastIndexOf("curl POST /switchover -> 200"));
      assert.doesNotMatch(r.out, /not-a-real-secret/);
    });

    it("an answer that no retry can change (401) fails at once and keeps the restart pending", () => {
      const r = runLib(patroniLib(), "PGC_IN_HANDLERS=1; pgc_patroni_restart_now", {
        "http/GET_patroni": '200 {"role": "master"}', "http/GET_cluster": `200 ${cluster("pg3")}`, "http/GET_config": `200 ${config}`,
        "http/POST_switchover": "401 no auth header received", replication: "pg3 sync",
      });
      assert.equal(r.code, 1, r.out);
      assert.match(r.out, /switchover from pg1 to pg3 refused: HTTP 401: no auth header received; Patroni here not restarted \(the restart stays pending\)/);
      assert.ok(!r.calls.includes("systemctl restart patroni"));
    });
  });
});

describe("patroni step: the live DCS configuration follows the stack (patronictl)", function () {
  this.timeout(60_000);
  const want = { ttl: 10, loop_wait: 2, synchronous_mode: true, postgresql: { use_pg_rewind: true, parameters: { max_connections: 200, wal_keep_size: "1GB" } } };
  const dcsLib = () => renderShell("patroni", "dcs.sh", { configFile: "/etc/patroni/config.yml", dcsJson: JSON.stringify(want) });
  // patronictl show-config prints YAML; PyYAML quotes strings that would read as other types.
  const LIVE = ["loop_wait: 2", "pause: true", "postgresql:", "  parameters:", "    max_connections: 100", "    wal_keep_size: 1GB", "    work_mem: 64MB", "  use_pg_rewind: true", "synchronous_mode: true", "ttl: 10"].join("\n");
  const changed = (out: string) => [...out.matchAll(/(?:changed|DRIFT) patroni-dcs:(.*)/g)].map((m) => m[1]).sort();

  it("replaces it with the stack's: a changed setting set, a setting no longer in the stack removed, Patroni's pause kept; each difference one item", () => {
    const r = runLib(dcsLib(), "pgc_dcs_sync; pgc_result", { live_config: LIVE });
    assert.equal(r.code, 0, r.out);
    assert.deepEqual(changed(r.out), ['postgresql.parameters.max_connections=200', 'postgresql.parameters.work_mem="64MB" (removed)']);
    assert.ok(r.replaced, "patronictl edit-config was not given the new configuration");
    const sent = JSON.parse(r.replaced!);
    assert.deepEqual(sent, { ...want, pause: true });
    assert.ok(r.calls.some((c) => /^patronictl -c \/etc\/patroni\/config.yml edit-config --replace - --force --quiet$/.test(c)), r.calls.join("\n"));
  });

  it("check mode reports the same items and changes nothing", () => {
    const r = runLib(dcsLib(), "PGC_CHECK=1; pgc_dcs_sync; pgc_result", { live_config: LIVE });
    assert.equal(r.code, 0, r.out);
    assert.deepEqual(changed(r.out), ['postgresql.parameters.max_connections=200', 'postgresql.parameters.work_mem="64MB" (removed)']);
    assert.equal(r.replaced, undefined);
    assert.ok(!r.calls.some((c) => c.includes("edit-config")), r.calls.join("\n"));
  });

  it("a live configuration equal to the stack's is left alone (types as YAML gives them back)", () => {
    const same = ["loop_wait: 2", "postgresql:", "  parameters:", "    max_connections: 200", "    wal_keep_size: 1GB", "  use_pg_rewind: true", "synchronous_mode: true", "ttl: 10"].join("\n");
    const r = runLib(dcsLib(), "pgc_dcs_sync; pgc_result", { live_config: same });
    assert.equal(r.code, 0, r.out);
    assert.deepEqual(changed(r.out), []);
    assert.ok(!r.calls.some((c) => c.includes("edit-config")), r.calls.join("\n"));
  });

  it("a concurrent change (another node replacing it first) is tried again", () => {
    const r = runLib(dcsLib(), "pgc_dcs_sync; pgc_result", { live_config: LIVE, edit: "conflict\nok" });
    assert.equal(r.code, 0, r.out);
    assert.equal(r.calls.filter((c) => c.startsWith("patronictl") && c.includes("edit-config")).length, 2, r.calls.join("\n"));
    assert.match(r.out, /ok on try 2/);
    assert.ok(r.replaced);
  });
});

describe("restart step: settings that need a PostgreSQL restart", function () {
  this.timeout(60_000);
  const want = { ttl: 10, postgresql: { parameters: { shared_buffers: "256MB" } } };
  // Each body starts and ends with no handler pending (the prelude keeps them in
  // /var/lib/pgcluster/pending-handlers/<step> between runs).
  const lib = (defer: boolean, cacheFile: string) => renderShell("restart", "restart.sh", {
    tls: "/nonexistent/pki", ports, cacheFile, dcsJson: JSON.stringify(want), defer, restartHandler: "run:pgc_patroni_agent_restart:patroni",
  });
  const withCache = (content: string) => { const f = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "pgc-cache-")), "patroni.dynamic.json"); fs.writeFileSync(f, content); return f; };
  const pending = { "http/GET_patroni": '200 {"state": "running", "role": "replica", "pending_restart": true}' };
  const notPending = { "http/GET_patroni": '200 {"state": "running", "role": "replica"}' };

  it("Patroni has applied the cluster's settings only once its saved configuration is the stack's (its pause aside)", () => {
    const older = withCache(JSON.stringify({ ttl: 10, postgresql: { parameters: { shared_buffers: "128MB" } } }));
    const same = withCache(JSON.stringify({ ...want, pause: true }));
    const r1 = runLib(lib(false, older), "pgc_patroni_settings_applied", {});
    assert.notEqual(r1.code, 0);
    assert.match(r1.out, /not applied the cluster settings yet/);
    const r2 = runLib(lib(false, same), "pgc_patroni_settings_applied", {});
    assert.equal(r2.code, 0, r2.out);
    const r3 = runLib(lib(false, "/nonexistent/patroni.dynamic.json"), "pgc_patroni_settings_applied", {});
    assert.match(r3.out, /no applied configuration yet/);
  });

  it("rolling: a pending restart notifies the agent restart handler (one node at a time, the leader last) and is reported", () => {
    const r = runLib(lib(false, "/x"), 'PGC_HANDLERS=(); pgc_pending_restart; printf "HANDLERS %s\\n" "${PGC_HANDLERS[*]}"; PGC_HANDLERS=(); pgc_save_handlers', pending);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /changed postgresql:restart pending/);
    assert.match(r.out, /HANDLERS run:pgc_patroni_agent_restart:patroni/);
  });

  it("nothing pending: nothing reported, no handler", () => {
    const r = runLib(lib(false, "/x"), 'PGC_HANDLERS=(); pgc_pending_restart; printf "HANDLERS %s.\\n" "${PGC_HANDLERS[*]}"; PGC_HANDLERS=(); pgc_save_handlers', notPending);
    assert.equal(r.code, 0, r.out);
    assert.doesNotMatch(r.out, /restart pending/);
    assert.match(r.out, /HANDLERS \./);
  });

  it("defer: warns loudly and reports it, restarts nothing", () => {
    const r = runLib(lib(true, "/x"), 'PGC_NODE=pg1; PGC_HANDLERS=(); pgc_pending_restart; printf "HANDLERS %s.\\n" "${PGC_HANDLERS[*]}"; PGC_HANDLERS=(); pgc_save_handlers', pending);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /changed postgresql:restart pending \(deferred: patroni.pendingRestart is defer\)/);
    assert.match(r.out, /WARNING: PostgreSQL on .* needs a restart/);
    assert.match(r.out, /HANDLERS \./);
  });
});

describe("step library: the result line", () => {
  it("stays valid JSON whatever a changed item holds (quotes, backslashes, line breaks, control characters)", () => {
    const prelude = fs.readFileSync(path.join(__dirname, "..", "..", "roles", "lib", "prelude.sh"), "utf8");
    const fn = prelude.slice(prelude.indexOf("pgc_json_list() {"), prelude.indexOf("\n}\n", prelude.indexOf("pgc_json_list() {")) + 3);
    const r = spawnSync("bash", ["-c", `set -euo pipefail\n${fn}\npgc_json_list 'a"b' $'line1\\nline2\\tx\\001y' 'c\\\\d' 'plain'`], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), ['a"b', "line1\nline2\txy", "c\\\\d", "plain"]);
  });
});
