// Everything the local tools need for a stack, without the Pulumi CLI: the spec (same config
// code as infra), the state (secrets, PKI, SSH key), the compiled plan and the SSH targets.
import * as fs from "fs";
import * as https from "https";
import * as path from "path";
import { readStackFile, specFromStackFile } from "../model/stackFile";
import { ConfigError, type ClusterSpec } from "../model/config";
import { PROJECT_ROOT } from "../model/stackFile";
import { asStandbyOf, standbyTrustOf, type StandbyTrust } from "../roles/standby";
import { compile } from "../roles/compile";
import type { Host, Pki, Plan, Secrets } from "../roles/types";
import { ports, users } from "../model/identities";
import { shq } from "../roles/quote";
import { ensureSecrets, ensureLocalPki, ensureSshKey, stateDir } from "./state";
import { mergeKnownHosts, ssh, writeKnownHosts, type SshConfig, type SshTarget } from "./ssh";

export interface LocalCluster {
  spec: ClusterSpec;
  hosts: Host[];
  secrets: Secrets;
  pki: Pki;
  plan: Plan;
  targets: Record<string, SshTarget>;
  ssh: SshConfig;
  publicKey: string;
  stateDir: string;
}

/** The stacks whose hosts are this machine's local hosts (`npm run local` builds them, with keys it generated). */
export const LOCAL_STACKS = ["local", "local-standby"] as const;
export function onLocalHosts(stack: string): boolean {
  return (LOCAL_STACKS as readonly string[]).includes(stack);
}

/** `overrides`: config values laid over the stack file's (top-level keys, objects merged). */
export function loadSpec(stack: string, overrides: Record<string, unknown> = {}): ClusterSpec {
  const sf = readStackFile(stack);
  for (const [k, v] of Object.entries(overrides)) {
    const cur = sf.values[k];
    sf.values[k] = v && typeof v === "object" && !Array.isArray(v) && cur && typeof cur === "object" ? { ...(cur as object), ...(v as object) } : v;
  }
  return specFromStackFile(sf);
}

/**
 * How the stack's host keys are known, with its known_hosts file ready, before any connection:
 * the local stack pins the keys pgcluster generated (`npm run local` writes them); another static
 * stack pins hosts[].hostKey, or records the first key seen (trust-on-first-use) in
 * <state>/known_hosts.
 */
export function hostKeyTrust(spec: ClusterSpec, dir: string): Pick<SshConfig, "knownHostsFile" | "hostKeys"> {
  const knownHostsFile = path.join(dir, "known_hosts");
  if (onLocalHosts(spec.stack)) return { knownHostsFile, hostKeys: "generated" };
  // The config already refused "pinned" without a valid key for every host.
  const pinned = spec.hosts.filter((h) => h.hostKey !== undefined).map((h) => ({ address: h.address!, port: h.sshPort, key: h.hostKey! }));
  if (spec.ssh.hostKeys === "pinned") {
    writeKnownHosts(knownHostsFile, pinned);
    return { knownHostsFile, hostKeys: "pinned" };
  }
  mergeKnownHosts(knownHostsFile, pinned);
  return { knownHostsFile, hostKeys: "trust-on-first-use" };
}

export async function loadCluster(stack: string, overrides: Record<string, unknown> = {}): Promise<LocalCluster> {
  const spec = loadSpec(stack, overrides);
  if (spec.provider !== "static") throw new Error(`stack ${stack} uses provider ${spec.provider}: its hosts exist only after 'pulumi up -s ${stack}'; the local tools drive static inventories`);
  // Host keys first: a stack that cannot verify its hosts stops before anything is generated.
  const dir = stateDir(stack);
  const trust = hostKeyTrust(spec, dir);
  const hosts: Host[] = spec.hosts.map((h) => ({ ...h, address: h.address! }));
  const primary = await primaryTrust(spec);
  const own = { secrets: ensureSecrets(spec), pki: await ensureLocalPki(spec, Object.fromEntries(hosts.map((h) => [h.name, h.address]))) };
  const { secrets, pki } = primary ? asStandbyOf(own.pki, own.secrets, primary) : own;
  const key = ensureSshKey(spec);
  return {
    spec, hosts, secrets, pki,
    plan: compile(spec, hosts, pki, secrets),
    targets: Object.fromEntries(hosts.map((h) => [h.name, { name: h.name, address: h.address, user: h.sshUser, port: h.sshPort }])),
    ssh: { privateKeyFile: key.privateKeyFile, ...trust },
    publicKey: key.publicKey,
    stateDir: dir,
  };
}

