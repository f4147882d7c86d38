// Stack config -> ClusterSpec. Pure: no Pulumi, no I/O, so the Pulumi program and the local
// driver read a stack file through exactly the same rules and the same error messages.
//
// Every value that reaches bash, SQL, an ssh argument, a config file, a URL or a certificate
// subject has a strict grammar here (the renderers quote it as well: defence in depth). Each
// top-level key is parsed on its own, so one type error does not hide the other problems.
import { z } from "zod";
import { cidrsCoverEverything, cidrsOverlap, gcpReservedAddresses, ipInCidr, isIPv4, isPrivateCidr, parseCidr, reservedAddresses } from "./cidr";
import { CLIENT_CERTS, MANAGED_ROLES } from "./identities";
import { parseHostKey } from "./sshHostKey";
import { GCP_REGIONS, GCP_ZONES, GCP_ZONES_TAKEN } from "./gcpZones";

export const PROJECT = "pgcluster";

export type Role = "etcd" | "postgres" | "balancer" | "backup" | "monitoring";
export const ROLES_OF_HOSTS = ["etcd", "postgres", "balancer", "backup", "monitoring"] as const;
export const SECRET_KEYS = [
  "superuserPassword",
  "replicationPassword",
  "rewindPassword",
  "pgbouncerAuthPassword",
  "restApiPassword",
  "appPassword",
  /** The balancers' VRRP authentication (keepalived uses its first 8 characters). */
  "vrrpPassword",
  // HAProxy's stats page (user "stats"), in haproxy.cfg only (0640 root:haproxy).
  "statsPassword",
  /**
   * Prometheus's login at every exporter and at its own web UI (user "prometheus"). The exporters
   * hold only its bcrypt hash; the monitoring host the password itself (0640 root:prometheus).
   */
  "metricsPassword",
] as const;
export type SecretName = (typeof SECRET_KEYS)[number];
/**
 * The backup repository's cipher passphrase: a secret, but not a password. It is never rotated
 * (secrets.rotation does not touch it): a new passphrase cannot read the repository already
 * written, so it lives as long as the repository.
 */
export const BACKUP_PASSPHRASE = "backupCipherPassphrase";


/** Parameters Patroni (or pgcluster itself) sets; a hand-set value would fight it. */
export const PATRONI_OWNED_PARAMETERS = [
  "port", "listen_addresses", "data_directory", "config_file", "hba_file", "ident_file",
  "cluster_name", "hot_standby", "primary_conninfo", "primary_slot_name", "restore_command",
  "recovery_target", "recovery_target_lsn", "recovery_target_name", "recovery_target_time",
  "recovery_target_timeline", "recovery_target_xid", "synchronous_standby_names",
  "ssl", "ssl_cert_file", "ssl_key_file", "ssl_ca_file", "password_encryption", "wal_log_hints",
];

/** Parameters pgcluster sets for WAL archiving while backup.enabled is true. */
export const BACKUP_OWNED_PARAMETERS = ["archive_mode", "archive_timeout"];

/**
 * Logging parameters pgcluster always sets (roles/patroni dcsConfig), with what to do instead:
 * the config key that sets it, or why it is fixed (log aggregation reads every node's lines alike).
 */
export const LOGGING_OWNED_PARAMETERS: Readonly<Record<string, string>> = {
  log_min_duration_statement: "use postgresql.slowQueryMs",
  log_autovacuum_min_duration: "use postgresql.autovacuumLogMs",
  log_line_prefix: "every node's lines carry the same prefix (time, pid, user@database, application, client) for log aggregation; remove it",
  log_destination: "PostgreSQL logs to stderr, which Patroni's unit hands to the journal; remove it",
  logging_collector: "PostgreSQL logs to stderr, which Patroni's unit hands to the journal; remove it",
};

/**
 * Further refused parameters, with the reason: each runs a command, loads code, or reads or
 * writes a path pgcluster does not manage. (Every ssl* parameter is refused as well: TLS is
 * pgcluster's.) shared_preload_libraries is allowed with plain library names only.
 */
export const REFUSED_PARAMETERS: Readonly<Record<string, string>> = {
  archive_command: "runs a shell command as postgres for every WAL segment",
  archive_library: "loads a shared library into the archiver",
  archive_cleanup_command: "runs a shell command as postgres on every restartpoint",
  recovery_end_command: "runs a shell command as postgres at the end of recovery",
  dynamic_library_path: "changes the directories PostgreSQL loads extension code from",
  local_preload_libraries: "loads shared libraries into every session",
  session_preload_libraries: "loads shared libraries into every session",
  jit_provider: "loads a shared library as the JIT provider",
  unix_socket_directories: "moves the local socket that pgcluster's steps and peer authentication use",
  unix_socket_group: "changes who may connect through the local socket",
  unix_socket_permissions: "changes who may connect through the local socket",
  external_pid_file: "writes a file at any path as postgres",
  log_directory: "writes log files at any path as postgres",
  log_filename: "names a log file path that may lead outside the log directory",
  krb_server_keyfile: "reads a key file from any path",
  promote_trigger_file: "a file whose appearance promotes a replica behind Patroni's back",
  include: "reads another configuration file",
  include_dir: "reads other configuration files",
  include_if_exists: "reads another configuration file",
};

// ---- grammars --------------------------------------------------------------------------

const NAME = /^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$/;
const name = z.string().regex(NAME, "must be lower-case letters, digits and '-', starting with a letter, at most 40 (a GCP and DNS name)");
const cidr = z.string().refine((s) => parseCidr(s) !== undefined, "is not an IPv4 CIDR like 10.20.0.0/24");
const port = z.number().int().min(1).max(65535);

/** A whole number in [min, max]; `unit` and `why` go into the message. */
function int(min: number, max: number, unit = "", why = { min: "", max: "" }) {
  return z.number().int("must be a whole number")
    .min(min, min === 1 && !why.min ? "must be greater than 0" : `must be at least ${min}${unit}${why.min}`)
    .max(max, `must be at most ${max}${unit}${why.max}`);
}

/** POSIX user name; never starts with '-' (it becomes an ssh argument). */
const posixUser = z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/,
  "must be a POSIX user name: lower-case letters, digits, '_' and '-', starting with a letter or '_', at most 32");

/**
 * A short opaque token: certificate subjects (tls.rotation), Pulumi keepers, state files. An
 * integer counts as its decimal text: `pulumi config set --path … 2` stores a number.
 */
const token = z.preprocess(
  (v) => (typeof v === "number" && Number.isSafeInteger(v) && v >= 0 ? String(v) : v),
  z.string().regex(/^[A-Za-z0-9._-]{1,40}$/, "must be a short token: 1 to 40 letters, digits, '.', '_' or '-'"));

/** A restore target's time: ISO 8601 with its zone, microseconds at most (roles/restore). */
export const RESTORE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$/;
const restoreTarget = z.string().refine((v) => v === "latest" || (RESTORE_TIME.test(v) && !Number.isNaN(Date.parse(v))),
  "must be \"latest\" or an ISO 8601 time with its zone, e.g. 2026-11-28T03:20:00Z or 2026-11-28T04:20:00.250+01:00");

/**
 * A journald size (SystemMaxUse=): a whole number of MiB or GiB, 16M to 1024G. It lands in a
 * config file, so nothing but digits and the unit letter.
 */
const JOURNAL_SIZE = /^([1-9][0-9]{0,6})([MG])$/;
const journalSize = z.string()
  .regex(JOURNAL_SIZE, "must be a size like 512M or 2G: a whole number followed by M (MiB) or G (GiB)")
  .refine((s) => { const m = JOURNAL_SIZE.exec(s); return !m || (m[2] === "G" ? Number(m[1]) * 1024 : Number(m[1])) >= 16; }, "must be at least 16M: journald needs room for its active files")
  .refine((s) => { const m = JOURNAL_SIZE.exec(s); return !m || (m[2] === "G" ? Number(m[1]) * 1024 : Number(m[1])) <= 1024 * 1024; }, "must be at most 1024G");

/** Debian's version grammar ([epoch:]upstream[-revision]), as apt-cache policy prints it. */
const DEBIAN_VERSION = /^([0-9]{1,4}:)?[0-9][A-Za-z0-9.+~]{0,40}(-[A-Za-z0-9.+~]{1,30})?$/;
const debianVersion = z.string().regex(DEBIAN_VERSION, "must be a Debian package version like 15.18-0+deb12u1 (as `apt-cache policy` prints it)");
/** The package sets whose versions a stack can pin, and the Debian packages of each. */
export const PACKAGE_SETS = ["postgresql", "patroni", "pgbouncer", "etcd", "haproxy"] as const;
export type PackageSet = (typeof PACKAGE_SETS)[number];
const devicePath = z.string()
  .regex(/^\/dev\/[A-Za-z0-9._/-]{1,120}$/, "must be a device path under /dev/ of letters, digits, '.', '_', '-' and '/'")
  .refine((s) => !s.includes(".."), "must not contain '..'");

