// The Debian mirror the local hosts use: the stack's apt.mirror when set, otherwise the one this
// machine's own apt sources name (a company mirror works without configuring anything). No
// mirror host is written in the code. Packages still reach the nodes only through the apt proxy.
import * as fs from "fs";
import * as path from "path";

/** The Debian release the local hosts run. */
export const SUITE = "bookworm";

/** One apt source entry (a one-line "deb ..." line, or a deb822 stanza). */
export interface AptSource {
  file: string;
  types: string[];
  uris: string[];
  suites: string[];
  components: string[];
  enabled: boolean;
}

export interface Mirror {
  /** http://host/path (no trailing slash), as sources.list names it. */
  url: string;
  scheme: "http" | "https";
  /** host/path, how apt-cacher-ng names a repository. */
  hostPath: string;
}

export interface DebianMirrors {
  /** Serves bookworm (and bookworm-updates) main. */
  main: Mirror;
  /** Serves bookworm-security main; absent when nothing names one. */
  security?: Mirror;
  /** Where the choice came from, for the log. */
  source: string;
}

/** One-line format: `deb [opt=val ...] URI SUITE [COMPONENT ...]`; comments and deb-src ignored by the caller. */
export function parseOneLineSources(text: string, file: string): AptSource[] {
  const out: AptSource[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.replace(/#.*/, "").trim();
    if (!line) continue;
    const m = /^(deb|deb-src)\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s*(.*)$/.exec(line);
    if (!m) continue;
    const options = Object.fromEntries((m[2] ?? "").trim().split(/\s+/).filter(Boolean).map((o) => o.split("=", 2)));
    out.push({
      file, types: [m[1]], uris: [m[3]], suites: [m[4]], components: m[5].split(/\s+/).filter(Boolean),
      enabled: (options.enabled ?? "yes") !== "no",
    });
  }
  return out;
}

/** deb822 format (*.sources): stanzas of `Field: value`, continuation lines indented, '#' comments. */
export function parseDeb822Sources(text: string, file: string): AptSource[] {
  const out: AptSource[] = [];
  for (const stanza of text.split(/\n\s*\n/)) {
    const fields: Record<string, string> = {};
    let last: string | undefined;
    for (const line of stanza.split("\n")) {
      if (/^\s*#/.test(line) || !line.trim()) continue;
      if (/^\s/.test(line) && last) { fields[last] += ` ${line.trim()}`; continue; }
      const m = /^([A-Za-z0-9-]+):\s*(.*)$/.exec(line);
      if (!m) continue;
      last = m[1].toLowerCase();
      fields[last] = m[2].trim();
    }
    if (!fields.types || !fields.uris) continue;
    const words = (k: string) => (fields[k] ?? "").split(/\s+/).filter(Boolean);
    out.push({
      file, types: words("types"), uris: words("uris"), suites: words("suites"), components: words("components"),
      enabled: !/^(no|false|0)$/i.test(fields.enabled ?? "yes"),
    });
  }
  return out;
}

/**
 * This machine's apt sources: sources.list, and in sources.list.d the *.list and *.sources files
 * (apt ignores any other name, e.g. "foo.list.disabled", and so does this).
 */
export function readAptSources(etcApt = "/etc/apt"): AptSource[] {
  const out: AptSource[] = [];
  const main = path.join(etcApt, "sources.list");
  if (fs.existsSync(main)) out.push(...parseOneLineSources(fs.readFileSync(main, "utf8"), main));
  const dir = path.join(etcApt, "sources.list.d");
  const files = fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [];
  for (const f of files) {
    const file = path.join(dir, f);
    // apt's own rule for these names: letters, digits, '_', '-', '.' only.
    if (!/^[A-Za-z0-9_.-]+$/.test(f) || !fs.statSync(file).isFile()) continue;
    if (f.endsWith(".list")) out.push(...parseOneLineSources(fs.readFileSync(file, "utf8"), file));
    else if (f.endsWith(".sources")) out.push(...parseDeb822Sources(fs.readFileSync(file, "utf8"), file));
  }
  return out;
}

/**
 * A mirror URL in canonical form. The URL parser percent-encodes what a sources.list line or
 * apt-cacher-ng's config could not hold (blanks, line breaks), so the result is one inert token.
 */
export function parseMirror(url: string, what: string): Mirror {
  let u: URL;
  try { u = new URL(url); } catch { throw new Error(`${what}: "${url}" is not a URL`); }
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error(`${what}: ${u.protocol} mirrors are not supported; use an http:// or https:// mirror`);
  if (u.username || u.password || u.search || u.hash) throw new Error(`${what}: a mirror URL with credentials, a query or a fragment is not supported`);
  const hostPath = `${u.host}${u.pathname.replace(/\/+$/, "")}`;
  return { url: `${u.protocol}//${hostPath}`, scheme: u.protocol === "http:" ? "http" : "https", hostPath };
}

function serving(sources: AptSource[], suite: string): AptSource | undefined {
  return sources.find((s) => s.enabled && s.types.includes("deb") && s.suites.includes(suite) && s.components.includes("main")
    && s.uris.some((u) => /^https?:\/\//.test(u)));
}

function firstHttp(s: AptSource): string {
  return s.uris.find((u) => /^https?:\/\//.test(u))!;
}

/**
 * The mirrors for the local hosts: `configured` (the stack's apt.mirror) for bookworm, else the
 * entry of this machine's sources that serves bookworm main; bookworm-security from the entry
 * that serves it. Throws, saying what to do, when neither names a Debian mirror.
 */
export function debianMirrors(configured: string | undefined, sources: AptSource[]): DebianMirrors {
  const sec = serving(sources, `${SUITE}-security`);
  const security = sec ? parseMirror(firstHttp(sec), `${sec.file}`) : undefined;
  if (configured) return { main: parseMirror(configured, "pgcluster:apt.mirror"), security, source: "pgcluster:apt.mirror" };
  const main = serving(sources, SUITE);
  if (!main)
    throw new Error(`no Debian mirror for the local hosts: this machine's apt sources (/etc/apt/sources.list, /etc/apt/sources.list.d/*.list, *.sources) have no enabled "deb" entry for ${SUITE} main over http(s); set pgcluster:apt.mirror in the stack file to your Debian mirror's URL`);
  return { main: parseMirror(firstHttp(main), main.file), security, source: main.file };
}

/** What debootstrap fetches from: the mirror, through apt-cacher-ng on `proxy` (host:port). */
export function viaProxy(m: Mirror, proxy: string): string {
  // apt-cacher-ng's way to fetch an https repository for a plain-http client: "HTTPS///host/path".
  return m.scheme === "http" ? `http://${proxy}/${m.hostPath}` : `http://${proxy}/HTTPS///${m.hostPath}`;
}

/** The nodes' sources.list (they reach the mirror through the apt proxy the stack config names). */
export function nodeSourcesList(m: DebianMirrors): string {
  // apt's proxy speaks plain http to apt-cacher-ng; https repositories go the same "HTTPS///" way.
  const url = (x: Mirror) => (x.scheme === "http" ? x.url : `http://HTTPS///${x.hostPath}`);
  return [
    `deb ${url(m.main)} ${SUITE} main`,
    `deb ${url(m.main)} ${SUITE}-updates main`,
    ...(m.security ? [`deb ${url(m.security)} ${SUITE}-security main`] : []),
    "",
  ].join("\n");
}

/**
 * apt-cacher-ng's repository merging: requests for any known Debian mirror, and for the chosen
 * one, share one cache ("debrep", "secdeb": names kept, so is the cache) and go to the chosen one.
 */
export function aptCacherRemaps(m: DebianMirrors): string[] {
  const remap = (name: string, merge: string, x: Mirror | undefined) =>
    x?.scheme === "http" ? `Remap-${name}: ${merge} ${x.hostPath} ; ${x.hostPath}` : undefined;
  return [
    remap("debrep", "file:deb_mirror*.gz /debian", m.main) ?? "Remap-debrep: file:deb_mirror*.gz /debian ; file:backends_debian",
    remap("secdeb", "/debian-security", m.security),
  ].filter((l): l is string => !!l);
}
