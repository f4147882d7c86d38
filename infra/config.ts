// Stack config -> ClusterSpec. Pure: no Pulumi, no I/O, so the Pulumi program and the local
// driver read a stack file through exactly the same rules and the same error messages.
import { z } from "zod";
import { cidrsOverlap, ipInCidr, parseCidr, isIPv4 } from "./cidr";
import { CLIENT_CERTS } from "./certs";

export const PROJECT = "pgcluster";

export type Role = "etcd" | "postgres" | "balancer";
export const SECRET_KEYS = [
  "superuserPassword",
  "replicationPassword",
  "rewindPassword",
  "pgbouncerAuthPassword",
  "restApiPassword",
  "appPassword",
] as const;
export type SecretName = (typeof SECRET_KEYS)[number];

/** Parameters Patroni (or pgcluster itself) sets; a hand-set value would fight it. */
export const PATRONI_OWNED_PARAMETERS = [
  "port", "listen_addresses", "data_directory", "config_file", "hba_file", "ident_file",
  "cluster_name", "hot_standby", "primary_conninfo", "primary_slot_name", "restore_command",
  "recovery_target", "recovery_target_lsn", "recovery_target_name", "recovery_target_time",
  "recovery_target_timeline", "recovery_target_xid", "synchronous_standby_names",
  "ssl", "ssl_cert_file", "ssl_key_file", "ssl_ca_file", "password_encryption", "wal_log_hints",
];

const name = z.string().regex(/^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$/, "must be lower-case letters, digits and '-', starting with a letter (a GCP and DNS name)");
const cidr = z.string().refine((s) => parseCidr(s) !== undefined, "is not an IPv4 CIDR like 10.20.0.0/24");
const port = z.number().int().min(1).max(65535);
const positive = z.number().int().positive();

const hostSchema = z.strictObject({
  name,
  address: z.string().refine(isIPv4, "is not an IPv4 address").optional(),
  roles: z.array(z.enum(["etcd", "postgres", "balancer"])).min(1),
  sshUser: z.string().min(1).optional(),
  sshPort: port.optional(),
  dataDevice: z.string().startsWith("/dev/").optional(),
  /** The host's SSH public host key ("ssh-ed25519 AAAA…"): every connection verifies it. */
  hostKey: z.string().optional(),
});

const gcpSchema = z.strictObject({
  project: z.string().min(1),
  region: z.string().regex(/^[a-z]+-[a-z]+\d+$/, "is not a GCP region like europe-west1"),
  zones: z.array(z.string()).min(1),
  dbNodes: positive.default(3),
  witnessNodes: z.number().int().min(0).default(0),
  balancerNodes: positive.default(1),
  dbMachineType: z.string().default("e2-standard-2"),
  witnessMachineType: z.string().default("e2-micro"),
  balancerMachineType: z.string().default("e2-small"),
  bastionMachineType: z.string().default("e2-micro"),
  image: z.string().default("debian-cloud/debian-12"),
  bootDiskGb: positive.default(20),
  dataDiskGb: positive.default(100),
  dataDiskType: z.enum(["pd-ssd", "pd-balanced", "pd-standard"]).default("pd-ssd"),
  bastionCidr: cidr.default("10.250.0.0/28"),
  sshSourceRanges: z.array(cidr).min(1),
});