/**
 * A systemd calendar event (OnCalendar=), e.g. "Sun *-*-* 01:00:00": it lands in a unit file,
 * where '%' is a specifier, '\\' continues a line and a newline starts a new setting.
 */
const calendar = z.string().regex(/^[A-Za-z0-9*:,./~+ -]{1,100}$/,
  "must be a systemd calendar event like \"Sun *-*-* 01:00:00\" or daily: letters, digits, spaces and * : , . / ~ + - only (see man systemd.time)")
  .refine((s) => s.trim() === s && !s.includes("  "), "must not start or end with a space or hold two in a row");

/** Local path of the SSH private key: plain characters only, never starting with '-'. */
const keyFilePath = z.string().regex(/^[A-Za-z0-9._/+@][A-Za-z0-9._/+@-]{0,254}$/,
  "must be a plain file path: letters, digits and . _ / + @ - (no spaces, quotes or shell characters), not starting with '-'");

const URL_SHAPE = /^https?:\/\/([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(:(\d{1,5}))?(\/[A-Za-z0-9._~%/+-]*)?$/;
const aptUrl = z.string()
  .regex(URL_SHAPE, "must be an http:// or https:// URL host[:port][/path] of letters, digits and . - _ ~ % / + only (no user:password@, query, quotes, spaces, ';', '$' or backticks)")
  .refine((s) => { const p = URL_SHAPE.exec(s)?.[4]; return p === undefined || (Number(p) >= 1 && Number(p) <= 65535); }, "has a port outside 1-65535");

/**
 * Alertmanager's webhook receiver: https only (alerts name hosts and databases), no user:password@,
 * query or fragment; it lands in alertmanager.yml as a JSON string.
 */
const WEBHOOK_SHAPE = /^https:\/\/([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)(:(\d{1,5}))?(\/[A-Za-z0-9._~%/+-]*)?$/;
const webhookUrl = z.string()
  .regex(WEBHOOK_SHAPE, "must be an https:// URL host[:port][/path] of letters, digits and . - _ ~ % / + only (no user:password@, query, quotes, spaces, ';', '$' or backticks)")
  .max(500, "must be at most 500 characters")
  .refine((s) => { const p = WEBHOOK_SHAPE.exec(s)?.[4]; return p === undefined || (Number(p) >= 1 && Number(p) <= 65535); }, "has a port outside 1-65535");

export const SSH_KEY_TYPES = ["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa"] as const;
const KEY_TYPES_TEXT = "ssh-ed25519, ecdsa-sha2-nistp256/384/521 or ssh-rsa";

/** What is wrong with an OpenSSH public key line, if anything. The base64 blob must encode the named type. */
export function sshPublicKeyProblem(value: string, allowComment: boolean): string | undefined {
  const m = /^([a-z0-9-]+) ([A-Za-z0-9+/]+={0,2})(?: ([A-Za-z0-9@._+:=-]+(?: [A-Za-z0-9@._+:=-]+)*))?$/.exec(value);
  const form = allowComment
    ? `"<type> <base64> [comment]" (comment: letters, digits, spaces and @ . _ + : = -)`
    : `"<type> <base64>" and nothing else`;
  if (!m || (m[3] !== undefined && (!allowComment || m[3].length > 100))) return `must be one OpenSSH public key ${form}, type ${KEY_TYPES_TEXT}`;
  const [, type, b64] = m;
  if (!(SSH_KEY_TYPES as readonly string[]).includes(type)) return `has key type ${JSON.stringify(type)}; use ${KEY_TYPES_TEXT}`;
  const blob = Buffer.from(b64, "base64");
  const encodedType = blob.length >= 4 ? blob.subarray(4, 4 + blob.readUInt32BE(0)).toString("latin1") : "";
  if (blob.toString("base64") !== b64 || encodedType !== type) return `has a base64 part that is not a ${type} key`;
  return undefined;
}
const sshKey = (allowComment: boolean) => z.string().superRefine((v, ctx) => {
  const problem = sshPublicKeyProblem(v, allowComment);
  if (problem) ctx.addIssue({ code: "custom", message: problem });
});

/** Passwords given in config: they land in YAML, INI files, URLs and shell scripts (quoted there too). */
const secretValue = z.string().regex(/^[\x21-\x7e]{16,128}$/,
  "must be 16 to 128 printable ASCII characters without spaces (the value is not shown)");

/** Never spliced anywhere, so free-form, but it must be a private key. */
const privateKey = z.string().refine(
  (s) => /^-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----\r?\n[\x20-\x7e\r\n]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----$/.test(s.trim()),
  "must be a PEM or OpenSSH private key (-----BEGIN … PRIVATE KEY----- … -----END … PRIVATE KEY-----; the value is not shown)");

/** Names that look like production but are not "prod": they would skip the prod checks silently. */
const PROD_LOOKALIKE = /^(prod|production|prd|live)([^a-z].*)?$/i;
function prodLookalike(env: string): boolean {
  return env !== "prod" && PROD_LOOKALIKE.test(env);
}
const environmentName = z.string().superRefine((v, ctx) => {
  if (prodLookalike(v)) ctx.addIssue({ code: "custom", message: `${JSON.stringify(v)} looks like production but is not "prod", so the prod checks (≥ 2 database nodes) would be skipped silently — did you mean prod?` });
  else if (!/^[a-z][a-z0-9-]{0,29}$/.test(v)) ctx.addIssue({ code: "custom", message: `must be a lower-case name (letters, digits and '-', starting with a letter, at most 30) like dev, staging or prod` });
});

const machineType = z.string().regex(/^[a-z][a-z0-9]*(-[a-z0-9]+){1,5}$/, "must be a Compute Engine machine type like e2-standard-2 (lower-case letters, digits and '-')")
  .max(63, "must be at most 63 characters");
const image = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}(\/[a-z0-9][a-z0-9._-]{0,62}){0,5}$/,
  "must be an image like debian-cloud/debian-12 or projects/<p>/global/images/<name> (lower-case letters, digits, '.', '_', '-' and '/')");
const gcpRegion = z.string().superRefine((v, ctx) => {
  if (Object.hasOwn(GCP_ZONES, v)) return;
  const guess = closest(v, [...GCP_REGIONS]);
  ctx.addIssue({ code: "custom", message: `${JSON.stringify(v)} is not a Compute Engine region (list of ${GCP_ZONES_TAKEN} in model/gcpZones.ts)${guess ? ` — did you mean "${guess}"?` : ""} Known regions: ${GCP_REGIONS.join(", ")}.` });
});

// ---- schema ----------------------------------------------------------------------------

const hostSchema = z.strictObject({
  name,
  address: z.string().refine(isIPv4, "is not an IPv4 address").optional(),
  roles: z.array(z.enum(ROLES_OF_HOSTS)).min(1),
  sshUser: posixUser.optional(),
  sshPort: port.optional(),
  dataDevice: devicePath.optional(),
  /** The host's SSH public host key ("ssh-ed25519 AAAA…"): every connection verifies it. */
  // What both drivers pin (model/sshHostKey.ts): ed25519 only, one line, no comment.
  hostKey: z.string().refine((v) => parseHostKey(v) !== undefined,
    `is not an ed25519 SSH host key; expected one line "ssh-ed25519 AAAA…" (68 base64 characters, no comment), as in the host's /etc/ssh/ssh_host_ed25519_key.pub`).optional(),
  /**
   * Scale in, first half: the host is decommissioned by the next apply (Patroni and etcd leave,
   * the rest of the cluster forgets it) while it is still admitted everywhere; removing it from
   * the inventory afterwards only deletes it. See README "Scale in".
   */
  leaving: z.boolean().optional(),
});

const gcpSchema = z.strictObject({
  project: z.string().regex(/^[a-z][a-z0-9-]{4,28}[a-z0-9]$/, "must be a GCP project id: 6 to 30 lower-case letters, digits and '-', starting with a letter, not ending in '-'"),
  region: gcpRegion,
  zones: z.array(z.string()).min(1),
  dbNodes: int(1, 9).default(3),
  witnessNodes: int(0, 8).default(0),
  /** Scale in, first half: the last N database nodes (witnesses) are decommissioned, their instances kept until dbNodes (witnessNodes) goes down by N. */
  dbNodesLeaving: int(0, 8).default(0),
  witnessNodesLeaving: int(0, 8).default(0),
  balancerNodes: int(1, 9).default(1),
  dbMachineType: machineType.default("e2-standard-2"),
  witnessMachineType: machineType.default("e2-micro"),
  balancerMachineType: machineType.default("e2-small"),
  bastionMachineType: machineType.default("e2-micro"),
  /** monitoring.enabled: the monitoring instance (Prometheus + Alertmanager). */
  monitoringMachineType: machineType.default("e2-medium"),
  /**
   * monitoring.enabled: the monitoring instance's boot disk, which holds Prometheus's TSDB
   * (monitoring.retentionDays of samples): at least 20 GB, the image and the journal need some.
   */
  monitoringDiskGb: int(20, 65536, " (GB)").default(30),
  image: image.default("debian-cloud/debian-12"),
  bootDiskGb: int(10, 65536, " (GB)").default(20),
  dataDiskGb: int(10, 65536, " (GB)").default(100),
  dataDiskType: z.enum(["pd-ssd", "pd-balanced", "pd-standard"]).default("pd-ssd"),
  bastionCidr: cidr.default("10.250.0.0/28"),
  sshSourceRanges: z.array(cidr).min(1),
  /**
   * The internal load balancer's address in network.cidr (clients dial it); absent: GCP picks a
   * free one when the address is reserved, and keeps it for as long as the resource lives.
   */
  loadBalancerAddress: z.string().refine(isIPv4, "is not an IPv4 address").optional(),
});

const seconds = " (seconds)";
const spec = z.strictObject({
  environment: environmentName.optional(),
  clusterName: name,
  provider: z.enum(["gcp", "static"]),
  gcp: gcpSchema.optional(),
  hosts: z.array(hostSchema).optional(),
  network: z.strictObject({
    cidr,
    clientCidrs: z.array(cidr).min(1),
    adminCidrs: z.array(cidr).default([]),
    /**
     * static: the address the balancers share (keepalived moves it to a healthy one); clients
     * dial it. Required with two or more balancers. GCP: use gcp.loadBalancerAddress.
     */
    floatingAddress: z.string().refine(isIPv4, "is not an IPv4 address").optional(),
  }),
  ssh: z.strictObject({
    user: posixUser.default("root"),
    port: port.default(22),
    publicKey: sshKey(true).optional(),
    privateKeyFile: keyFilePath.optional(),
    /**
     * How host keys are known. "pinned": static hosts list hosts[].hostKey, GCP instances'
     * keys are read from their guest attributes. "trust-on-first-use": the first key seen is
     * recorded (Pulumi state / .pgcluster/<stack>/known_hosts) and every later one must match.
     */
    hostKeys: z.enum(["pinned", "trust-on-first-use"]).default("pinned"),
  }).prefault({}),
  apt: z.strictObject({
    proxy: aptUrl.optional(),
    /** Debian mirror for the local hosts' base root; default: this machine's own apt sources. */
    mirror: aptUrl.optional(),
  }).prefault({}),
  /**
   * The cluster's packages (Debian's). `versions`: exact Debian versions to run (apt pins them at
   * priority 1001); a change rolls over the hosts one at a time (roles/update: the database nodes'
   * leader last, after a switchover). `newest`: bring them to the newest version the mirror has,
   * the same way (what `npm run update` sets for one apply); unpinned packages are otherwise
   * installed once and left alone.
   */
  packages: z.strictObject({
    versions: z.strictObject(Object.fromEntries(PACKAGE_SETS.map((k) => [k, debianVersion.optional()])) as Record<PackageSet, z.ZodOptional<typeof debianVersion>>).default({}),
    newest: z.boolean().default(false),
  }).prefault({}),
  /** The balancers' VRRP (keepalived) when network.floatingAddress is set. */
  keepalived: z.strictObject({
    /** VRRP router id, 1-255: unique among the VRRP groups of the balancers' network. */
    virtualRouterId: int(1, 255).default(51),
  }).prefault({}),
  /** nftables on every host: inbound default drop, per port and source. */
  firewall: z.strictObject({ enabled: z.boolean().default(true) }).prefault({}),
  patroni: z.strictObject({
    ttl: int(10, 600, seconds, { min: ": below 10 s the leader key expires on ordinary hiccups", max: "" }).default(10),
    loopWait: int(1, 60, seconds).default(2),
    retryTimeout: int(1, 300, seconds).default(3),
    synchronousMode: z.boolean().default(false),
    failsafeMode: z.boolean().default(true),
    maximumLagOnFailover: int(0, 2 ** 40, " (bytes)").default(1048576),
    watchdog: z.enum(["off", "automatic", "required"]).default("automatic"),
    /**
     * A setting that needs a PostgreSQL restart (shared_buffers, max_connections, …): `rolling`
     * restarts the nodes one at a time, the leader last after a switchover; `defer` leaves them
     * pending, warns, and reports it as drift until an apply with `rolling`.
     */
    pendingRestart: z.enum(["rolling", "defer"]).default("rolling"),
  }).prefault({}),
  postgresql: z.strictObject({
    database: name.default("app"),
    appUser: name.default("app"),
    /**
     * log_min_duration_statement: statements that run longer are logged with their duration
     * (-1: none; 0: every statement, with its text — noisy, and texts may hold personal data).
     */
    slowQueryMs: int(-1, 86_400_000, " (ms; -1 disables)").default(250),
    /** log_autovacuum_min_duration: autovacuum/autoanalyze runs that take longer are logged (-1: none). */
    autovacuumLogMs: int(-1, 86_400_000, " (ms; -1 disables)").default(1000),
    // Names and values are checked (and names lower-cased) in parseClusterSpec, one problem each.
    parameters: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).default({}),
  }).prefault({}),
  /** The journal on every host (journald drop-in, roles/common): every service logs there. */
  logs: z.strictObject({
    /** SystemMaxUse=: the most disk the persistent journal takes; the oldest files go first. */
    journalMaxUse: journalSize.default("1G"),
    /** MaxRetentionSec=: entries older than this are removed (whole files, one per day). */
    retentionDays: int(1, 3650, " (days)").default(30),
  }).prefault({}),
  pgbouncer: z.strictObject({
    poolMode: z.enum(["transaction", "session", "statement"]).default("transaction"),
    defaultPoolSize: int(1, 10000).default(20),
    reservePoolSize: int(1, 10000).default(5),
    maxClientConn: int(1, 100000).default(1000),
  }).prefault({}),
  haproxy: z.strictObject({
    maxReplicaLagBytes: int(0, 2 ** 40, " (bytes)").default(16777216),
    checkIntervalMs: int(100, 60000, " (ms)").default(1000),
    fall: int(1, 100).default(2),
    rise: int(1, 100).default(1),
    maxConn: int(1, 100000).default(2000),
  }).prefault({}),
  tls: z.strictObject({
    caValidityHours: int(24, 876000, " (hours; 876000 is 100 years)").default(87600),
    certValidityHours: int(24, 876000, " (hours)").default(8760),
    earlyRenewalHours: int(0, 876000, " (hours)").default(720),
    /** Change to re-issue every node and client certificate now. */
    rotation: token.default("0"),
    /** Trusted CA generations, the signing one first. A CA rotation goes [1] -> [1,2] -> [2,1] -> [2]. */
    caGenerations: z.array(z.string().regex(/^[a-z0-9-]{1,20}$/, "must be a short lower-case name like 2 or 2026a")).min(1).max(2).default(["1"]),
  }).prefault({}),
  /** WAL archiving and backups with pgBackRest (ARCHITECTURE.md: Backups and WAL archiving). */
  backup: z.strictObject({
    enabled: z.boolean().default(false),
    /** PostgreSQL's archive_timeout: a segment is archived at least this often, the most a total loss can cost. */
    archiveTimeout: int(10, 86400, seconds, { min: ": each switch archives a 16 MB segment, however little it holds", max: "" }).default(60),
    /**
     * Replicas read WAL they lack from the repository (Patroni's recovery_conf restore_command,
     * and pg_rewind --restore-target-wal). Off by default: replicas catch up by streaming from
     * their replication slots, and every start, rewind and promotion of a node then waits on
     * no repository round trip (README: Backups, measured).
     */
    replicasUseRepository: z.boolean().default(false),
    /**
     * How a new or re-initialised replica gets its data: "leader" (pg_basebackup from the
     * leader), or "repository" (pgBackRest restores the newest backup, the replica replays the
     * WAL since from the repository, then streams; pg_basebackup when that fails). The
     * repository way spares the leader's disk and network on big databases.
     */
    replicasFrom: z.enum(["leader", "repository"]).default("leader"),
    schedule: z.strictObject({
      full: calendar.default("Sun *-*-* 01:00:00"),
      diff: calendar.default("Mon..Sat *-*-* 01:00:00"),
      /** The restore drill on the backup host (the seed's monthly recovery test): the first Sunday of each month. */
      drill: calendar.default("Sun *-*-01..07 04:00:00"),
      /** The logical dump (pg_dump of the application database, and the roles) on the backup host. */
      dump: calendar.default("*-*-* 02:30:00"),
    }).prefault({}),
    retention: z.strictObject({
      /** Full backups kept (pgBackRest repo1-retention-full); WAL older than the oldest is expired. */
      full: int(1, 1000).default(2),
      /** Differential backups kept (repo1-retention-diff). */
      diff: int(1, 1000).default(7),
      /** Days a logical dump is kept on the backup host (the newest is always kept). */
      dumpDays: int(1, 3650).default(7),
    }).prefault({}),
    /**
     * provider gcp: the Cloud Storage bucket holding the repository (infra/backupBucket.ts). Its
     * name is derived (backupBucketName), never configured. Object versioning is always on.
     */
    bucket: z.strictObject({
      /**
       * Days a deleted object stays soft-deleted (Cloud Storage's soft delete policy, 7 to 90):
       * nothing the nodes' account can do removes it sooner, so a compromised node cannot erase
       * the history within this window.
       */
      softDeleteDays: int(7, 90, " (days)", { min: ": Cloud Storage's soft delete keeps objects 7 to 90 days", max: ": Cloud Storage's soft delete keeps objects 7 to 90 days" }).default(14),
      /** Days a replaced or deleted version (noncurrent) is kept before a lifecycle rule deletes it. */
      noncurrentVersionDays: int(1, 3650, " (days)").default(30),
    }).prefault({}),
  }).prefault({}),
  /**
   * This cluster is a standby of another one (Patroni's standby_cluster; README: Standby
   * cluster): its leader streams the primary cluster's WAL through that cluster's writer port
   * without pooler, and its own replicas stream from it. Read-only until promoted
   * (standby.promoted: true, then apply). It trusts the primary's CA and replicates with the primary's
   * replication certificate, and its database roles are the primary's (their passwords too).
   */
  standby: z.strictObject({
    /**
     * The primary cluster's stack: the local CLI reads its state (.pgcluster/<stack>/, so apply
     * it here first); the Pulumi CLI a stack reference ("org/project/stack" or "stack") to its
     * output standbyTrust.
     */
    primaryStack: z.string().regex(/^([a-zA-Z0-9][a-zA-Z0-9_.-]{0,99}\/){0,2}[a-zA-Z0-9][a-zA-Z0-9_.-]{0,99}$/,
      "must be a Pulumi stack name (\"prod\") or fully qualified (\"org/project/prod\"): letters, digits, '_', '.', '-', each part starting with a letter or digit"),
    /** Where the primary cluster's clients dial: its floating address (static) or its internal load balancer (GCP). */
    host: z.string().refine(isIPv4, "is not an IPv4 address"),
    /** The primary cluster's writer port without pooler (its HAProxy sends it to the primary's PostgreSQL). */
    port: port.default(5002),
    /**
     * The primary cluster's backup host (static, backup.enabled there): the standby fetches WAL
     * from its repository when streaming cannot serve it (the slot lost, the link down, far
     * behind). It logs in with the primary's replication certificate (the primary's
     * standbyClusters admits it there). Absent: streaming only.
     */
    repository: z.strictObject({
      host: z.string().refine(isIPv4, "is not an IPv4 address"),
      /** The backup host's name in the primary's stack: its certificate's name, which pgBackRest checks (not the address). */
      name,
      port: port.default(8432),
      /** The primary cluster's pgBackRest stanza: its clusterName. */
      stanza: name,
    }).optional(),
    /**
     * true: promote, i.e. stop following the primary cluster and take writes (the runbook in
     * README says when). The cluster keeps the primary's role passwords and trust, so clients
     * log in as before. There is no way back to following it but building the standby anew.
     */
    promoted: z.boolean().default(false),
  }).optional(),
  /**
   * Standby clusters of this one (their stacks set standby.primaryStack to this one): each gets
   * a permanent replication slot (standby_<clusterName>, kept across failovers, so the WAL it
   * still needs stays) and its addresses are admitted to the writer port without pooler and, for
   * replication only, to PostgreSQL.
   */
  standbyClusters: z.array(z.strictObject({ clusterName: name, cidrs: z.array(cidr).min(1) })).default([]),
  /**
   * Point-in-time restore through the Pulumi CLI (README: Point-in-time restore): a new `id`
   * restores the whole cluster to `to` in the next `pulumi up`, then applies the plan; the same
   * `id` again restores nothing. `confirm` must be the clusterName: it destroys data.
   */
  restore: z.strictObject({
    to: restoreTarget,
    id: token,
    confirm: z.string().max(100),
    /** Go on when a former primary's last WAL cannot be archived (npm run restore's --lose-unarchived). */
    loseUnarchived: z.boolean().default(false),
  }).optional(),
  /** Prometheus + Alertmanager on a monitoring host, exporters on every host (issue #14). */
  monitoring: z.strictObject({
    enabled: z.boolean().default(false),
    scrapeIntervalSeconds: int(5, 30, seconds, { min: "", max: ": the alert rules wait 1 min, which must span two scrapes or more" }).default(15),
    /** Prometheus's --storage.tsdb.retention.time, in days. */
    retentionDays: int(1, 3650, " (days)").default(15),
    alertmanager: z.strictObject({
      /** Where Alertmanager posts alerts (its webhook receiver); absent: alerts show on its page only. */
      webhookUrl: webhookUrl.optional(),
    }).prefault({}),
    alerts: z.strictObject({
      /** The newest good backup of any type may be this old (default schedule: one a day at 01:00, plus 2 h to run). */
      backupMaxAgeHours: int(1, 8760, " (hours)").default(26),
      /** The newest good full backup may be this old (default schedule: Sundays, plus 2 h). */
      fullBackupMaxAgeHours: int(1, 8760, " (hours)").default(170),
      /** The last restore drill may be this old (default schedule: the first Sunday of each month, up to 35 days apart, plus a day). */
      restoreDrillMaxAgeHours: int(1, 8760, " (hours)").default(864),
      /** An inactive replication slot may hold this much WAL (a gone replica or standby cluster's fills the disk). */
      slotRetainedWalMb: int(16, 1048576, " (MiB)").default(1024),
    }).prefault({}),
  }).prefault({}),
  secrets: z.strictObject({
    generate: z.boolean().default(true),
    rotation: token.default("0"),
    rotate: z.partialRecord(z.enum(SECRET_KEYS), token).default({}),
  }).prefault({}),
  // Secret values only ever appear here as "present": the values themselves stay Pulumi secrets.
  ...Object.fromEntries(SECRET_KEYS.map((k) => [k, secretValue.optional()])),
  [BACKUP_PASSPHRASE]: secretValue.optional(),
  sshPrivateKey: privateKey.optional(),
});