/**
 * A standby stack's trust of its primary cluster (roles/standby.ts), from the primary stack's
 * local state: that stack must have been applied from this checkout first.
 */
async function primaryTrust(spec: ClusterSpec): Promise<StandbyTrust | undefined> {
  if (!spec.standby) return undefined;
  const primary = spec.standby.primaryStack;
  const held = ["secrets.json", "pki.json"].filter((f) => fs.existsSync(path.join(PROJECT_ROOT, ".pgcluster", primary, f)));
  if (primary.includes("/") || held.length < 2)
    throw new ConfigError([`standby.primaryStack: the local tools read the primary stack's state from .pgcluster/${primary}/, which ${primary.includes("/") ? "cannot hold a fully qualified stack name (use the stack's own name here)" : "is not there: apply that stack from this checkout first (npm run apply -- --stack " + primary + ")"}`], `stack ${spec.stack}`);
  const p = await loadCluster(primary);
  if (p.spec.standby) throw new ConfigError([`standby.primaryStack: ${primary} is itself a standby cluster; name the primary cluster's stack`], `stack ${spec.stack}`);
  if (!spec.standby.promoted && !p.spec.standbyClusters.some((s) => s.clusterName === spec.clusterName))
    throw new ConfigError([`standby.primaryStack: ${primary} does not list this cluster in its standbyClusters, so it keeps no replication slot for it and its balancers do not admit it: add { clusterName: ${spec.clusterName}, cidrs: [...] } there and apply it first`], `stack ${spec.stack}`);
  const repo = spec.standby.repository;
  const backupHost = p.hosts.find((h) => h.roles.includes("backup"));
  if (repo && !spec.standby.promoted && !(p.spec.backup.enabled && backupHost?.name === repo.name && backupHost.address === repo.host && repo.stanza === p.spec.clusterName))
    throw new ConfigError([`standby.repository: ${primary} ${p.spec.backup.enabled && backupHost ? `keeps its repository on ${backupHost.name} (${backupHost.address}), stanza ${p.spec.clusterName}` : "has no backup host (backup.enabled)"}, not ${repo.name} (${repo.host}), stanza ${repo.stanza}: give those values, or remove standby.repository (streaming only)`], `stack ${spec.stack}`);
  return standbyTrustOf(p.pki, p.secrets);
}

/** What clients dial: the balancers' floating address, or the first balancer when there is none. */
export function clientAddress(c: Pick<LocalCluster, "spec" | "hosts">): string {
  return c.spec.network.floatingAddress ?? c.hosts.find((h) => h.roles.includes("balancer"))!.address;
}

export function connectionUrls(c: LocalCluster, mask = true): Record<string, string> {
  const entry = clientAddress(c);
  const pw = mask ? "****" : encodeURIComponent(c.secrets.appPassword);
  const { appUser, database } = c.spec.postgresql;
  const ca = path.join(c.stateDir, "ca.crt");
  // Every part a URL cannot hold literally is encoded (names are validated too, but a URL is its own format).
  const url = (port: number) => `postgresql://${encodeURIComponent(appUser)}:${pw}@${entry}:${port}/${encodeURIComponent(database)}?sslmode=verify-full&sslrootcert=${ca.split("/").map(encodeURIComponent).join("/")}`;
  return {
    DATABASE_URL_PRIMARY: url(ports.writer), DATABASE_URL_REPLICA: url(ports.readers),
    DATABASE_URL_PRIMARY_DIRECT: url(ports.writerDirect), DATABASE_URL_REPLICA_DIRECT: url(ports.readersDirect),
  };
}

/**
 * HAProxy's stats pages (user users.haproxyStats, password statsPassword): the floating address's
 * first when there is one (whichever balancer holds it), then every balancer's.
 */
export function statsUrls(c: LocalCluster): string[] {
  const balancers = c.hosts.filter((h) => h.roles.includes("balancer")).map((h) => h.address);
  const floating = c.spec.network.floatingAddress;
  return [...(floating ? [floating] : []), ...balancers].map((a) => `http://${a}:${ports.stats}/`);
}