const spec = z.strictObject({
  environment: z.string().min(1).optional(),
  clusterName: name,
  provider: z.enum(["gcp", "static"]),
  gcp: gcpSchema.optional(),
  hosts: z.array(hostSchema).optional(),
  network: z.strictObject({
    cidr,
    clientCidrs: z.array(cidr).min(1),
    adminCidrs: z.array(cidr).default([]),
  }),
  ssh: z.strictObject({
    user: z.string().min(1).default("root"),
    port: port.default(22),
    publicKey: z.string().startsWith("ssh-").optional(),
    privateKeyFile: z.string().min(1).optional(),
    /**
     * How host keys are known. "pinned": static hosts list hosts[].hostKey, GCP instances'
     * keys are read from their guest attributes. "trust-on-first-use": the first key seen is
     * recorded (Pulumi state / .pgcluster/<stack>/known_hosts) and every later one must match.
     */
    hostKeys: z.enum(["pinned", "trust-on-first-use"]).default("pinned"),
  }).prefault({}),
  apt: z.strictObject({
    proxy: z.url().optional(),
    /** Debian mirror for the local hosts' base root; default: this machine's own apt sources. */
    mirror: z.url().optional(),
  }).prefault({}),
  /** nftables on every host: inbound default drop, per port and source. */
  firewall: z.strictObject({ enabled: z.boolean().default(true) }).prefault({}),
  patroni: z.strictObject({
    ttl: positive.default(10),
    loopWait: positive.default(2),
    retryTimeout: positive.default(3),
    synchronousMode: z.boolean().default(false),
    failsafeMode: z.boolean().default(true),
    maximumLagOnFailover: z.number().int().min(0).default(1048576),
    watchdog: z.enum(["off", "automatic", "required"]).default("automatic"),
  }).prefault({}),
  postgresql: z.strictObject({
    database: name.default("app"),
    appUser: name.default("app"),
    parameters: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).default({}),
  }).prefault({}),
  pgbouncer: z.strictObject({
    poolMode: z.enum(["transaction", "session", "statement"]).default("transaction"),
    defaultPoolSize: z.number().int().default(20),
    reservePoolSize: z.number().int().default(5),
    maxClientConn: z.number().int().default(1000),
  }).prefault({}),
  haproxy: z.strictObject({
    maxReplicaLagBytes: z.number().int().min(0).default(16777216),
    checkIntervalMs: positive.default(1000),
    fall: positive.default(2),
    rise: positive.default(1),
    maxConn: positive.default(2000),
  }).prefault({}),
  tls: z.strictObject({
    caValidityHours: positive.default(87600),
    certValidityHours: positive.default(8760),
    earlyRenewalHours: z.number().int().min(0).default(720),
    /** Change to re-issue every node and client certificate now. */
    rotation: z.string().default("0"),
    /** Trusted CA generations, the signing one first. A CA rotation goes [1] -> [1,2] -> [2,1] -> [2]. */
    caGenerations: z.array(z.string().regex(/^[a-z0-9-]{1,20}$/, "must be a short lower-case name like 2 or 2026a")).min(1).max(2).default(["1"]),
  }).prefault({}),
  secrets: z.strictObject({
    generate: z.boolean().default(true),
    rotation: z.string().default("0"),
    rotate: z.partialRecord(z.enum(SECRET_KEYS), z.string()).default({}),
  }).prefault({}),
  // Secret values only ever appear here as "present": the values themselves stay Pulumi secrets.
  ...Object.fromEntries(SECRET_KEYS.map((k) => [k, z.string().min(1).optional()])),
  sshPrivateKey: z.string().min(1).optional(),
});

type RawSpec = z.infer<typeof spec>;

export interface HostSpec {
  name: string;
  /** Known for static hosts; for GCP the instance's internal IP, known after creation. */
  address?: string;
  roles: Role[];
  sshUser: string;
  sshPort: number;
  zone?: string;
  dataDevice?: string;
  /** Pinned SSH host key (static inventory); GCP instances' keys come from guest attributes. */
  hostKey?: string;
  kind: "db" | "witness" | "balancer" | "static";
}

export interface ClusterSpec {
  stack: string;
  environment: string;
  clusterName: string;
  provider: "gcp" | "static";
  gcp?: z.infer<typeof gcpSchema>;
  hosts: HostSpec[];
  network: RawSpec["network"];
  ssh: RawSpec["ssh"];
  apt: RawSpec["apt"];
  firewall: RawSpec["firewall"];
  patroni: RawSpec["patroni"];
  postgresql: RawSpec["postgresql"];
  pgbouncer: RawSpec["pgbouncer"];
  haproxy: RawSpec["haproxy"];
  tls: RawSpec["tls"];
  secrets: RawSpec["secrets"] & { provided: SecretName[] };
}

