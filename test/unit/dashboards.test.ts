// The Grafana dashboards in dashboards/*.json (issue #14), checked offline: importable as they are
// (one data source input, ${DS_PROMETHEUS} everywhere, stable uids, unique panel ids), and every
// query valid PromQL by Debian's promtool (`check rules` on them as recording rules, shown to
// refuse a broken one). That each query returns data on a live cluster is the hosts tests' part
// (local/dashboards.ts gives them the queries).
import { strict as assert } from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import YAML from "yaml";
import { allPanels, dashboardQueries, DASHBOARDS_DIR, readDashboards, substituteVariables, type Dashboard, type Panel } from "../../local/dashboards";
import { run } from "../support/tools";

const DS = { type: "prometheus", uid: "${DS_PROMETHEUS}" };
/** The built-in "Annotations & Alerts" entry Grafana adds to every dashboard. */
const GRAFANA_BUILTIN = { type: "grafana", uid: "-- Grafana --" };
/** Links and the hosts tests name the dashboards by uid: these must not change. */
const UIDS: Record<string, string> = { "pgcluster-overview.json": "pgcluster-overview", "pgcluster-node.json": "pgcluster-node" };
const TEXTFILE_WRITER = path.join(__dirname, "..", "..", "templates", "exporters", "textfile-metrics.py.hbs");

interface Annotation { builtIn?: number; datasource?: unknown; expr?: string; name: string }
interface Variable { name: string; type: string; datasource?: unknown; query?: string | { query: string }; definition?: string }
const annotationsOf = (d: Dashboard) => ((d.annotations as { list?: Annotation[] } | undefined)?.list ?? []);
const variablesOf = (d: Dashboard) => ((d.templating as { list?: Variable[] } | undefined)?.list ?? []);
const variableQuery = (v: Variable) => (typeof v.query === "string" ? v.query : v.query?.query ?? "");

/** Every `datasource` value anywhere in a JSON document, with where it is. */
function datasources(node: unknown, at = ""): { at: string; value: unknown }[] {
  if (Array.isArray(node)) return node.flatMap((n, i) => datasources(n, `${at}[${i}]`));
  if (node === null || typeof node !== "object") return [];
  return Object.entries(node as Record<string, unknown>).flatMap(([k, v]) =>
    [...(k === "datasource" ? [{ at: `${at}.${k}`, value: v }] : []), ...datasources(v, `${at}.${k}`)]);
}