type RawSpec = z.infer<typeof spec>;
type TopKey = keyof RawSpec & string;

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
  /** GCP: what the instance is (its machine type, disks, network tags); every static host is "static". */
  kind: "db" | "witness" | "balancer" | "monitoring" | "static";
  /** Being decommissioned (scale in, first half): no role of the plan is its any more. */
  leaving?: boolean;
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
  logs: RawSpec["logs"];
  pgbouncer: RawSpec["pgbouncer"];
  haproxy: RawSpec["haproxy"];
  keepalived: RawSpec["keepalived"];
  packages: RawSpec["packages"];
  tls: RawSpec["tls"];
  backup: RawSpec["backup"];
  standby?: RawSpec["standby"];
  restore?: RawSpec["restore"];
  standbyClusters: RawSpec["standbyClusters"];
  monitoring: RawSpec["monitoring"];
  /** `backupPassphraseProvided`: the stack gives the backup cipher passphrase (else it is generated). */
  secrets: RawSpec["secrets"] & { provided: SecretName[]; backupPassphraseProvided: boolean };
}

export class ConfigError extends Error {
  constructor(readonly problems: string[], source: string) {
    super(`Invalid stack config (${source}):\n` + problems.map((p) => `  - ${p}`).join("\n"));
    this.name = "ConfigError";
  }
}

