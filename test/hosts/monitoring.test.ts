// Issue #14 on the real local cluster: Prometheus on the monitoring host scrapes every target of
// the inventory over TLS; the exporters refuse a request without the metrics login and are closed
// to a client that is no operator; the metrics password is held in plain text on the monitoring
// host only; pgcluster's textfile metrics say what the hosts hold (certificates, pgBouncer); and a
// replica that goes down fires PostgresNodeDown for that node, which resolves when it is back. The
// overview page (/consoles/pgcluster.html), rendered by Debian's chromium, shows what Patroni,
// etcd and HAProxy say, and the replica that went down.
import { strict as assert } from "assert";
import * as https from "https";
import { X509Certificate, createHash } from "crypto";
import { onNode, onlyRole, requireHosts, settledCluster } from "../support/hostsLayer";
import { ProbeNamespace } from "../support/netns";
import { loadSpec, patroniCluster, type LocalCluster } from "../../local/cluster";
import { apply } from "../../local/up";
import { compile } from "../../roles/compile";
import { EXPORTERS } from "../../model/identities";
import { activeAlerts, promQuery, prometheusApi, type Alert } from "../../local/monitoring";
import { renderOverview, type Overview } from "../../local/overviewPage";
import { dashboardQueries, substituteVariables } from "../../local/dashboards";
import * as path from "path";
import { ssh } from "../../local/ssh";
import { tlsDir } from "../../model/identities";
import { scrapeJobs } from "../../roles/monitoring/configs";

/** Status of a GET over TLS verified against the cluster CA, with or without a login. */
function status(c: LocalCluster, url: string, auth?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const headers = auth === undefined ? {} : { authorization: `Basic ${Buffer.from(auth).toString("base64")}` };
    const req = https.get(url, { ca: c.pki.ca, headers, timeout: 5000, agent: false }, (res) => { res.resume(); res.on("end", () => resolve(res.statusCode ?? 0)); });
    req.on("timeout", () => req.destroy(new Error(`${url}: timeout`)));
    req.on("error", reject);
  });
}

/**
 * A webhook receiver on the monitoring host's loopback (https://127.0.0.1:9445/hook, with that
 * host's node certificate), run by systemd-run: it keeps every POST as a file. Alertmanager
 * verifies a webhook against the system trust, so for the test the cluster CA joins it there;
 * `stop` undoes all of it.
 */
const WEBHOOK = { url: "https://127.0.0.1:9445/hook", unit: "pgcluster-webhook-test", dir: "/run/pgcluster-webhook-test", ca: "/usr/local/share/ca-certificates/pgcluster-webhook-test.crt" };
const RECEIVER = `
import http.server, os, ssl, time
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open(os.path.join("${WEBHOOK.dir}", "%d.json" % time.time_ns()), "wb") as f:
            f.write(body)
        self.send_response(200)
        self.end_headers()
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("127.0.0.1", 9445), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain("${EXPORTERS.tlsDir}/node.crt", "${EXPORTERS.tlsDir}/node.key")
s.socket = ctx.wrap_socket(s.socket, server_side=True)
s.serve_forever()
`;
async function startWebhookReceiver(c: LocalCluster, mon: string): Promise<void> {
  const r = await ssh(c.ssh, c.targets[mon], `set -e; systemctl stop ${WEBHOOK.unit} 2>/dev/null || true; systemctl reset-failed ${WEBHOOK.unit} 2>/dev/null || true; mkdir -p ${WEBHOOK.dir}; cat > ${WEBHOOK.dir}.py; install -m 0644 ${EXPORTERS.tlsDir}/ca.crt ${WEBHOOK.ca}; update-ca-certificates >/dev/null 2>&1; systemd-run --quiet --collect --unit=${WEBHOOK.unit} python3 ${WEBHOOK.dir}.py`, RECEIVER, 60_000);
  assert.equal(r.code, 0, `the webhook receiver on ${mon}: ${r.out}`);
}
async function stopWebhookReceiver(c: LocalCluster, mon: string): Promise<void> {
  // Alertmanager keeps the system trust it read: restarted, it drops the test's CA.
  await onNode(c, mon, `systemctl stop ${WEBHOOK.unit} 2>/dev/null; rm -rf ${WEBHOOK.dir} ${WEBHOOK.dir}.py ${WEBHOOK.ca}; update-ca-certificates --fresh >/dev/null 2>&1; systemctl restart prometheus-alertmanager; true`);
}
/** Every notification the receiver got: Alertmanager's webhook payload (version 4). */
async function webhookNotifications(c: LocalCluster, mon: string): Promise<{ status: string; alerts: { status: string; labels: Record<string, string> }[] }[]> {
  const out = await onNode(c, mon, `for f in ${WEBHOOK.dir}/*.json; do [ -e "$f" ] && { cat "$f"; echo; }; done; true`);
  return out.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
}