/** Runs `promtool check rules` on these expressions as recording rules. */
function promtoolCheck(exprs: string[]): { code: number; out: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgc-dashboards-"));
  try {
    const file = path.join(dir, "dashboards.yml");
    fs.writeFileSync(file, YAML.stringify({ groups: [{ name: "dashboards", rules: exprs.map((expr, i) => ({ record: `pgcluster_dashboard:query_${i}`, expr })) }] }));
    return run("promtool", ["check", "rules", file]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const overlaps = (a: Panel & { gridPos?: Grid }, b: Panel & { gridPos?: Grid }) => {
  const [p, q] = [a.gridPos as Grid, b.gridPos as Grid];
  return p.x < q.x + q.w && q.x < p.x + p.w && p.y < q.y + q.h && q.y < p.y + p.h;
};
interface Grid { x: number; y: number; w: number; h: number }

describe("Grafana dashboards (dashboards/*.json)", () => {
  const all = readDashboards();
  const byUid = (uid: string) => {
    const d = all.find((x) => x.dashboard.uid === uid);
    assert.ok(d, `no dashboard with uid ${uid}`);
    return d.dashboard;
  };
  const instances = { instance: "pg1", rateInterval: "1m" };

  it("are both there and parse as Grafana dashboards to import", () => {
    assert.deepEqual(all.map((d) => d.file), Object.keys(UIDS).sort());
    for (const { file, dashboard: d } of all) {
      assert.equal(d.id, null, `${file}: id must be null (Grafana assigns it on import)`);
      assert.equal(d.schemaVersion, 39, file);
      assert.ok(typeof d.title === "string" && d.title.startsWith("pgcluster"), `${file}: title`);
      assert.ok(allPanels(d.panels).filter((p) => p.type !== "row").length >= 10, `${file}: panels`);
    }
  });

  it("have unique, stable uids", () => {
    for (const { file, dashboard: d } of all) {
      assert.equal(d.uid, UIDS[file], `${file}: uid`);
      assert.match(d.uid, /^[A-Za-z0-9_-]{1,40}$/, `${file}: uid Grafana accepts`);
    }
    assert.equal(new Set(all.map((d) => d.dashboard.uid)).size, all.length, "uids unique");
  });

  it("ask for one Prometheus data source on import, and require Grafana 9 and the panels they use", () => {
    for (const { file, dashboard: d } of all) {
      assert.deepEqual((d.__inputs as { name: string; type: string; pluginId: string }[]).map(({ name, type, pluginId }) => ({ name, type, pluginId })),
        [{ name: "DS_PROMETHEUS", type: "datasource", pluginId: "prometheus" }], file);
      const req = d.__requires as { type: string; id: string; version: string }[];
      assert.ok(req.some((r) => r.type === "grafana" && Number(r.version.split(".")[0]) >= 9), `${file}: requires grafana >= 9`);
      assert.ok(req.some((r) => r.type === "datasource" && r.id === "prometheus"), `${file}: requires the prometheus data source`);
      const used = new Set(allPanels(d.panels).map((p) => p.type).filter((t) => t !== "row"));
      assert.deepEqual(req.filter((r) => r.type === "panel").map((r) => r.id).sort(), [...used].sort(), `${file}: __requires lists exactly the panel types used`);
    }
  });

  it("use ${DS_PROMETHEUS} for every panel (rows' nested ones too), target, variable and annotation", () => {
    for (const { file, dashboard: d } of all) {
      for (const p of allPanels(d.panels)) {
        assert.deepEqual(p.datasource, DS, `${file}: panel ${p.id} "${p.title}"`);
        if (p.type !== "row") assert.ok((p.targets ?? []).length > 0, `${file}: panel ${p.id} "${p.title}" has no query`);
        for (const t of p.targets ?? []) assert.deepEqual(t.datasource, DS, `${file}: panel ${p.id} "${p.title}" target ${t.refId}`);
      }
      for (const v of variablesOf(d)) assert.deepEqual(v.datasource, DS, `${file}: variable ${v.name}`);
      for (const a of annotationsOf(d)) assert.deepEqual(a.datasource, a.builtIn ? GRAFANA_BUILTIN : DS, `${file}: annotation ${a.name}`);
      // And nothing anywhere names another data source (a uid of the Grafana it was built on).
      for (const { at, value } of datasources(d)) {
        assert.ok([DS, GRAFANA_BUILTIN].some((ok) => JSON.stringify(ok) === JSON.stringify(value)), `${file}: ${at} is ${JSON.stringify(value)}`);
      }
    }
  });

  it("number panels uniquely and lay them out on the 24-column grid without overlaps", () => {
    for (const { file, dashboard: d } of all) {
      const panels = allPanels(d.panels) as (Panel & { gridPos?: Grid })[];
      const ids = panels.map((p) => p.id);
      assert.ok(ids.every((id) => Number.isInteger(id) && (id as number) > 0), `${file}: integer ids`);
      assert.equal(new Set(ids).size, ids.length, `${file}: panel ids unique`);
      for (const p of panels) {
        const g = p.gridPos as Grid;
        assert.ok(g && g.x >= 0 && g.w > 0 && g.x + g.w <= 24 && g.h > 0 && g.y >= 0, `${file}: panel ${p.id} gridPos ${JSON.stringify(g)}`);
      }
      // Top-level panels share one grid; a collapsed row's panels another, each.
      const layers = [d.panels, ...d.panels.filter((p) => p.type === "row" && (p.panels ?? []).length > 0).map((r) => r.panels as Panel[])];
      for (const layer of layers as (Panel & { gridPos?: Grid })[][])
        for (let i = 0; i < layer.length; i++)
          for (let j = i + 1; j < layer.length; j++)
            assert.ok(!overlaps(layer[i], layer[j]), `${file}: panels ${layer[i].id} and ${layer[j].id} overlap`);
    }
  });

  it("the node dashboard picks a host by its instance variable, and every label selector of its queries filters by it", () => {
    const node = byUid("pgcluster-node");
    const v = variablesOf(node).find((x) => x.name === "instance");
    assert.ok(v, "variable instance");
    assert.equal(v.type, "query");
    assert.match(variableQuery(v), /^label_values\(up\{[^}]*\}, *instance\)$/);
    // (Bare metric names are allowed: the replication lag compares with the primary's position.)
    for (const q of dashboardQueries().filter((x) => x.dashboard === "pgcluster-node"))
      for (const sel of q.expr.match(/\b[a-zA-Z_:][\w:]*\{[^}]*\}/g) ?? [q.expr])
        assert.match(sel, /instance="\$instance"/, `"${q.panel}": ${sel} is not filtered by $instance`);
    // The overview shows the whole cluster: no host variable.
    assert.ok(!dashboardQueries().some((q) => q.dashboard === "pgcluster-overview" && q.expr.includes("$instance")));
  });

  it("use $__rate_interval in every rate() and irate(), and only variables they define", () => {
    const queries = dashboardQueries();
    assert.ok(queries.length > 50, `${queries.length} queries`);
    for (const q of queries) {
      for (const m of q.expr.matchAll(/\b(i?rate)\(([^[]*)\[([^\]]*)\]/g))
        assert.equal(m[3], "$__rate_interval", `"${q.panel}": ${m[0]}`);
      assert.doesNotThrow(() => substituteVariables(q.expr, instances), `"${q.panel}"`);
    }
  });

  it("every query, variable and annotation is valid PromQL (promtool check rules), and the check refuses a broken one", function () {
    this.timeout(60_000);
    const exprs = [
      ...dashboardQueries().map((q) => substituteVariables(q.expr, instances)),
      ...all.flatMap(({ dashboard: d }) => annotationsOf(d).filter((a) => a.expr).map((a) => substituteVariables(a.expr as string, instances))),
      // label_values(<selector>, label) is Grafana's; its selector is PromQL.
      ...all.flatMap(({ dashboard: d }) => variablesOf(d).map((v) => (/^label_values\((.*), *\w+\)$/.exec(variableQuery(v)) ?? [])[1]).filter((s): s is string => !!s)),
    ];
    const ok = promtoolCheck(exprs);
    assert.equal(ok.code, 0, ok.out);
    assert.match(ok.out, new RegExp(`SUCCESS: ${exprs.length} rules found`));
    const broken = promtoolCheck([...exprs, "sum by (instance) (rate(pg_stat_database_xact_commit[1m])"]);
    assert.notEqual(broken.code, 0, "promtool accepted a broken expression");
    assert.match(broken.out, /unclosed left parenthesis/);
  });

  it("textfile metrics they read are ones pgcluster's textfile writer writes", () => {
    const writer = fs.readFileSync(TEXTFILE_WRITER, "utf8");
    const names = new Set(dashboardQueries().flatMap((q) => q.expr.match(/\b(?:pgbouncer|pgcluster)_[a-z0-9_]+\b/g) ?? []));
    assert.ok(names.size >= 5, `${[...names]}`);
    for (const n of names) assert.ok(writer.includes(`"${n}"`), `${n} is not written by templates/exporters/textfile-metrics.py.hbs`);
  });

  describe("local/dashboards.ts", () => {
    it("dashboardQueries walks rows, collapsed ones' nested panels too", () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgc-dashboards-"));
      try {
        fs.writeFileSync(path.join(dir, "d.json"), JSON.stringify({
          uid: "d", title: "t", panels: [
            { id: 1, type: "row", title: "open", collapsed: false, panels: [] },
            { id: 2, type: "stat", title: "top", targets: [{ refId: "A", expr: "up" }, { refId: "B", expr: "" }] },
            { id: 3, type: "row", title: "closed", collapsed: true, panels: [{ id: 4, type: "timeseries", title: "inner", targets: [{ refId: "A", expr: "node_load1{instance=\"$instance\"}" }] }] },
          ],
        }));
        fs.writeFileSync(path.join(dir, "notes.txt"), "not a dashboard");
        assert.deepEqual(dashboardQueries(dir), [
          { dashboard: "d", panel: "top", expr: "up" },
          { dashboard: "d", panel: "inner", expr: "node_load1{instance=\"$instance\"}" },
        ]);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
      // The real node dashboard keeps its pgBouncer panels in a collapsed row: they are found too.
      const collapsed = byUid("pgcluster-node").panels.filter((p) => p.type === "row" && (p.panels ?? []).length > 0);
      assert.ok(collapsed.length > 0);
      const titles = new Set(dashboardQueries(DASHBOARDS_DIR).map((q) => q.panel));
      for (const p of collapsed.flatMap((r) => r.panels as Panel[])) assert.ok(titles.has(p.title as string), `${p.title}`);
    });

    it("substituteVariables replaces Grafana's three forms, and refuses a variable the dashboards do not define", () => {
      assert.equal(substituteVariables('rate(x{instance="$instance"}[$__rate_interval])', { instance: "pg2" }), 'rate(x{instance="pg2"}[1m])');
      assert.equal(substituteVariables('x{instance="${instance}"}[${__rate_interval}] or y{instance="[[instance]]"}', { instance: "lb1", rateInterval: "2m" }), 'x{instance="lb1"}[2m] or y{instance="lb1"}');
      assert.equal(substituteVariables('label_replace(up, "a", "$1", "job", "(.*)")', { instance: "pg1" }), 'label_replace(up, "a", "$1", "job", "(.*)")', "$1 of label_replace is no variable");
      assert.throws(() => substituteVariables('up{job="$job"}', { instance: "pg1" }), /unknown dashboard variable \$job/);
    });
  });
});