export class ConfigError extends Error {
  constructor(readonly problems: string[], source: string) {
    super(`Invalid stack config (${source}):\n` + problems.map((p) => `  - ${p}`).join("\n"));
    this.name = "ConfigError";
  }
}

/** `pgcluster:patroni.ttl`, `pgcluster:hosts[1].address` */
export function configKey(path: PropertyKey[]): string {
  let out = `${PROJECT}:`;
  path.forEach((p, i) => {
    if (typeof p === "number") out += `[${p}]`;
    else out += (i === 0 ? "" : ".") + String(p);
  });
  return out;
}

function closest(word: string, candidates: string[]): string | undefined {
  const dist = (a: string, b: string) => {
    const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
    for (let j = 1; j <= b.length; j++) d[0][j] = j;
    for (let i = 1; i <= a.length; i++)
      for (let j = 1; j <= b.length; j++)
        d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1].toLowerCase() === b[j - 1].toLowerCase() ? 0 : 1));
    return d[a.length][b.length];
  };
  const best = candidates.map((c) => [c, dist(word, c)] as const).sort((a, b) => a[1] - b[1])[0];
  return best && best[1] <= Math.max(2, Math.floor(word.length / 3)) ? best[0] : undefined;
}

function knownKeysAt(path: PropertyKey[]): string[] {
  // Unwrap optional/default/prefault layers to reach the object that holds the keys.
  const unwrap = (t: any): any => (t?.def?.innerType ? unwrap(t.def.innerType) : t);
  let s: any = unwrap(spec);
  for (const p of path) {
    if (s instanceof z.ZodArray) s = unwrap((s as any).def.element);
    else if (s instanceof z.ZodObject) s = unwrap((s as any).shape[p as string]);
    if (!s) return [];
  }
  return s instanceof z.ZodObject ? Object.keys((s as any).shape) : [];
}

function describeIssue(issue: z.core.$ZodIssue): string[] {
  if (issue.code === "unrecognized_keys") {
    return issue.keys.map((k) => {
      const known = knownKeysAt(issue.path);
      const guess = closest(k, known);
      return `${configKey([...issue.path, k])}: unknown key${guess ? ` — did you mean "${guess}"?` : ""} Known keys here: ${known.join(", ")}.`;
    });
  }
  return [`${configKey(issue.path)}: ${issue.message}`];
}

export interface ParseContext {
  stack: string;
  /** Keys (without the project prefix) that the stack holds as secrets. */
  secretKeys: ReadonlySet<string>;
  /** Where the values came from, for the error message. */
  source: string;
}

/**
 * Validate raw stack config (keys without the `pgcluster:` prefix) and derive the cluster.
 * Throws ConfigError listing every problem with the key to fix; never returns a half-valid spec.
 */