/** `pgcluster:patroni.ttl`, `pgcluster:hosts[1].address`; an odd key is quoted: `parameters["a b"]`. */
export function configKey(path: PropertyKey[]): string {
  let out = `${PROJECT}:`;
  path.forEach((p, i) => {
    if (typeof p === "number") out += `[${p}]`;
    else if (!/^[A-Za-z0-9_.-]+$/.test(String(p))) out += `[${JSON.stringify(String(p))}]`;
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

/** Unwraps optional/default/prefault layers to reach the schema inside (the object that holds the keys). */
const unwrapSchema = (t: any): any => (t?.def?.innerType ? unwrapSchema(t.def.innerType) : t);

function knownKeysAt(path: PropertyKey[]): string[] {
  const unwrap = unwrapSchema;
  let s: any = unwrap(spec);
  for (const p of path) {
    if (s instanceof z.ZodArray) s = unwrap((s as any).def.element);
    else if (s instanceof z.ZodObject) s = unwrap((s as any).shape[p as string]);
    if (!s) return [];
  }
  return s instanceof z.ZodObject ? Object.keys((s as any).shape) : [];
}

function unknownKey(path: PropertyKey[], key: string): string {
  const known = knownKeysAt(path);
  const guess = closest(key, known);
  return `${configKey([...path, key])}: unknown key${guess ? ` — did you mean "${guess}"?` : ""} Known keys here: ${known.join(", ")}.`;
}

function describeIssue(issue: z.core.$ZodIssue): string[] {
  if (issue.code === "unrecognized_keys") return issue.keys.map((k) => unknownKey(issue.path, k));
  return [`${configKey(issue.path)}: ${issue.message}`];
}

/**
 * Each top-level key parsed by its own schema: a type error in one key is reported and only
 * the checks that need that key are skipped. `field` goes one level further: a field of an
 * object that failed elsewhere is parsed on its own, so e.g. a bad gcp.dbNodes does not hide a
 * bad gcp.zones.
 */
function parseTopLevel(raw: Record<string, unknown>, problems: string[]) {
  const shape = spec.shape as Record<string, z.ZodType>;
  const values: Record<string, unknown> = {};
  const failed = new Set<string>();
  for (const k of Object.keys(raw)) {
    if (!Object.hasOwn(shape, k)) { problems.push(unknownKey([], k)); failed.add(k); }
  }
  for (const [k, schema] of Object.entries(shape)) {
    const r = schema.safeParse(raw[k]);
    if (r.success) values[k] = r.data;
    else {
      failed.add(k);
      problems.push(...r.error.issues.flatMap((i) => describeIssue({ ...i, path: [k, ...i.path] } as z.core.$ZodIssue)));
    }
  }
  const c = values as RawSpec;
  /** The parsed value of `k.f`, or undefined when it did not parse (or its object is absent). */
  function field<K extends TopKey, F extends string & keyof NonNullable<RawSpec[K]>>(k: K, f: F): NonNullable<RawSpec[K]>[F] | undefined {
    if (!failed.has(k)) return (c[k] as Record<string, any> | undefined)?.[f];
    const obj = unwrapSchema(shape[k]);
    const rawObj = raw[k];
    if (!(obj instanceof z.ZodObject) || (rawObj !== undefined && (typeof rawObj !== "object" || rawObj === null || Array.isArray(rawObj)))) return undefined;
    const r = (obj.shape as Record<string, z.ZodType>)[f].safeParse((rawObj as Record<string, unknown> | undefined)?.[f]);
    return r.success ? (r.data as NonNullable<RawSpec[K]>[F]) : undefined;
  }
  /** Whether `k.f` was given at all (valid or not). */
  const given = (k: TopKey, f: string) => {
    const o = raw[k];
    return typeof o === "object" && o !== null && !Array.isArray(o) && (o as Record<string, unknown>)[f] !== undefined;
  };
  return { c, failed, field, given };
}

/** Why `appUser` may not have this name, if it may not. */
function appUserProblem(u: string): string | undefined {
  if ((MANAGED_ROLES as readonly string[]).includes(u))
    return `"${u}" is a role pgcluster manages (its attributes, password and pg_hba rules would be overwritten); pick another name`;
  const cert = Object.entries(CLIENT_CERTS).find(([, cn]) => cn === u);
  if (cert) return `"${u}" is the CN of the ${cert[0]} client certificate, which pg_hba/pg_ident trust: that certificate would log in as your application; pick another name`;
  if (u.startsWith("pg_")) return `"${u}" starts with pg_, which PostgreSQL reserves for its own roles`;
  if (["public", "none", "current_user", "session_user", "current_role"].includes(u)) return `"${u}" is a reserved role name in PostgreSQL`;
  if (u === "all") return `"all" is a keyword in pg_hba's user column, not a user name`;
  return undefined;
}

/** Why `database` may not have this name, if it may not. */
function databaseProblem(d: string): string | undefined {
  if (["postgres", "template0", "template1"].includes(d)) return `"${d}" is a system database of PostgreSQL; pick another name`;
  if (["all", "sameuser", "samerole", "samegroup", "replication"].includes(d)) return `"${d}" is a keyword in pg_hba's database column, not a database name`;
  if (d === "pgbouncer") return `"pgbouncer" is pgBouncer's admin console database; pick another name`;
  return undefined;
}

/** Host names a node certificate (CN = host name) must not take: trusted client-certificate names and managed roles. */
function reservedHostName(n: string): string | undefined {
  for (const [id, cn] of Object.entries(CLIENT_CERTS)) {
    if (n === id) return `it is the id of the ${id} client certificate`;
    if (n === cn) return `it is the CN of the ${id} client certificate, which pg_hba/pg_ident trust`;
  }
  if ((MANAGED_ROLES as readonly string[]).includes(n)) return `it is a PostgreSQL role pgcluster manages (a node certificate carries its host name as CN)`;
  return undefined;
}

const PARAMETER_NAME = /^[a-z_][a-z0-9_.]{0,62}$/;
const PARAMETER_TEXT = /^[\x20-\x7e]{0,1024}$/;
const LIBRARY_NAMES = /^[a-z0-9_]+(\s*,\s*[a-z0-9_]+)*$/;

/** The parameter's problem, if any (name compared lower-case, as PostgreSQL does). */
function parameterProblem(lower: string, value: string | number | boolean): string | undefined {
  if (!PARAMETER_NAME.test(lower)) return `is not a PostgreSQL parameter name (letters, digits, '_' and '.', starting with a letter or '_', at most 63)`;
  if (PATRONI_OWNED_PARAMETERS.includes(lower)) return `is managed by Patroni/pgcluster and cannot be set by hand; remove it`;
  if (lower.startsWith("ssl")) return `is refused: TLS is pgcluster's (certificates, keys, CA and protocol settings); remove it`;
  const reason = Object.hasOwn(REFUSED_PARAMETERS, lower) ? REFUSED_PARAMETERS[lower] : undefined;
  if (reason) return `is refused: it ${reason}; remove it`;
  const logging = Object.hasOwn(LOGGING_OWNED_PARAMETERS, lower) ? LOGGING_OWNED_PARAMETERS[lower] : undefined;
  if (logging) return `is set by pgcluster: ${logging}`;
  if (typeof value === "string") {
    if (!PARAMETER_TEXT.test(value) || /["'\\]/.test(value))
      return `has a value that is not allowed: printable ASCII (spaces included), at most 1024, without quotes, backslashes, newlines or control characters`;
    if (lower === "shared_preload_libraries" && value !== "" && !LIBRARY_NAMES.test(value))
      return `may list only library names like pg_stat_statements (loaded from PostgreSQL's own library directory), not paths`;
  }
  return undefined;
}

export interface ParseContext {
  stack: string;
  /** Keys (without the project prefix) that the stack holds as secrets. */
  secretKeys: ReadonlySet<string>;
  /** Where the values came from, for the error message. */
  source: string;
}

/**
 * The Cloud Storage bucket of a GCP cluster's backup repository (provider gcp, backup.enabled).
 * Bucket names are global: the project id (itself globally unique) makes it one nobody else
 * takes by accident; at most 30 + 1 + 24 + 7 = 62 characters, within the 63 allowed.
 */
export function backupBucketName(project: string, clusterName: string): string {
  return `${project}-${clusterName}-backup`;
}

/** Why Cloud Storage would refuse this bucket name, if it would (its naming rules; names are lower-case already). */
export function bucketNameProblem(name: string): string | undefined {
  if (!/^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/.test(name)) return `gives the backup bucket name "${name}", which is not 3 to 63 lower-case letters, digits and '-'`;
  if (/g[o0]{2}gle/.test(name) || name.startsWith("goog")) return `gives the backup bucket name "${name}": Cloud Storage refuses names that start with "goog" or contain "google" (or a look-alike); pick another clusterName (the name is gcp.project-clusterName-backup)`;
  return undefined;
}

/** The longest clusterName that keeps every GCP id valid: the service account `${clusterName}-nodes` may have 30 characters. */
export const GCP_MAX_CLUSTER_NAME = 30 - "-nodes".length;

/**
 * Validate raw stack config (keys without the `pgcluster:` prefix) and derive the cluster.
 * Throws ConfigError listing every problem with the key to fix; never returns a half-valid spec.
 */
export function parseClusterSpec(raw: Record<string, unknown>, ctx: ParseContext): ClusterSpec {
  const problems: string[] = [];
  const fail = (path: PropertyKey[], msg: string) => problems.push(`${configKey(path)}: ${msg}`);
  const { c, failed, field, given } = parseTopLevel(raw, problems);
  /** The keys parsed, so checks on them can run. */
  const ok = (...keys: TopKey[]) => keys.every((k) => !failed.has(k));

  const environment = raw.environment === undefined ? ctx.stack : c.environment;
  if (raw.environment === undefined && prodLookalike(ctx.stack))
    fail(["environment"], `is not set, so it is the stack name ${JSON.stringify(ctx.stack)}, which looks like production but is not "prod": the prod checks (≥ 2 database nodes) would be skipped silently — did you mean prod? Set ${PROJECT}:environment`);

  // Secrets: present ones must be Pulumi secrets (even when their value is refused); absent
  // ones need generation switched on.
  const provided = SECRET_KEYS.filter((k) => raw[k] !== undefined);
  for (const k of [...provided, ...(raw.sshPrivateKey !== undefined ? ["sshPrivateKey"] : []), ...(raw[BACKUP_PASSPHRASE] !== undefined ? [BACKUP_PASSPHRASE] : [])]) {
    if (!ctx.secretKeys.has(k)) fail([k], `is stored in plain text; store it encrypted: pulumi config set --secret ${PROJECT}:${k} <value>`);
  }
  if (field("secrets", "generate") === false) {
    for (const k of SECRET_KEYS) {
      if (!provided.includes(k)) fail([k], `is required because ${PROJECT}:secrets.generate is false; set it: pulumi config set --secret ${PROJECT}:${k} <value> (or set secrets.generate: true)`);
    }
  }

  // Patroni timing: loop_wait + 2·retry_timeout must stay 2 s under ttl. A primary cut off from
  // etcd gives up (demotes) after loop_wait + 2·retry_timeout; its leader key expires after ttl,
  // and only then may a replica be promoted. The 2 s are the margin that keeps the two apart.
  const [ttl, loopWait, retryTimeout] = [field("patroni", "ttl"), field("patroni", "loopWait"), field("patroni", "retryTimeout")];
  if (ttl !== undefined && loopWait !== undefined && retryTimeout !== undefined && loopWait + 2 * retryTimeout > ttl - 2)
    fail(["patroni"], `loopWait + 2·retryTimeout = ${loopWait} + 2·${retryTimeout} = ${loopWait + 2 * retryTimeout} exceeds ttl − 2 = ${ttl - 2}: the 2 s margin is what lets a primary cut off from etcd demote itself before its leader key expires and a replica is promoted; lower loopWait/retryTimeout or raise ttl`);

  const appUser = field("postgresql", "appUser");
  const appUserWhy = appUser === undefined ? undefined : appUserProblem(appUser);
  if (appUserWhy) fail(["postgresql", "appUser"], appUserWhy);
  const database = field("postgresql", "database");
  const databaseWhy = database === undefined ? undefined : databaseProblem(database);
  if (databaseWhy) fail(["postgresql", "database"], databaseWhy);
  const backupEnabled = field("backup", "enabled") === true;
  const monitoringEnabled = field("monitoring", "enabled") === true;
  if (field("backup", "replicasFrom") === "repository" && !(backupEnabled && field("backup", "replicasUseRepository") === true))
    fail(["backup", "replicasFrom"], `"repository" needs backup.enabled: true and backup.replicasUseRepository: true (a replica made from a backup replays the WAL written since that backup from the repository); set both, or use "leader"`);
  if (backupEnabled && field("secrets", "generate") === false && raw[BACKUP_PASSPHRASE] === undefined)
    fail([BACKUP_PASSPHRASE], `is required because backup.enabled is true and ${PROJECT}:secrets.generate is false; set it: pulumi config set --secret ${PROJECT}:${BACKUP_PASSPHRASE} <value> (keep it: the repository cannot be read without it)`);
  const parameters: Record<string, string | number | boolean> = {};
  const seenParameter = new Map<string, string>();
  for (const [param, value] of Object.entries(field("postgresql", "parameters") ?? {})) {
    const lower = param.toLowerCase();
    const problem = parameterProblem(lower, value);
    if (problem) fail(["postgresql", "parameters", param], problem);
    else if (backupEnabled && BACKUP_OWNED_PARAMETERS.includes(lower)) fail(["postgresql", "parameters", param], `is set by pgcluster while backup.enabled is true (WAL archiving)${lower === "archive_timeout" ? "; use backup.archiveTimeout" : ""}; remove it`);
    else if (seenParameter.has(lower)) fail(["postgresql", "parameters", param], `is given twice (as ${JSON.stringify(seenParameter.get(lower))} too); parameter names are case-insensitive`);
    seenParameter.set(lower, param);
    parameters[lower] = value;
  }

  const [poolSize, maxClientConn] = [field("pgbouncer", "defaultPoolSize"), field("pgbouncer", "maxClientConn")];
  if (poolSize !== undefined && maxClientConn !== undefined && poolSize > maxClientConn)
    fail(["pgbouncer", "defaultPoolSize"], `(${poolSize}) exceeds maxClientConn (${maxClientConn})`);

  /** A list of source ranges: no single one the whole internet or a public range wider than /8, nor all of them together. */
  const sourceRanges = (path: PropertyKey[], list: string[] | undefined, what: string, hint = "list the ranges that need it") => {
    if (!list) return;
    list.forEach((r, i) => {
      const prefix = parseCidr(r)!.prefix;
      if (prefix === 0) fail([...path, i], `is ${r}: ${what} from the whole internet is refused; ${hint}`);
      else if (prefix < 8 && !isPrivateCidr(r)) fail([...path, i], `is ${r}, public addresses wider than a /8: ${what} from that much of the internet is refused; ${hint}`);
    });
    if (cidrsCoverEverything(list) && !list.some((r) => parseCidr(r)!.prefix === 0))
      fail(path, `together (${list.join(", ")}) cover the whole IPv4 internet: ${what} from everywhere is refused; ${hint}`);
  };
  sourceRanges(["network", "clientCidrs"], field("network", "clientCidrs"), "reaching the database ports (5000-5003)");
  sourceRanges(["network", "adminCidrs"], field("network", "adminCidrs"), "reaching HAProxy stats (8404)");
  const networkCidr = field("network", "cidr");
  const standby = ok("standby") ? c.standby : undefined;
  if (standby) {
    if (backupEnabled && !standby.promoted)
      fail(["backup", "enabled"], `is true, but this cluster is a standby (standby.primaryStack ${standby.primaryStack}): its leader is not a primary, so it archives nothing, and its repository would be the primary's; set backup.enabled: false, and enable it with the promotion (standby.promoted: true; README: Standby cluster)`);
    if (standby.primaryStack === ctx.stack || standby.primaryStack.endsWith(`/${ctx.stack}`))
      fail(["standby", "primaryStack"], `names this stack (${ctx.stack}); a standby replicates another stack's cluster`);
    if (ok("standbyClusters") && c.standbyClusters.length > 0)
      fail(["standbyClusters"], `is set on a standby cluster: cascading standby clusters are not supported; declare the standby of the primary cluster instead`);
  }
  const standbyClusters = ok("standbyClusters") ? c.standbyClusters : [];
  standbyClusters.forEach((s, i) => {
    if (ok("clusterName") && s.clusterName === c.clusterName) fail(["standbyClusters", i, "clusterName"], `is this cluster's own name; a standby cluster has a name of its own`);
    if (standbyClusters.findIndex((o) => o.clusterName === s.clusterName) !== i) fail(["standbyClusters", i, "clusterName"], `"${s.clusterName}" is listed twice`);
    sourceRanges(["standbyClusters", i, "cidrs"], s.cidrs, "replication");
  });

  const caGenerations = field("tls", "caGenerations");
  if (caGenerations && new Set(caGenerations).size !== caGenerations.length) fail(["tls", "caGenerations"], `lists a generation twice`);
  const [caHours, certHours, earlyHours] = [field("tls", "caValidityHours"), field("tls", "certValidityHours"), field("tls", "earlyRenewalHours")];
  if (earlyHours !== undefined && certHours !== undefined && earlyHours >= certHours)
    fail(["tls", "earlyRenewalHours"], `(${earlyHours}) must be less than certValidityHours (${certHours})`);
  if (certHours !== undefined && caHours !== undefined && certHours > caHours)
    fail(["tls", "certValidityHours"], `(${certHours}) exceeds caValidityHours (${caHours}); a certificate cannot outlive the CA that signed it`);

  // Hosts: derived from gcp, or the static inventory. `hostsKnown`: every input parsed.
  const hosts: HostSpec[] = [];
  let hostsKnown = false;
  if (ok("provider") && c.provider === "gcp") {
    if (raw.gcp === undefined) fail(["gcp"], `is required when provider is gcp (project, region, zones, sshSourceRanges)`);
    if (raw.hosts !== undefined) fail(["hosts"], `is only for provider static; with provider gcp the hosts are created from ${PROJECT}:gcp`);
    const project = field("gcp", "project");
    if (backupEnabled && project !== undefined && ok("clusterName")) {
      const problem = bucketNameProblem(backupBucketName(project, c.clusterName));
      if (problem) fail(["clusterName"], problem);
    }
    if (!given("ssh", "publicKey")) fail(["ssh", "publicKey"], `is required for provider gcp (it is put on the instances); set it to your ssh-ed25519 public key`);
    if (ok("clusterName") && c.clusterName.length > GCP_MAX_CLUSTER_NAME)
      fail(["clusterName"], `has ${c.clusterName.length} characters; with provider gcp at most ${GCP_MAX_CLUSTER_NAME}: the nodes' service account id "${c.clusterName}-nodes" may have at most 30 characters`);
    const [region, zones, bastionCidr] = [field("gcp", "region"), field("gcp", "zones"), field("gcp", "bastionCidr")];
    if (region !== undefined && zones) {
      const known = GCP_ZONES[region];
      zones.forEach((zn, i) => {
        if (!known.includes(zn)) fail(["gcp", "zones", i], `${JSON.stringify(zn)} is not a zone of region ${region}; its zones are ${known.join(", ")} (list of ${GCP_ZONES_TAKEN}, model/gcpZones.ts)`);
      });
    }
    if (zones && new Set(zones).size !== zones.length) fail(["gcp", "zones"], `lists a zone twice`);
    // Balancers go round-robin over the zones like every node: with one zone, a zone outage
    // would take every balancer, and the internal load balancer in front of them with it.
    const balancerNodes = field("gcp", "balancerNodes");
    if (zones && balancerNodes !== undefined && balancerNodes >= 2 && new Set(zones).size < 2)
      fail(["gcp", "zones"], `lists one zone, so the ${balancerNodes} balancers (gcp.balancerNodes) would all be in it and one zone outage would take every one: list at least two zones of the region, or set gcp.balancerNodes: 1`);
    if (given("network", "floatingAddress"))
      fail(["network", "floatingAddress"], `is for provider static (keepalived on the balancers); on GCP clients dial the internal load balancer: set gcp.loadBalancerAddress to choose its address`);
    const lbAddress = field("gcp", "loadBalancerAddress");
    if (lbAddress !== undefined && networkCidr !== undefined) {
      if (!ipInCidr(lbAddress, networkCidr)) fail(["gcp", "loadBalancerAddress"], `${lbAddress} is outside network.cidr ${networkCidr}: the internal load balancer's address is reserved in the nodes' subnet`);
      else if (gcpReservedAddresses(networkCidr).includes(lbAddress)) fail(["gcp", "loadBalancerAddress"], `${lbAddress} is one of the four addresses GCP reserves in network.cidr ${networkCidr} (${gcpReservedAddresses(networkCidr).join(", ")}: network, gateway, second-to-last, broadcast); pick another`);
    }
    if (networkCidr !== undefined && bastionCidr !== undefined && cidrsOverlap(networkCidr, bastionCidr))
      fail(["gcp", "bastionCidr"], `${bastionCidr} overlaps network.cidr ${networkCidr}; pick a separate range`);
    sourceRanges(["gcp", "sshSourceRanges"], field("gcp", "sshSourceRanges"), "SSH", "use your office/VPN range or IAP's 35.235.240.0/20");
    if (ok("gcp", "clusterName", "ssh") && c.gcp) {
      const g = c.gcp;
      const zone = (i: number) => g.zones[i % g.zones.length];
      const base = { sshUser: c.ssh.user, sshPort: c.ssh.port };
      if (g.dbNodesLeaving >= g.dbNodes)
        fail(["gcp", "dbNodesLeaving"], `is ${g.dbNodesLeaving} of ${g.dbNodes} database nodes: at least one must stay; the last ${g.dbNodesLeaving} are the ones decommissioned`);
      if (g.witnessNodesLeaving > g.witnessNodes)
        fail(["gcp", "witnessNodesLeaving"], `is ${g.witnessNodesLeaving}, but there are only ${g.witnessNodes} witnesses (gcp.witnessNodes)`);
      // The last ones leave: lowering dbNodes (witnessNodes) by as many afterwards deletes exactly them.
      const leaving = (i: number, n: number, out: number) => (i >= n - out ? { leaving: true } : {});
      for (let i = 0; i < g.dbNodes; i++)
        hosts.push({ ...base, name: `${c.clusterName}-db-${i + 1}`, roles: ["etcd", "postgres"], zone: zone(i), dataDevice: "/dev/disk/by-id/google-pgdata", kind: "db", ...leaving(i, g.dbNodes, g.dbNodesLeaving) });
      for (let i = 0; i < g.witnessNodes; i++)
        hosts.push({ ...base, name: `${c.clusterName}-witness-${i + 1}`, roles: ["etcd"], zone: zone(g.dbNodes + i), kind: "witness", ...leaving(i, g.witnessNodes, g.witnessNodesLeaving) });
      for (let i = 0; i < g.balancerNodes; i++)
        hosts.push({ ...base, name: `${c.clusterName}-lb-${i + 1}`, roles: ["balancer"], zone: zone(i), kind: "balancer" });
      // monitoring.enabled: one instance of its own with role monitoring only (what a static
      // inventory must give, hostOfItsOwn below, holds here by construction). Its zone is the last
      // of gcp.zones: with two or more, not the first, where db-1 (the bootstrap leader), lb-1 and
      // the bastion are, so that zone's outage leaves the monitor up to tell of it (Cloud NAT is
      // regional: Alertmanager's webhook still goes out). Like every node's, a change of gcp.zones
      // that moves it replaces the instance, and its samples with it.
      if (monitoringEnabled)
        hosts.push({ ...base, name: `${c.clusterName}-mon-1`, roles: ["monitoring"], zone: g.zones[g.zones.length - 1], kind: "monitoring" });
      // Derived names end in -db-N, -witness-N, -lb-N or -mon-1, so no clusterName makes a reserved one;
      // checked all the same, should the naming change.
      for (const h of hosts) {
        const reserved = reservedHostName(h.name);
        if (reserved) fail(["clusterName"], `gives host name "${h.name}", which is reserved: ${reserved}; pick another clusterName`);
      }
      hostsKnown = true;
    }
  } else if (ok("provider")) {
    if (raw.gcp !== undefined) fail(["gcp"], `is only for provider gcp; remove it or set provider: gcp`);
    if (given("backup", "bucket")) fail(["backup", "bucket"], `is only for provider gcp (the Cloud Storage bucket); a static inventory keeps its repository on the backup host`);
    if (ok("hosts") && (!c.hosts || c.hosts.length === 0)) fail(["hosts"], `is required for provider static: a list of {name, address, roles}`);
    // The host firewall admits SSH to static hosts only from adminCidrs: empty, the next apply
    // could not get in (the step's guard would refuse it on the host; say so here, before anything).
    if (field("firewall", "enabled") !== false && field("network", "adminCidrs")?.length === 0)
      fail(["network", "adminCidrs"], `is empty, but the host firewall (firewall.enabled) admits SSH to static hosts only from these ranges: add the range you apply from (e.g. your admin host as a /32), or set firewall.enabled: false to manage the hosts' firewall yourself`);
    if (ok("hosts") && c.hosts) {
      const hostKeys = field("ssh", "hostKeys");
      const seen = new Map<string, number>();
      c.hosts.forEach((h, i) => {
        if (!h.address) fail(["hosts", i, "address"], `host "${h.name}" has no address; static hosts need the IPv4 address to reach them`);
        else if (networkCidr !== undefined) {
          if (!ipInCidr(h.address, networkCidr)) fail(["hosts", i, "address"], `${h.address} of "${h.name}" is outside network.cidr ${networkCidr}; the nodes' firewall and pg_hba only admit that range`);
          else if (reservedAddresses(networkCidr).includes(h.address)) fail(["hosts", i, "address"], `${h.address} of "${h.name}" is the network or broadcast address of network.cidr ${networkCidr}, not a host address`);
        }
        if (hostKeys === "pinned" && !h.hostKey)
          fail(["hosts", i, "hostKey"], `host "${h.name}" has no SSH host key and ${PROJECT}:ssh.hostKeys is "pinned"; set it to the host's ed25519 key ("ssh-ed25519 AAAA…", from /etc/ssh/ssh_host_ed25519_key.pub, verified out of band), or set ssh.hostKeys: trust-on-first-use to record the first key seen`);
        // Only what has a membership to leave is decommissioned; a balancer or the backup host just goes.
        if (h.leaving && !h.roles.some((r) => r === "postgres" || r === "etcd"))
          fail(["hosts", i, "leaving"], `host "${h.name}" (${h.roles.join(", ")}) has no Patroni or etcd membership to leave: remove it from hosts instead`);
        // Node certificates carry the host name as CN and id: never one that pg_hba/pg_ident trust.
        const reserved = reservedHostName(h.name);
        if (reserved) fail(["hosts", i, "name"], `"${h.name}" is reserved: ${reserved}; call the host something else`);
        for (const [what, v] of [["name", h.name], ["address", h.address]] as const) {
          if (!v) continue;
          const prev = seen.get(`${what}:${v}`);
          if (prev !== undefined) fail(["hosts", i, what], `"${v}" is already used by hosts[${prev}]; every host needs its own ${what}`);
          else seen.set(`${what}:${v}`, i);
        }
      });
      const floating = field("network", "floatingAddress");
      const balancers = c.hosts.filter((h) => h.roles.includes("balancer")).map((h) => h.name);
      if (floating !== undefined) {
        const taken = c.hosts.findIndex((h) => h.address === floating);
        if (networkCidr !== undefined && !ipInCidr(floating, networkCidr))
          fail(["network", "floatingAddress"], `${floating} is outside network.cidr ${networkCidr}: the balancers carry it on the interface of their own addresses`);
        else if (networkCidr !== undefined && reservedAddresses(networkCidr).includes(floating))
          fail(["network", "floatingAddress"], `${floating} is the network or broadcast address of network.cidr ${networkCidr}, not a host address`);
        else if (taken >= 0) fail(["network", "floatingAddress"], `${floating} is hosts[${taken}]'s ("${c.hosts[taken].name}") own address; the floating address must be a free one that only the balancers carry`);
      } else if (balancers.length >= 2)
        fail(["network", "floatingAddress"], `is required with ${balancers.length} balancers (${balancers.join(", ")}): clients dial one address that keepalived moves to a healthy balancer; set it to a free address in network.cidr`);
      /** A role that needs exactly one host of its own while its feature is on, and none while off. */
      const listed = c.hosts;
      const hostOfItsOwn = (role: "backup" | "monitoring", enabled: boolean, o: { ownWhy: string; serves: string; oneWhy: string }) => {
        const withIt = listed.map((h, i) => ({ h, i })).filter(({ h }) => h.roles.includes(role));
        for (const { h, i } of withIt) {
          if (new Set(h.roles).size > 1) fail(["hosts", i, "roles"], `host "${h.name}" has role ${role} with ${h.roles.filter((r) => r !== role).join(", ")}: ${o.ownWhy}`);
          if (!enabled && ok(role)) fail(["hosts", i, "roles"], `host "${h.name}" has role ${role}, but ${role}.enabled is false; set ${role}.enabled: true, or remove the role`);
        }
        if (enabled && withIt.length !== 1)
          fail(["hosts"], withIt.length === 0
            ? `gives no ${role} host, but ${role}.enabled is true: add a host of its own with roles [${role}] (${o.serves})`
            : `gives ${withIt.length} ${role} hosts (${withIt.map(({ h }) => h.name).join(", ")}); ${o.oneWhy}: give role ${role} to one host`);
      };
      hostOfItsOwn("backup", backupEnabled, {
        ownWhy: "the backup repository must be a host of its own (a repository on a node that fails with it protects nothing)",
        serves: "pgBackRest's repository and TLS server", oneWhy: "pgcluster keeps one repository",
      });
      hostOfItsOwn("monitoring", monitoringEnabled, {
        ownWhy: "the monitoring host must be a host of its own (a monitor that fails with a node cannot tell about it)",
        serves: "Prometheus and Alertmanager", oneWhy: "one Prometheus watches the cluster",
      });
      if (ok("ssh")) {
        for (const h of c.hosts)
          hosts.push({ name: h.name, address: h.address, roles: [...new Set(h.roles)], sshUser: h.sshUser ?? c.ssh.user, sshPort: h.sshPort ?? c.ssh.port, dataDevice: h.dataDevice, hostKey: h.hostKey, kind: "static", ...(h.leaving ? { leaving: true } : {}) });
        hostsKnown = true;
      }
    }
  }
  if (raw.sshPrivateKey === undefined && !given("ssh", "privateKeyFile"))
    fail(["sshPrivateKey"], `is required to reach the hosts: pulumi config set --secret ${PROJECT}:sshPrivateKey < key (or set ${PROJECT}:ssh.privateKeyFile)`);

  if (hostsKnown && hosts.length > 0) {
    // What the cluster must have is counted without the hosts that are leaving.
    const count = (r: Role) => hosts.filter((h) => !h.leaving && h.roles.includes(r)).length;
    const where = c.provider === "gcp" ? ["gcp", "dbNodes"] : ["hosts"];
    const etcd = count("etcd");
    if (etcd < 3 || etcd % 2 === 0)
      fail(c.provider === "gcp" ? ["gcp", "witnessNodes"] : ["hosts"], `gives ${etcd} etcd member(s); etcd needs an odd number, at least 3, to keep quorum when one fails (gcp: dbNodes + witnessNodes)`);
    const db = count("postgres");
    if (db < 1) fail(where, `gives no database node; at least one host needs role postgres`);
    if (environment === "prod" && db < 2) fail(where, `gives ${db} database node(s); prod needs at least 2 so a failover has somewhere to go`);
    if (count("balancer") < 1) fail(where, `gives no balancer; at least one host needs role balancer (HAProxy on 5000/5001/5002)`);
    if (field("patroni", "synchronousMode") && db < 2) fail(["patroni", "synchronousMode"], `needs at least 2 database nodes`);
  }

  const restore = ok("restore") ? c.restore : undefined;
  if (restore) {
    if (ok("clusterName") && restore.confirm !== c.clusterName)
      fail(["restore", "confirm"], `must be this cluster's name (${JSON.stringify(c.clusterName)}) to confirm the restore: it destroys ${restore.to === "latest" ? "writes the archive does not hold" : `every write committed after ${restore.to}`}, every replica's data directory, and Patroni's state in etcd`);
    if (!backupEnabled && ok("backup")) fail(["restore"], `is set, but backup.enabled is false: there is no repository to restore from`);
    if (standby && !standby.promoted) fail(["restore"], `is set on a standby cluster that follows its primary: restore the primary cluster, or promote this one first`);
  }
  const standbyHost = ok("standby") ? c.standby?.host : undefined;
  const own = hosts.find((h) => h.address === standbyHost);
  if (standbyHost && own) fail(["standby", "host"], `${standbyHost} is this cluster's own host "${own.name}"; give the address the primary cluster's clients dial (its floating address or load balancer)`);

  if (problems.length) throw new ConfigError(problems, ctx.source);
  return {
    stack: ctx.stack, environment: environment!, clusterName: c.clusterName, provider: c.provider, gcp: c.gcp, hosts,
    network: c.network, ssh: c.ssh, apt: c.apt, firewall: c.firewall, patroni: c.patroni,
    postgresql: { ...c.postgresql, parameters }, logs: c.logs, pgbouncer: c.pgbouncer, haproxy: c.haproxy, keepalived: c.keepalived, packages: c.packages, tls: c.tls,
    backup: c.backup, standby: c.standby, restore: c.restore, standbyClusters: c.standbyClusters, monitoring: c.monitoring,
    secrets: { ...c.secrets, provided, backupPassphraseProvided: raw[BACKUP_PASSPHRASE] !== undefined },
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