async function until<T>(seconds: number, what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + seconds * 1000;
  let last = "";
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (e) { last = (e as Error).message; }
    if (Date.now() > end) throw new Error(`${what}: not within ${seconds} s${last ? ` (last error: ${last})` : ""}`);
    await new Promise((r) => setTimeout(r, 3000));
  }
}

describe("hosts layer: monitoring (issue #14)", function () {
  this.timeout(10 * 60_000);
  let c: LocalCluster;
  const outsider = new ProbeNamespace("10.213.0.203");

  before(async function () {
    requireHosts(this);
    c = await settledCluster("monitoring");
    assert.ok(c.spec.monitoring.enabled, "the local stack has monitoring on");
  });

  after(() => {
    const left = outsider.remove();
    if (left.length) throw new Error(`left behind: ${left.join(", ")}`);
  });

  it("Prometheus scrapes every target of the inventory (by host name) and every one is up", async () => {
    const want = scrapeJobs(c.hosts).flatMap((j) => j.targets.map((t) => `${j.name}/${t.host}`)).sort();
    assert.ok(want.length >= 19, `targets expected: ${want.length}`);
    // A fresh apply's first scrapes may still be under way: up within two scrape intervals.
    const seen = await until(60, "every target up", async () => {
      const d = await prometheusApi<{ activeTargets: { labels: Record<string, string>; health: string; lastError: string }[] }>(c, "/api/v1/targets?state=active");
      const byKey = new Map(d.activeTargets.map((t) => [`${t.labels.job}/${t.labels.instance}`, t]));
      const notUp = want.filter((k) => byKey.get(k)?.health !== "up");
      if (notUp.length) throw new Error(`not up: ${notUp.map((k) => `${k} (${byKey.get(k)?.health ?? "not a target"}${byKey.get(k)?.lastError ? `: ${byKey.get(k)!.lastError}` : ""})`).join(", ")}`);
      return [...byKey.keys()].sort();
    });
    assert.deepEqual(seen, want, "exactly the inventory's targets, nothing else");
  });

  it("every exporter answers over TLS: 401 without the login or with a wrong one, 200 with it", async () => {
    for (const job of scrapeJobs(c.hosts).filter((j) => j.basicAuthUser)) {
      for (const t of job.targets) {
        const url = `https://${t.address}:${t.port}${job.metricsPath}`;
        assert.equal(await status(c, url), 401, `${job.name} on ${t.host} without the login`);
        assert.equal(await status(c, url, `${job.basicAuthUser}:wrong-${c.secrets.metricsPassword.length}`), 401, `${job.name} on ${t.host} with a wrong password`);
        assert.equal(await status(c, url, `${job.basicAuthUser}:${c.secrets.metricsPassword}`), 200, `${job.name} on ${t.host} with the login`);
      }
    }
  });

  it("from a client address that is no operator (10.213.0.203): every exporter's port and Prometheus are closed", async () => {
    outsider.create();
    // In parallel: a dropped connection attempt waits out its timeout.
    const targets = scrapeJobs(c.hosts).flatMap((job) => job.targets.map((t) => ({ job: job.name, ...t })));
    const results = await Promise.all(targets.map(async (t) => ({ t, r: await outsider.probe(t.address, t.port) })));
    for (const { t, r } of results) assert.equal(r.state, "closed", `${t.job} ${t.host} ${t.address}:${t.port} from 10.213.0.203: ${r.detail}`);
  });

  it("the metrics password is in plain text on the monitoring host only (0640 root:prometheus), nowhere else under /etc or pgcluster's scripts", async () => {
    for (const h of c.hosts) {
      // The password goes to grep on stdin as its pattern: never in argv.
      const r = await ssh(c.ssh, c.targets[h.name], "grep -rlF -f /dev/stdin /etc /usr/local/lib/pgcluster /var/lib/prometheus 2>/dev/null; true", `${c.secrets.metricsPassword}\n`, 60_000);
      assert.equal(r.code, 0, `${h.name}: ${r.out}`);
      const files = r.out.trim().split("\n").filter(Boolean);
      assert.deepEqual(files, h.roles.includes("monitoring") ? ["/etc/prometheus/pgcluster/metrics-password"] : [], `${h.name} holds it in: ${files.join(", ")}`);
    }
    const mon = c.hosts.find((h) => h.roles.includes("monitoring"))!;
    assert.equal(await onNode(c, mon.name, "stat -c '%a %U:%G' /etc/prometheus/pgcluster/metrics-password"), "640 root:prometheus");
  });

  it("textfile metrics: each node certificate's expiry as the PKI issued it, pgBouncer read on every database node", async () => {
    for (const h of c.hosts.filter((x) => x.roles.includes("postgres"))) {
      const path = `${tlsDir.patroni}/node.crt`;
      const want = Math.round(new Date(new X509Certificate(c.pki.nodes[h.name].cert).validTo).getTime() / 1000);
      const got = await until(60, `${h.name}'s certificate expiry`, async () => (await promQuery(c, `pgcluster_certificate_expiry_timestamp_seconds{instance="${h.name}",path="${path}"}`))[0]?.value);
      assert.equal(got, want, `${h.name} ${path}`);
      const up = await until(60, `${h.name}'s pgBouncer metrics`, async () => (await promQuery(c, `pgbouncer_up{instance="${h.name}"}`))[0]?.value);
      assert.equal(up, 1, `${h.name}: pgBouncer's console read`);
    }
    const unreadable = await promQuery(c, `pgcluster_certificate_files{state="unreadable"} > 0`);
    assert.deepEqual(unreadable.map((s) => s.metric.instance), [], "every certificate file read");
  });

  it("the overview page, rendered by headless chromium, shows the members, etcd, balancers and alerts as the cluster has them", async () => {
    const shot = path.join(c.stateDir, "overview.png");
    // One scrape that times out on a loaded machine counts a target down for 15 s: the page is
    // read again until it shows none down (the first test saw every target up), at most 60 s.
    const page = await until(60, "the overview page with no target down", async () => {
      const p = await renderOverview(c, { screenshot: shot });
      return /^0 of \d+$/.test(p.summary["targets-down"]) ? p : undefined;
    });
    console.log(`      · overview page rendered; screenshot ${shot}`);
    assert.equal(page.status, 200);
    assert.equal(page.cluster, c.spec.clusterName, "Patroni's scope");
    const members = await patroniCluster(c);
    const leader = members.find((m) => m.role === "leader")?.name;
    assert.ok(leader, `a leader among ${members.map((m) => `${m.name}:${m.role}`).join(", ")}`);
    const byName = <T extends { name: string }>(xs: T[]): T[] => [...xs].sort((a, b) => a.name.localeCompare(b.name));
    assert.deepEqual(byName(page.members).map((m) => [m.name, m.role, m.postgres]),
      byName(members).map((m) => [m.name, m.name === leader ? "primary" : "replica", "running"]), "members: role and PostgreSQL as Patroni says");
    assert.equal(page.summary.leader, leader);
    for (const m of page.members.filter((x) => x.role === "replica")) assert.match(m.lag, /^\d+(\.\d+)?[kMG]?i?B$/, `${m.name}'s replay lag is a figure`);
    const etcdHosts = c.hosts.filter((h) => h.roles.includes("etcd")).map((h) => h.name).sort();
    assert.deepEqual(page.etcd.map((e) => [e.name, e.state]), etcdHosts.map((n) => [n, "healthy"]));
    const balancers = c.hosts.filter((h) => h.roles.includes("balancer")).map((h) => h.name).sort();
    assert.deepEqual(page.balancers.map((b) => [b.name, b.writer]), balancers.map((n) => [n, [leader]]), "every balancer's writer goes to the leader");
    // The page and the API agree on the alerts (an alert may start or end between the two reads:
    // those are told apart from a disagreement by reading the API on both sides).
    const before = new Set((await activeAlerts(c)).map((a) => `${a.name}/${a.state}`));
    const again = await renderOverview(c);
    const after = new Set((await activeAlerts(c)).map((a) => `${a.name}/${a.state}`));
    const shown = new Set(again.alerts.filter((a) => a.name !== "none").map((a) => `${a.name}/${a.state}`));
    for (const k of shown) assert.ok(before.has(k) || after.has(k), `the page shows ${k}, the API does not`);
    for (const k of before) if (after.has(k)) assert.ok(shown.has(k), `the API has ${k} throughout, the page does not show it`);
  });

  it("every query of the Grafana dashboards returns data on the local cluster (the node dashboard for each database node)", async () => {
    const queries = dashboardQueries();
    assert.ok(queries.length >= 50, `dashboard queries found: ${queries.length}`);
    const dbNodes = c.hosts.filter((h) => h.roles.includes("postgres")).map((h) => h.name);
    const runs = queries.flatMap((q) => (q.dashboard === "pgcluster-node" ? dbNodes : [dbNodes[0]]).map((instance) => ({ ...q, instance, promql: substituteVariables(q.expr, { instance }) })));
    // Rates need two samples in their window: a query empty just after a restart gets a minute.
    let empty = runs;
    await until(90, "every dashboard query returning data", async () => {
      const results = await Promise.all(empty.map(async (r) => ({ r, n: (await promQuery(c, r.promql)).length })));
      empty = results.filter((x) => x.n === 0).map((x) => x.r);
      if (empty.length) throw new Error(`${empty.length} of ${runs.length} empty, e.g. ${empty.slice(0, 3).map((r) => `${r.dashboard} "${r.panel}" (${r.instance}): ${r.promql}`).join("; ")}`);
      return true;
    });
    console.log(`      · ${runs.length} dashboard queries (${queries.length} distinct), every one with data`);
  });

  it("the browser refuses the page when the server's key is not the one Node verified against the CA", async () => {
    const other = createHash("sha256").update(new X509Certificate(c.pki.ca).publicKey.export({ type: "spki", format: "der" })).digest("base64");
    await assert.rejects(renderOverview(c, { spkiPin: other }), /ERR_CERT/);
  });

  it("a replica down for more than a minute fires PostgresNodeDown for that node (critical), Alertmanager posts it to the webhook, and it resolves once it is back", async () => {
    const members = await patroniCluster(c);
    const replica = members.find((m) => m.role === "replica" || m.role === "sync_standby");
    assert.ok(replica, `a replica among ${members.map((m) => `${m.name}:${m.role}`).join(", ")}`);
    const down = (alerts: Alert[]) => alerts.find((a) => a.name === "PostgresNodeDown" && a.instance === replica!.name && a.state === "firing");
    assert.equal(down(await activeAlerts(c)), undefined, "not firing before");
    // Alertmanager posts to monitoring.alertmanager.webhookUrl: for this test, a receiver on the
    // monitoring host (the monitoring step alone applied with the URL set, then without).
    const mon = c.hosts.find((h) => h.roles.includes("monitoring"))!.name;
    const withWebhook = (url: string): LocalCluster => {
      const spec = loadSpec("local", { monitoring: { ...c.spec.monitoring, alertmanager: { webhookUrl: url } } });
      return onlyRole({ ...c, spec, plan: compile(spec, c.hosts, c.pki, c.secrets) }, "monitoring");
    };
    let t0 = Date.now();
    try {
      await startWebhookReceiver(c, mon);
      assert.equal((await apply(withWebhook(WEBHOOK.url), () => {})).code, 0, "the monitoring step with the webhook set");
      await onNode(c, replica.name, "systemctl stop patroni");
      t0 = Date.now();
      const fired = await until(180, `PostgresNodeDown firing for ${replica.name}`, async () => down(await activeAlerts(c)));
      console.log(`      · PostgresNodeDown (${fired.severity}) for ${replica.name} firing ${((Date.now() - t0) / 1000).toFixed(0)} s after Patroni stopped: ${fired.summary}`);
      assert.equal(fired.severity, "critical");
      const others = (await activeAlerts(c)).filter((a) => a.name === "PostgresNodeDown" && a.instance !== replica!.name);
      assert.deepEqual(others.map((a) => a.instance), [], "no other node is said down");
      // Prometheus hands it to Alertmanager (on the monitoring host's loopback), which routes it to
      // the receivers (the webhook, when monitoring.alertmanager.webhookUrl is set).
      const inAlertmanager = await until(60, `PostgresNodeDown for ${replica.name} in Alertmanager`, async () => {
        const list = JSON.parse(await onNode(c, mon, "amtool alert query --alertmanager.url=http://127.0.0.1:9093 -o json alertname=PostgresNodeDown")) as { labels: Record<string, string>; status: { state: string }; receivers: { name: string }[] }[];
        return list.find((a) => a.labels.instance === replica!.name);
      });
      assert.equal(inAlertmanager.status.state, "active");
      assert.deepEqual(inAlertmanager.receivers.map((r) => r.name), ["pgcluster"]);
      const page: Overview = await renderOverview(c);
      const row = page.members.find((m) => m.name === replica!.name);
      assert.deepEqual(row && [row.role, row.postgres], ["unreachable", "unknown"], `the page's row for ${replica!.name}`);
      assert.ok(page.alerts.some((a) => a.name === "PostgresNodeDown" && a.state === "firing"), `the page lists PostgresNodeDown firing: ${JSON.stringify(page.alerts)}`);
      assert.doesNotMatch(page.summary["targets-down"], /^0 /, "the page counts the target down");
      // Delivered: the receiver got the alert, firing, for that node (group_wait 30 s).
      const sent = await until(120, `PostgresNodeDown for ${replica.name} posted to the webhook`, async () =>
        (await webhookNotifications(c, mon)).flatMap((n) => n.alerts).find((a) => a.labels.alertname === "PostgresNodeDown" && a.labels.instance === replica!.name && a.status === "firing"));
      console.log(`      · posted to the webhook ${((Date.now() - t0) / 1000).toFixed(0)} s after Patroni stopped (severity ${sent.labels.severity})`);
    } finally {
      // Each undo runs whatever the others did; the first failure is reported after all of them.
      const undo: (() => Promise<unknown>)[] = [
        () => onNode(c, replica!.name, "systemctl start patroni"),
        async () => assert.equal((await apply(onlyRole(c, "monitoring"), () => {})).code, 0, "the monitoring step without the webhook again"),
        () => stopWebhookReceiver(c, mon),
      ];
      const failed: unknown[] = [];
      for (const f of undo) await Promise.resolve().then(f).catch((e) => failed.push(e));
      if (failed.length) throw failed[0];
    }
    const t1 = Date.now();
    await until(120, `PostgresNodeDown resolved for ${replica.name}`, async () => {
      const a = (await activeAlerts(c)).find((x) => x.name === "PostgresNodeDown" && x.instance === replica!.name);
      return a ? undefined : true;
    });
    console.log(`      · resolved ${((Date.now() - t1) / 1000).toFixed(0)} s after Patroni started again`);
    // Patroni 3.0.2 says "running" for a replica that is up (later versions say "streaming").
    await until(120, `${replica.name} a running replica again`, async () => {
      const m = (await patroniCluster(c)).find((x) => x.name === replica!.name);
      return m && m.state === "running" && (m.role === "replica" || m.role === "sync_standby") ? true : undefined;
    });
  });
});