export function parseClusterSpec(raw: Record<string, unknown>, ctx: ParseContext): ClusterSpec {
  const result = spec.safeParse(raw);
  if (!result.success) throw new ConfigError(result.error.issues.flatMap(describeIssue), ctx.source);
  const c = result.data;
  const problems: string[] = [];
  const fail = (path: PropertyKey[], msg: string) => problems.push(`${configKey(path)}: ${msg}`);
  const environment = c.environment ?? ctx.stack;

  // Secrets: present ones must be Pulumi secrets; absent ones need generation switched on.
  const provided = SECRET_KEYS.filter((k) => (c as Record<string, unknown>)[k] !== undefined);
  for (const k of [...provided, ...(c.sshPrivateKey ? ["sshPrivateKey"] : [])]) {
    if (!ctx.secretKeys.has(k)) fail([k], `is stored in plain text; store it encrypted: pulumi config set --secret ${PROJECT}:${k} <value>`);
  }
  if (!c.secrets.generate) {
    for (const k of SECRET_KEYS) {
      if (!provided.includes(k)) fail([k], `is required because ${PROJECT}:secrets.generate is false; set it: pulumi config set --secret ${PROJECT}:${k} <value> (or set secrets.generate: true)`);
    }
  }

  // Patroni timing: Patroni needs loop_wait + 2*retry_timeout <= ttl to avoid losing the leader
  // key while retrying a DCS call; below 10 s the leader key expires on ordinary hiccups.
  const p = c.patroni;
  if (p.ttl < 10) fail(["patroni", "ttl"], `is ${p.ttl}; it must be at least 10 (seconds)`);
  if (p.loopWait + 2 * p.retryTimeout > p.ttl)
    fail(["patroni"], `loopWait + 2·retryTimeout = ${p.loopWait} + 2·${p.retryTimeout} = ${p.loopWait + 2 * p.retryTimeout} exceeds ttl ${p.ttl}; lower loopWait/retryTimeout or raise ttl`);

  for (const param of Object.keys(c.postgresql.parameters)) {
    if (PATRONI_OWNED_PARAMETERS.includes(param))
      fail(["postgresql", "parameters", param], `is managed by Patroni/pgcluster and cannot be set by hand; remove it`);
  }
  const pb = c.pgbouncer;
  for (const k of ["defaultPoolSize", "reservePoolSize", "maxClientConn"] as const) {
    if (pb[k] <= 0) fail(["pgbouncer", k], `is ${pb[k]}; it must be greater than 0`);
  }
  if (pb.defaultPoolSize > pb.maxClientConn) fail(["pgbouncer", "defaultPoolSize"], `(${pb.defaultPoolSize}) exceeds maxClientConn (${pb.maxClientConn})`);

  for (const [i, r] of [...c.network.clientCidrs, ...c.network.adminCidrs].entries()) {
    if (parseCidr(r)?.prefix === 0) fail(["network", i < c.network.clientCidrs.length ? "clientCidrs" : "adminCidrs"], `contains ${r}: opening database ports to the whole internet is refused; list your clients' ranges`);
  }
  if (new Set(c.tls.caGenerations).size !== c.tls.caGenerations.length) fail(["tls", "caGenerations"], `lists a generation twice`);
  if (c.tls.earlyRenewalHours >= c.tls.certValidityHours)
    fail(["tls", "earlyRenewalHours"], `(${c.tls.earlyRenewalHours}) must be less than certValidityHours (${c.tls.certValidityHours})`);

  const hosts: HostSpec[] = [];
  if (c.provider === "gcp") {
    if (!c.gcp) fail(["gcp"], `is required when provider is gcp (project, region, zones, sshSourceRanges)`);
    if (c.hosts) fail(["hosts"], `is only for provider static; with provider gcp the hosts are created from ${PROJECT}:gcp`);
    if (!c.ssh.publicKey) fail(["ssh", "publicKey"], `is required for provider gcp (it is put on the instances); set it to your ssh-ed25519 public key`);
    if (c.gcp) {
      const g = c.gcp;
      g.zones.forEach((zn, i) => {
        if (!zn.startsWith(`${g.region}-`)) fail(["gcp", "zones", i], `"${zn}" is not in region ${g.region}; use zones like ${g.region}-b`);
      });
      if (new Set(g.zones).size !== g.zones.length) fail(["gcp", "zones"], `lists a zone twice`);
      if (cidrsOverlap(c.network.cidr, g.bastionCidr)) fail(["gcp", "bastionCidr"], `${g.bastionCidr} overlaps network.cidr ${c.network.cidr}; pick a separate range`);
      g.sshSourceRanges.forEach((r, i) => {
        if (parseCidr(r)?.prefix === 0) fail(["gcp", "sshSourceRanges", i], `is ${r}: SSH from the whole internet is refused; use your office/VPN range or IAP's 35.235.240.0/20`);
      });
      const zone = (i: number) => g.zones[i % g.zones.length];
      const base = { sshUser: c.ssh.user, sshPort: c.ssh.port };
      for (let i = 0; i < g.dbNodes; i++)
        hosts.push({ ...base, name: `${c.clusterName}-db-${i + 1}`, roles: ["etcd", "postgres"], zone: zone(i), dataDevice: "/dev/disk/by-id/google-pgdata", kind: "db" });
      for (let i = 0; i < g.witnessNodes; i++)
        hosts.push({ ...base, name: `${c.clusterName}-witness-${i + 1}`, roles: ["etcd"], zone: zone(g.dbNodes + i), kind: "witness" });
      for (let i = 0; i < g.balancerNodes; i++)
        hosts.push({ ...base, name: `${c.clusterName}-lb-${i + 1}`, roles: ["balancer"], zone: zone(i), kind: "balancer" });
    }
  } else {
    if (c.gcp) fail(["gcp"], `is only for provider gcp; remove it or set provider: gcp`);
    if (!c.hosts || c.hosts.length === 0) fail(["hosts"], `is required for provider static: a list of {name, address, roles}`);
    (c.hosts ?? []).forEach((h, i) => {
      if (!h.address) fail(["hosts", i, "address"], `host "${h.name}" has no address; static hosts need the IPv4 address to reach them`);
      else if (!ipInCidr(h.address, c.network.cidr)) fail(["hosts", i, "address"], `${h.address} of "${h.name}" is outside network.cidr ${c.network.cidr}; the nodes' firewall and pg_hba only admit that range`);
      hosts.push({ name: h.name, address: h.address, roles: [...new Set(h.roles)], sshUser: h.sshUser ?? c.ssh.user, sshPort: h.sshPort ?? c.ssh.port, dataDevice: h.dataDevice, hostKey: h.hostKey, kind: "static" });
    });
    const seen = new Map<string, number>();
    (c.hosts ?? []).forEach((h, i) => {
      if (h.name in CLIENT_CERTS) fail(["hosts", i, "name"], `"${h.name}" is reserved (the ${h.name} client certificate has that name); call the host something else`);
      for (const [what, v] of [["name", h.name], ["address", h.address]] as const) {
        if (!v) continue;
        const prev = seen.get(`${what}:${v}`);
        if (prev !== undefined) fail(["hosts", i, what], `"${v}" is already used by hosts[${prev}]; every host needs its own ${what}`);
        else seen.set(`${what}:${v}`, i);
      }
    });
  }
  if (!c.sshPrivateKey && !c.ssh.privateKeyFile)
    fail(["sshPrivateKey"], `is required to reach the hosts: pulumi config set --secret ${PROJECT}:sshPrivateKey < key (or set ${PROJECT}:ssh.privateKeyFile)`);

  const count = (r: Role) => hosts.filter((h) => h.roles.includes(r)).length;
  const where = c.provider === "gcp" ? ["gcp", "dbNodes"] : ["hosts"];
  const etcd = count("etcd");
  if (hosts.length > 0 && (etcd < 3 || etcd % 2 === 0))
    fail(c.provider === "gcp" ? ["gcp", "witnessNodes"] : ["hosts"], `gives ${etcd} etcd member(s); etcd needs an odd number, at least 3, to keep quorum when one fails (gcp: dbNodes + witnessNodes)`);
  const db = count("postgres");
  if (hosts.length > 0 && db < 1) fail(where, `gives no database node; at least one host needs role postgres`);
  if (environment === "prod" && hosts.length > 0 && db < 2)
    fail(where, `gives ${db} database node(s); prod needs at least 2 so a failover has somewhere to go`);
  if (hosts.length > 0 && count("balancer") < 1) fail(where, `gives no balancer; at least one host needs role balancer (HAProxy on 5000/5001/5002)`);
  if (c.patroni.synchronousMode && db < 2) fail(["patroni", "synchronousMode"], `needs at least 2 database nodes`);

  if (problems.length) throw new ConfigError(problems, ctx.source);
  return {
    stack: ctx.stack, environment, clusterName: c.clusterName, provider: c.provider, gcp: c.gcp, hosts,
    network: c.network, ssh: c.ssh, apt: c.apt, firewall: c.firewall, patroni: c.patroni, postgresql: c.postgresql,
    pgbouncer: c.pgbouncer, haproxy: c.haproxy, tls: c.tls, secrets: { ...c.secrets, provided },
  };
}

/** Pulumi hands config values as strings; structured ones are JSON. */
export function decodeConfigValue(value: string): unknown {
  const t = value.trim();
  if (t.startsWith("{") || t.startsWith("[")) {
    try { return JSON.parse(t); } catch { return value; }
  }
  return value;
}
