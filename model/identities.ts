// Identities, one home each: paths on the hosts, ports, the PostgreSQL roles pgcluster manages
// and the client certificates' names. The ground floor: every layer reads them from here.
// Where each role keeps its TLS material on a host. Each service gets its own copy, owned by
// its own user, so a change to one role's files restarts only that role's service.
export const tlsDir = {
  etcd: "/etc/etcd/pki",
  patroni: "/etc/patroni/pki",
  pgbouncer: "/etc/pgbouncer/pki",
  haproxy: "/etc/haproxy/pki",
  pgbackrest: "/etc/pgbackrest/pki",
} as const;

export const PG_VERSION = 15;
export const PG_BIN = `/usr/lib/postgresql/${PG_VERSION}/bin`;
export const PG_DATA = `/var/lib/postgresql/${PG_VERSION}/main`;
export const PATRONI_CONFIG = "/etc/patroni/config.yml";
export const ETCD_DATA = "/var/lib/etcd/pgcluster";
/** Left by a host's decommission once Patroni and etcd have left (roles/decommission); a host in the plan has none. */
export const DECOMMISSIONED_MARKER = "/var/lib/pgcluster/decommissioned";
/** A point-in-time restore (local/restore.ts): its marker while under way, the data directory kept from before it. */
export const RESTORE = {
  marker: "/var/lib/pgcluster/restore-in-progress",
  aside: `${PG_DATA}.before-restore`,
  /** A restore from the stack config (Pulumi CLI): what its prepare step decided (timeline, system id). */
  plan: "/var/lib/pgcluster/restore-plan",
  /** The last restore finished on this node: its id and time (the same id never restores twice). */
  done: "/var/lib/pgcluster/restore-done",
};
/** pgBackRest's configuration (its default path; Debian's /etc/pgbackrest.conf is then not read). */
export const PGBACKREST_CONFIG = "/etc/pgbackrest/pgbackrest.conf";
/** The posix repository on the backup host. */
export const BACKUP_REPOSITORY = "/var/lib/pgbackrest";
/** The restore drill on the backup host: its scratch restores, its pgBackRest config, its last result. */
export const DRILL = {
  dir: "/var/lib/pgcluster-drill",
  /** gcp: the scratch copy on a database node's data disk (the boot disk is small). */
  nodeDir: "/var/lib/postgresql/pgcluster-drill",
  config: "/etc/pgbackrest/drill.conf",
  script: "/usr/local/lib/pgcluster/restore-drill",
  result: "/var/lib/pgcluster-drill/last.json",
  unit: "pgcluster-restore-drill.service",
  timer: "pgcluster-restore-drill.timer",
  /** The scratch server listens on a socket in its own directory only; the port names the socket. */
  port: 5499,
};
/** The daily logical dump on the backup host: its files, its script, units and last result. */
export const DUMP = {
  dir: "/var/lib/pgcluster-dumps",
  /** gcp: where a database node writes a dump before it goes to the bucket (the data disk). */
  nodeDir: "/var/lib/postgresql/pgcluster-dumps",
  /** gcp: the dumps' prefix in the bucket (a lifecycle rule keeps them backup.retention.dumpDays). */
  bucketPrefix: "dumps/",
  script: "/usr/local/lib/pgcluster/pgcluster-dump",
  result: "/var/lib/pgcluster-dumps/last.json",
  unit: "pgcluster-dump.service",
  timer: "pgcluster-dump.timer",
  /** pg_ident map admitting the backup host's certificate as users.dump. */
  map: "dump",
};
/** Where Debian's prometheus-node-exporter reads *.prom files (its textfile collector). */
export const TEXTFILE_DIR = "/var/lib/prometheus/node-exporter";
/**
 * The exporters on every host (monitoring.enabled, roles/exporters): their TLS files and web
 * configuration (owned by the Debian packages' user prometheus), and pgcluster's textfile writer.
 */
