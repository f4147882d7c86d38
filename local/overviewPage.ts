// The overview page (Prometheus console template /consoles/pgcluster.html on the monitoring host)
// as a person sees it: rendered by Debian's chromium, headless, driven over the DevTools protocol
// (puppeteer-core). The metrics login goes to the browser through the protocol (an auth
// challenge answer), never in argv or a URL; the browser accepts exactly the server key that Node
// first verified against the cluster CA (an SPKI pin), nothing else.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as tls from "tls";
import { createHash } from "crypto";
import puppeteer from "puppeteer-core";
import { METRICS_USER } from "../roles/exporters/webConfig";
import { OVERVIEW_PAGE } from "../roles/monitoring";
import { prometheusUrl } from "./monitoring";
import type { LocalCluster } from "./cluster";

export const CHROMIUM = "/usr/bin/chromium";

type PageCluster = Pick<LocalCluster, "spec" | "hosts" | "pki" | "secrets">;

/** What the page shows, read from its data-* attributes and cells. */
export interface Overview {
  status: number;
  cluster: string;
  summary: Record<"leader" | "alerts-firing" | "targets-down" | "backup-age" | "cert-expiry", string>;
  members: { name: string; role: string; postgres: string; lag: string }[];
  etcd: { name: string; state: string }[];
  balancers: { name: string; writer: string[] }[];
  backups: string[];
  alerts: { name: string; state: string }[];
  text: string;
}

// What the page shows, read in the browser. A string, not a function: tsx's transform would add
// helpers to a function that do not exist in the page.
const READ_PAGE = `(() => {
  const all = (sel) => Array.from(document.querySelectorAll(sel));
  const attr = (e, a) => e.getAttribute(a) ?? "";
  const cell = (e, sel) => (e.querySelector(sel)?.textContent ?? "").trim();
  const summary = {};
  for (const e of all("[data-summary]")) summary[attr(e, "data-summary")] = (e.textContent ?? "").trim();
  return {
    cluster: (document.querySelector("[data-cluster]")?.textContent ?? "").trim(),
    summary,
    members: all("tr[data-member]").map((e) => ({ name: attr(e, "data-member"), role: attr(e, "data-role"), postgres: cell(e, "[data-cell=postgres]"), lag: cell(e, "[data-cell=lag]") })),
    etcd: all("tr[data-etcd]").map((e) => ({ name: attr(e, "data-etcd"), state: attr(e, "data-state") })),
    balancers: all("tr[data-balancer]").map((e) => ({ name: attr(e, "data-balancer"), writer: attr(e, "data-writer").split(" ").filter(Boolean) })),
    backups: all("tr[data-backup]").map((e) => attr(e, "data-backup")),
    alerts: all("tr[data-alert]").map((e) => ({ name: attr(e, "data-alert"), state: attr(e, "data-alertstate") })),
    text: document.body ? document.body.innerText : "",
  };
})()`;

export function overviewUrl(c: Pick<LocalCluster, "spec" | "hosts">): string | undefined {
  const base = prometheusUrl(c);
  return base && `${base}/consoles/${OVERVIEW_PAGE}`;
}

/** sha256 of the server's SubjectPublicKeyInfo, base64: Chromium's --ignore-certificate-errors-spki-list form. */
export function serverSpkiPin(c: Pick<LocalCluster, "pki">, url: string): Promise<string> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: u.hostname, port: Number(u.port), ca: c.pki.ca, timeout: 5000 }, () => {
      // rejectUnauthorized is on (the default): reaching here means the CA vouched for this key.
      const der = s.getPeerX509Certificate()!.publicKey.export({ type: "spki", format: "der" });
      s.end();
      resolve(createHash("sha256").update(der).digest("base64"));
    });
    s.on("timeout", () => s.destroy(new Error(`${u.host}: no TLS answer in 5 s`)));
    s.on("error", (e) => reject(new Error(`${u.host}: ${e.message}`)));
  });
}

/**
 * Renders the page in headless chromium; `screenshot`: also write a PNG of the whole page there.
 * `spkiPin` replaces the verified server key's pin (a test shows the browser then refuses).
 */
export async function renderOverview(c: PageCluster, opts: { screenshot?: string; width?: number; spkiPin?: string } = {}): Promise<Overview> {
  const url = overviewUrl(c);
  if (!url) throw new Error("monitoring.enabled is false: there is no overview page");
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium (Debian 12's package)`);
  const pin = opts.spkiPin ?? (await serverSpkiPin(c, url));
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "pgcluster-chromium-"));
  let browser: Awaited<ReturnType<typeof puppeteer.launch>> | undefined;
  try {
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      userDataDir: profile,
      // The DevTools protocol over a pipe, not a TCP port another local user could attach to.
      pipe: true,
      // Chromium refuses to run as root with its sandbox (the tests run as root).
      args: [...(process.getuid?.() === 0 ? ["--no-sandbox"] : []), `--ignore-certificate-errors-spki-list=${pin}`, "--no-first-run", "--disable-gpu"],
    });
    const page = await browser.newPage();
    await page.setViewport({ width: opts.width ?? 1280, height: 900 });
    await page.authenticate({ username: METRICS_USER, password: c.secrets.metricsPassword });
    const res = await page.goto(url, { waitUntil: "load", timeout: 30_000 });
    const status = res?.status() ?? 0;
    const shown = (await page.evaluate(READ_PAGE)) as Omit<Overview, "status">;
    if (opts.screenshot) await page.screenshot({ path: opts.screenshot as `${string}.png`, fullPage: true });
    return { status, ...shown };
  } finally {
    await browser?.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}