/**
 * Writes <state>/stats.curl (0600), a curl config file holding the stats login (`curl -K <file>
 * <url>`): the password stays out of argv, shell history and the process list. curl's config
 * syntax: a double-quoted value with '\\' and '"' escaped.
 */
export function writeStatsCurlConfig(c: LocalCluster): string {
  return writeCurlLogin(c, "stats.curl", users.haproxyStats, c.secrets.statsPassword, "the stats password");
}

/** <state>/<name> (0600): `user:password` as a curl config file (double-quoted, '\\' and '"' escaped). */
export function writeCurlLogin(c: Pick<LocalCluster, "stateDir">, name: string, user: string, password: string, what: string): string {
  const file = path.join(c.stateDir, name);
  const login = `${user}:${password}`;
  if (/[\u0000-\u001f\u007f]/.test(login)) throw new Error(`${what} holds a control character: it cannot be written to a curl config file`);
  fs.writeFileSync(file, `user = "${login.replace(/[\\"]/g, (ch) => `\\${ch}`)}"\n`, { mode: 0o600 });
  fs.chmodSync(file, 0o600); // an older file keeps its mode otherwise
  return file;
}

/**
 * Writes <state>/env (0600): the real URLs and the superuser password, for `source`. Values are
 * single-quoted for sh (a quote inside a password or a name cannot end the word).
 */
export function writeEnvFile(c: LocalCluster): string {
  const file = path.join(c.stateDir, "env");
  const vars: [string, string][] = [
    ...Object.entries(connectionUrls(c, false)),
    ["PGCLUSTER_SUPERUSER", users.superuser],
    ["PGCLUSTER_SUPERUSER_PASSWORD", c.secrets.superuserPassword],
  ];
  fs.writeFileSync(file, vars.map(([k, v]) => `export ${k}=${shq(v, k)}\n`).join(""), { mode: 0o600 });
  fs.chmodSync(file, 0o600); // an older file keeps its mode otherwise
  return file;
}

export interface Member { name: string; role: string; state: string; host: string; timeline?: number; lag?: number | string }

/** GET `path` of Patroni's REST API on `address` over https, verified against the cluster CA; the body of a 200. */
export function patroniGet(c: Pick<LocalCluster, "pki">, address: string, path: string): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const req = https.get({ host: address, port: ports.patroni, path, ca: c.pki.ca, timeout: 2000 }, (res) => {
      let b = "";
      res.on("data", (d) => (b += d));
      res.on("end", () => (res.statusCode === 200 ? resolve(b) : reject(new Error(`HTTP ${res.statusCode}`))));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
  });
}

/** Patroni's view of the cluster, asked over https (verified against the cluster CA) of any member that answers. */
export async function patroniCluster(c: LocalCluster): Promise<Member[]> {
  for (const h of c.hosts.filter((x) => x.roles.includes("postgres") && !x.leaving)) {
    try {
      const body = await patroniGet(c, h.address, "/cluster");
      return (JSON.parse(body).members as Member[]).map((m) => ({ name: m.name, role: m.role, state: m.state, host: m.host, timeline: m.timeline, lag: m.lag }));
    } catch { /* next member */ }
  }
  throw new Error("no Patroni member answered on :8008");
}

/**
 * Which balancers carry the floating address now, asked over SSH (what `npm run status` shows;
 * the chaos tests read it from the host instead): "holds", "free", or "unknown" for one that
 * could not be asked (never counted as not holding it).
 */
export async function floatingAddressHolders(c: Pick<LocalCluster, "spec" | "hosts" | "ssh" | "targets">): Promise<Record<string, "holds" | "free" | "unknown">> {
  const floating = c.spec.network.floatingAddress;
  if (!floating) throw new Error(`stack ${c.spec.stack} has no network.floatingAddress`);
  const balancers = c.hosts.filter((h) => h.roles.includes("balancer")).map((h) => h.name);
  const states = await Promise.all(balancers.map(async (b) => {
    const r = await ssh(c.ssh, c.targets[b], ["ip", "-o", "-4", "addr", "show", "to", `${floating}/32`].map((a) => shq(a)).join(" "), "", 10_000, 3);
    return [b, r.code !== 0 ? "unknown" : r.out.includes(` ${floating}/32 `) ? "holds" : "free"] as const;
  }));
  return Object.fromEntries(states);
}
