// The Grafana dashboards in dashboards/*.json (issue #14), read as data: every query their panels
// run, and the dashboard variables substituted the way Grafana would, so a test can send each
// query to the cluster's Prometheus (hosts test) or to promtool (unit test) as it is.
import * as fs from "fs";
import * as path from "path";

/** Where the dashboards are kept: dashboards/ at the top of the repository. */
export const DASHBOARDS_DIR = path.join(__dirname, "..", "dashboards");

export interface DashboardQuery {
  /** The dashboard's uid (its file name without .json). */
  dashboard: string;
  /** The panel's title. */
  panel: string;
  /** The target's PromQL, variables not substituted. */
  expr: string;
}

/** A Grafana panel as far as it matters here; a row holds its panels when it is collapsed. */
export interface Panel {
  id?: number;
  type: string;
  title?: string;
  datasource?: { type?: string; uid?: string } | null;
  targets?: { expr?: string; refId?: string; datasource?: { type?: string; uid?: string } | null; hide?: boolean }[];
  panels?: Panel[];
}

export interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  [key: string]: unknown;
}

/** The dashboards in `dir`, by file name (sorted). Throws, naming the file, on one that is no JSON. */
export function readDashboards(dir: string = DASHBOARDS_DIR): { file: string; dashboard: Dashboard }[] {
  return fs.readdirSync(dir).filter((f) => f.endsWith(".json")).sort().map((file) => {
    const text = fs.readFileSync(path.join(dir, file), "utf8");
    try {
      return { file, dashboard: JSON.parse(text) as Dashboard };
    } catch (e) {
      throw new Error(`${path.join(dir, file)}: not JSON: ${(e as Error).message}`);
    }
  });
}

/** Every panel of a dashboard, rows and the panels inside (collapsed) rows included, depth first. */
export function allPanels(panels: Panel[] = []): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

/** Every target expression of every panel (nested in rows too) of the dashboards in `dir`; hidden targets included. */
export function dashboardQueries(dir: string = DASHBOARDS_DIR): DashboardQuery[] {
  return readDashboards(dir).flatMap(({ dashboard }) =>
    allPanels(dashboard.panels).flatMap((p) =>
      (p.targets ?? []).filter((t) => typeof t.expr === "string" && t.expr.trim() !== "")
        .map((t) => ({ dashboard: dashboard.uid, panel: p.title ?? `panel ${p.id}`, expr: t.expr as string }))));
}

/**
 * `expr` with the dashboards' variables replaced as Grafana does: `$instance` (also `${instance}`
 * and `[[instance]]`) by the host name, `$__rate_interval` by `rateInterval` (default "1m": four
 * scrapes at the default 15 s interval, as Grafana computes it). A variable the dashboards do not
 * define throws, so a query never reaches Prometheus with a `$name` in it.
 */
export function substituteVariables(expr: string, vars: { instance: string; rateInterval?: string }): string {
  const values: Record<string, string> = { instance: vars.instance, __rate_interval: vars.rateInterval ?? "1m" };
  return expr.replace(/\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$([A-Za-z_]\w*)/g, (whole, braced?: string, bracketed?: string, bare?: string) => {
    const name = (braced ?? bracketed ?? bare) as string;
    if (!(name in values)) throw new Error(`unknown dashboard variable ${whole} in: ${expr}`);
    return values[name];
  });
}