export const EXPORTERS = {
  tlsDir: "/etc/prometheus/pki",
  webConfig: "/etc/prometheus/pgcluster-web.yml",
  textfileScript: "/usr/local/lib/pgcluster/textfile-metrics",
  textfileUnit: "pgcluster-textfile-metrics.service",
  textfileTimer: "pgcluster-textfile-metrics.timer",
};

export const ports = {
  etcdClient: 2379,
  etcdPeer: 2380,
  postgres: 5432,
  pgbouncer: 6432,
  patroni: 8008,
  writer: 5000,
  readers: 5001,
  writerDirect: 5002,
  /**
   * Readers without pooler (replicas' PostgreSQL, session semantics): the session endpoint of the
   * read pool, for clients that use named prepared statements (5001 is pgBouncer's transaction pooling).
   */
  readersDirect: 5003,
  /** HAProxy's stats page: authenticated (users.haproxyStats), network.adminCidrs only. */
  stats: 8404,
  /** pgBackRest's TLS server (on the backup host and on every database node). */
  pgbackrest: 8432,
  /**
   * HAProxy's own health answer (HTTP GET /health, 200 while HAProxy serves), for a load balancer
   * in front of the balancers: GCP's internal load balancer asks it (infra/gcp.ts).
   */
  balancerHealth: 8405,
  /** Monitoring (issue #14): exporters over TLS with basic auth, reachable from the monitoring host only. */
  nodeExporter: 9100,
  postgresExporter: 9187,
  /** HAProxy's built-in Prometheus exporter (USE_PROMEX): TLS with the node certificate, the metrics login. */
  haproxyExporter: 8406,
  /** Prometheus's web UI, API and console pages on the monitoring host: TLS, the metrics login, network.adminCidrs. */
  prometheus: 9090,
  /** Alertmanager on the monitoring host: loopback only (Prometheus and the status command ask Prometheus). */
  alertmanager: 9093,
} as const;

/** The path HAProxy answers on ports.balancerHealth (its monitor-uri). */
export const BALANCER_HEALTH_PATH = "/health";

export const users = {
  superuser: "postgres",
  replication: "replicator",
  rewind: "rewind",
  pgbouncerAuth: "pgbouncer_auth",
  restApi: "patroni",
  /** HAProxy's stats page login (its password: secret statsPassword). Not a PostgreSQL role. */
  haproxyStats: "stats",
  /** The logical dump's login (pg_read_all_data), by the backup host's certificate only. */
  dump: "pgcluster_dump",
  /**
   * postgres_exporter's login (pg_monitor), through the local socket by peer authentication: the
   * exporter runs as the OS user of the same name. With monitoring.enabled only.
   */
  monitor: "prometheus",
} as const;

/** PostgreSQL roles pgcluster creates and owns (users minus the REST API's and the stats page's). */
export const MANAGED_ROLES = [users.superuser, users.replication, users.rewind, users.pgbouncerAuth, users.dump, users.monitor] as const;

/**
 * Client certificates, by id, with their CN. replication: CN is the PostgreSQL role, pg_hba
 * "cert" admits it as the replication user. pooler: pgBouncer's server logins; pg_ident maps
 * it to the users pgcluster manages, so no password is needed between pgBouncer and
 * PostgreSQL and a password rotation cannot break a pooled session.
 */
export const CLIENT_CERTS = { replication: "replicator", pooler: "pgbouncer" } as const;

/** The Debian packages of each pinnable package set (packages.versions): one source version each. */
export const PACKAGES_OF = {
  postgresql: ["postgresql-15", "postgresql-client-15", "libpq5"],
  patroni: ["patroni"],
  pgbouncer: ["pgbouncer"],
  etcd: ["etcd-server", "etcd-client"],
  haproxy: ["haproxy"],
} as const;

/** apt's preferences file holding packages.versions (roles/common writes it, roles/update moves to it). */
export const APT_PINS_FILE = "/etc/apt/preferences.d/pgcluster-versions";
