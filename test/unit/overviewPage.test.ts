// The overview page (templates/monitoring/pgcluster.html) rendered by Debian's Prometheus itself,
// on this machine's loopback, with no target at all: the template parses and runs, and a
// Prometheus that knows nothing shows nothing as good (no leader, alerts and targets unknown).
// The hosts test reads it against the real cluster.
import { strict as assert } from "assert";
import { spawn, type ChildProcess } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as os from "os";
import * as path from "path";
import { TEMPLATE_DIR } from "../../roles/render";
import { OVERVIEW_PAGE } from "../../roles/monitoring";
import { freePort } from "../support/tools";

function get(port: number, p: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http.get({ host: "127.0.0.1", port, path: p, timeout: 10_000 }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    }).on("error", reject);
  });
}

/** A Prometheus on 127.0.0.1 with no scrape target, serving the console templates in `consoles`. */
async function emptyPrometheus(consoles: string): Promise<{ port: number; stop: () => void; dir: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgc-prom-"));
  fs.writeFileSync(path.join(dir, "prometheus.yml"), "global:\n  scrape_interval: 15s\n");
  fs.mkdirSync(path.join(dir, "libraries"));
  const port = await freePort();
  const child: ChildProcess = spawn("prometheus", [
    `--config.file=${dir}/prometheus.yml`, `--storage.tsdb.path=${dir}/data`, `--web.listen-address=127.0.0.1:${port}`,
    `--web.console.templates=${consoles}`, `--web.console.libraries=${dir}/libraries`,
  ], { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  child.stderr!.on("data", (d) => (log += d));
  const spawned = new Promise<void>((resolve, reject) => {
    child.on("error", (e) => reject((e as NodeJS.ErrnoException).code === "ENOENT" ? new Error("prometheus is not installed; .ci/run installs it (apt-get install prometheus)") : e));
    child.on("spawn", () => resolve());
  });
  await spawned;
  const stop = () => { child.kill("SIGTERM"); fs.rmSync(dir, { recursive: true, force: true }); };
  for (const end = Date.now() + 30_000; ; await new Promise((r) => setTimeout(r, 200))) {
    const ready = await get(port, "/-/ready").catch(() => undefined);
    if (ready?.status === 200) return { port, stop, dir };
    if (Date.now() > end || child.exitCode !== null) { stop(); throw new Error(`prometheus did not get ready: ${log.slice(-500)}`); }
  }
}

/** The text of the element carrying data-summary="<key>", tags removed. */
function summary(body: string, key: string): string {
  const m = new RegExp(`data-summary="${key}">([\\s\\S]*?)</b>`).exec(body);
  assert.ok(m, `no data-summary="${key}"`);
  return m[1].replace(/<[^>]+>/g, "").replace(/\s+/g, " ").trim();
}

describe("the overview page, rendered by Prometheus with nothing to read", function () {
  this.timeout(60_000);
  let prom: Awaited<ReturnType<typeof emptyPrometheus>>;
  let broken: string;

  before(async () => {
    // The page as installed, and a copy with one {{ end }} missing.
    broken = fs.mkdtempSync(path.join(os.tmpdir(), "pgc-consoles-"));
    const page = fs.readFileSync(path.join(TEMPLATE_DIR, "monitoring", OVERVIEW_PAGE), "utf8");
    fs.writeFileSync(path.join(broken, OVERVIEW_PAGE), page.replace("{{ end }}", ""));
    fs.mkdirSync(path.join(broken, "real"));
    fs.writeFileSync(path.join(broken, "real", OVERVIEW_PAGE), page);
    prom = await emptyPrometheus(broken);
  });
  after(() => {
    prom?.stop();
    fs.rmSync(broken, { recursive: true, force: true });
  });

  it("renders (200), and shows no leader, alerts and targets unknown, no backup and no certificate seen: nothing marked good", async () => {
    const r = await get(prom.port, `/consoles/real/${OVERVIEW_PAGE}`);
    assert.equal(r.status, 200, r.body.slice(0, 500));
    assert.equal(summary(r.body, "leader"), "none");
    assert.match(summary(r.body, "alerts-firing"), /^unknown/);
    assert.equal(summary(r.body, "targets-down"), "unknown");
    assert.equal(summary(r.body, "backup-age"), "none seen");
    assert.equal(summary(r.body, "cert-expiry"), "unknown");
    assert.match(r.body, /data-alert="unknown"/, "no alert rules evaluated: the alerts table says unknown, not 'none firing'");
    assert.doesNotMatch(r.body, /class="ok"/, "nothing is shown as good");
    assert.doesNotMatch(r.body, /data-member=/, "no member invented");
  });

  it("a template error is an error page, not a page (the check above could fail)", async () => {
    const r = await get(prom.port, `/consoles/${OVERVIEW_PAGE}`);
    assert.notEqual(r.status, 200);
    assert.match(r.body, /error|unexpected/i);
  });
});
