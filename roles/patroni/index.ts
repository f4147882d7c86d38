// patroni: runs PostgreSQL, elects the leader through etcd, serves health on its REST API.
import { DUMP, tlsDir, PATRONI_CONFIG, PG_BIN, PG_DATA, ports, users } from "../../model/identities";
import { render } from "../render";
import { daemonReload, reload, run, shellFn, StepBuilder } from "../step";
import { hbaName, ipv4, ipv4Cidr, postgresParameterName, postgresParameterValue } from "../quote";
import { stepId } from "../types";
import type { Host, RoleContext } from "../types";
import type { RoleUnit } from "../role";
import { bootstrapHost, withRole } from "../hosts";
import { etcdClientShell, ROLE as ETCD, shell as etcdShell } from "../etcd";
import { ROLE as POSTGRESQL } from "../postgresql";
import { nodeTlsFiles } from "../tls";
import { archiveParameters, replicaFromRepositoryCommand, restoreCommand, ROLE as PGBACKREST } from "../pgbackrest";
import { CLIENT_CERTS } from "../../model/identities";
import { following, primaryRepository, standbyClusterConfig, standbySlot } from "../standby";

export const ROLE = "patroni";

export const shell = {
  health: shellFn(`${ROLE}/patroni.sh`, "pgc_patroni_health"),
  reloadPostgres: shellFn(`${ROLE}/patroni.sh`, "pgc_reload_postgres"),
  agentRestart: shellFn(`${ROLE}/patroni.sh`, "pgc_patroni_agent_restart"),
  dcsSync: shellFn(`${ROLE}/dcs.sh`, "pgc_dcs_sync"),
};

/** The pg_ident map that admits pgBouncer's client certificate as the users it pools. */
export const POOLER_MAP = "pooler";

/** Users pgBouncer logs in as with its certificate: the ones pgcluster manages. */
function pooledUsers(ctx: RoleContext): string[] {
  return [ctx.spec.postgresql.appUser, users.pgbouncerAuth];
}

/**
 * pg_hba: TLS only, SCRAM for people and apps, client certificates for replication and for
 * pgBouncer on the node itself (its server logins then never depend on a password).
 */
export function pgHba(ctx: RoleContext): string[] {
  const cidr = ipv4Cidr(ctx.spec.network.cidr, "network.cidr");
  return [
    `local all ${users.superuser} peer`,
    // postgres_exporter (monitoring.enabled) runs as the OS user of its role's name.
    ...(ctx.spec.monitoring.enabled ? [`local all ${users.monitor} peer`] : []),
    "local all all scram-sha-256",
    `hostssl replication ${users.replication} ${cidr} cert`,
    `hostssl replication ${users.replication} 127.0.0.1/32 cert`,
    `hostssl all ${pooledUsers(ctx).map((u) => hbaName(u, "a pooled user")).join(",")} 127.0.0.1/32 cert map=${POOLER_MAP}`,
    // The daily logical dump: the backup host's certificate, as the dump's read-only role.
    ...dumpHosts(ctx).map((b) => `hostssl all ${users.dump} ${ipv4(b.address, "the backup host's address")}/32 cert map=${DUMP.map}`),
    "hostssl all all 127.0.0.1/32 scram-sha-256",
    `hostssl all all ${cidr} scram-sha-256`,
    "hostnossl all all 0.0.0.0/0 reject",
    "host all all 0.0.0.0/0 reject",
  ];
}

/** Backup hosts that take the logical dump (static inventories with backup on). */
export function dumpHosts(ctx: Pick<RoleContext, "spec" | "hosts">): Host[] {
  return ctx.spec.backup.enabled ? withRole(ctx, "backup") : [];
}

/** pg_ident: pgBouncer's certificate as the users it pools; the backup host's as the dump's role. */
export function pgIdent(ctx: Pick<RoleContext, "spec" | "hosts">): string[] {
  return [
    ...pooledUsers(ctx as RoleContext).map((u) => `${POOLER_MAP} ${CLIENT_CERTS.pooler} ${hbaName(u, "a pooled user")}`),
    ...dumpHosts(ctx).map((b) => `${DUMP.map} ${hbaName(b.name, "a host name")} ${users.dump}`),
  ];
}

/** What PostgreSQL logs besides errors, unless postgresql.parameters says otherwise. */
const LOGGED_EVENTS = {
  log_checkpoints: "on",
  log_lock_waits: "on",
  // Every temporary file, with its size: a query spilling to disk is a work_mem to look at.
  log_temp_files: 0,
};

/**
 * How long PostgreSQL's own connections (its WAL receiver above all) wait for an answer, or for
 * data sent to be acknowledged, before giving up: after that a replica or a standby cluster tries
 * the repository, then the primary again. Through a libpq service file named in Patroni's unit
 * (PGSERVICEFILE, PGSERVICE). Round trips between regions are well under 1 s.
 */
export const LIBPQ_SERVICE = { file: "/etc/patroni/pg_service.conf", name: "pgcluster", timeoutSeconds: 10 } as const;

/** Preloaded whatever the stack adds: pg_stat_statements (created by the database role). */
export const PRELOADED_LIBRARIES = ["pg_stat_statements"];

/**
 * PostgreSQL's own logging, pgcluster's (refused in postgresql.parameters): to stderr, which
 * Patroni's unit hands to the journal; one line prefix on every node for log aggregation.
 */
function loggingParameters(ctx: RoleContext): Record<string, string | number> {
  const pg = ctx.spec.postgresql;
  const extra = String(pg.parameters.shared_preload_libraries ?? "").split(",").map((l) => l.trim()).filter((l) => l !== "");
  return {
    shared_preload_libraries: [...new Set([...PRELOADED_LIBRARIES, ...extra])].join(","),
    log_min_duration_statement: pg.slowQueryMs,
    log_autovacuum_min_duration: pg.autovacuumLogMs,
    // Time (ms), [pid], then for sessions only key=value pairs, the form pgBadger and most
    // aggregators read (application names are the client's and may hold spaces).
    log_line_prefix: "%m [%p] %quser=%u,db=%d,app=%a,client=%h ",
    log_destination: "stderr",
    logging_collector: "off",
  };
}

/** Patroni's dynamic (DCS) configuration: the bootstrap value, and what every apply keeps live. */
export function dcsConfig(ctx: RoleContext): Record<string, unknown> {
  const p = ctx.spec.patroni;
  return {
    ttl: p.ttl,
    loop_wait: p.loopWait,
    retry_timeout: p.retryTimeout,
    maximum_lag_on_failover: p.maximumLagOnFailover,
    synchronous_mode: p.synchronousMode,
    failsafe_mode: p.failsafeMode,
    // A standby cluster: its leader streams from the primary cluster (removed: it is promoted).
    ...(following(ctx.spec) ? { standby_cluster: standbyClusterConfig(ctx.spec) } : {}),
    // The primary side: a permanent slot per standby cluster, kept by whichever node leads.
    ...(ctx.spec.standbyClusters.length ? { slots: Object.fromEntries(ctx.spec.standbyClusters.map((s) => [standbySlot(s.clusterName), { type: "physical" }])) } : {}),
    postgresql: {
      use_pg_rewind: true,
      use_slots: true,
      // A replica (or a node catching up after a failover) reads WAL it lacks from the repository.
      ...(ctx.spec.backup.enabled && ctx.spec.backup.replicasUseRepository ? { recovery_conf: { restore_command: restoreCommand(ctx.spec) } } : {}),
      parameters: {
        wal_level: "replica",
        hot_standby: "on",
        max_connections: 200,
        max_wal_senders: 10,
        max_replication_slots: 10,
        wal_keep_size: "1GB",
        wal_log_hints: "on",
        // Defaults a stack may override in postgresql.parameters.
        ...LOGGED_EVENTS,
        // WAL archiving to the backup repository, from whichever node is primary.
        ...(ctx.spec.backup.enabled ? archiveParameters(ctx.spec) : {}),
        ...Object.fromEntries(Object.entries(ctx.spec.postgresql.parameters).map(([k, v]) => [k, typeof v === "boolean" ? (v ? "on" : "off") : v])),
        ...loggingParameters(ctx),
      },
    },
  };
}

/**
 * The DCS configuration as JSON. Patroni writes its parameters into postgresql.conf as
 * `name = 'value'`, the name unquoted: a name that is not a parameter name, or a value with a
 * line break, is refused here (the plan does not compile).
 */
export function dcsJson(ctx: RoleContext): string {
  const dcs = dcsConfig(ctx) as { postgresql: { parameters: Record<string, unknown> } };
  for (const [k, v] of Object.entries(dcs.postgresql.parameters)) {
    postgresParameterName(k, "a key of postgresql.parameters");
    postgresParameterValue(v, `postgresql.parameters.${k}`);
  }
  return JSON.stringify(dcs);
}

/** The shell a step needs to check, restart or hand over this node's Patroni (and the etcd lock it takes). */
export function patroniFunctions(s: StepBuilder, ctx: RoleContext, host: Host): void {
  etcdClientShell(s, ctx, tlsDir.patroni);
  s.shell(ROLE, "patroni.sh", {
    tls: tlsDir.patroni, ports, name: host.name, restApiUser: users.restApi, restApiPassword: ctx.secrets.restApiPassword,
  });
}

export const patroni: RoleUnit = {
  name: ROLE,
  hosts: (spec) => withRole(spec, "postgres"),
  after(spec, host) {
    // Every etcd member configured before any Patroni starts; the bootstrap member before the
    // replicas, so exactly one node runs initdb and the others clone it.
    const first = bootstrapHost(spec);
    return [
      stepId(host.name, POSTGRESQL),
      // archive_command runs pgBackRest: configured before this node's PostgreSQL starts.
      ...(spec.backup.enabled || primaryRepository(spec) ? [stepId(host.name, PGBACKREST)] : []),
      ...withRole(spec, "etcd").map((h) => stepId(h.name, ETCD)),
      ...(first && first.name !== host.name ? [stepId(first.name, ROLE)] : []),
    ];
  },
  step: patroniStep,
};

function patroniStep(ctx: RoleContext, host: Host): StepBuilder {
  const tls = tlsDir.patroni;
  const etcd = withRole(ctx, "etcd");
  const s = new StepBuilder();
  s.packages("patroni", "python3-psycopg2", "python3-etcd", "etcd-client");
  s.dir("/etc/patroni", "postgres", "postgres", "0750");
  const certs = [run(shell.reloadPostgres)];
  const own = { owner: "postgres", group: "postgres" };
  nodeTlsFiles(s, ctx, host, { dir: tls, owner: "postgres", notify: certs });
  s.file({ path: `${tls}/replication.crt`, content: ctx.pki.replication.cert, ...own, notify: certs });
  s.file({ path: `${tls}/replication.key`, content: ctx.pki.replication.key, ...own, mode: "0600", secret: true, notify: certs });
  const launcher = "/usr/local/lib/pgcluster/pgcluster-patroni";
  s.file({ path: launcher, mode: "0755", content: render(ROLE, "pgcluster-patroni.py", {}), notify: [run(shell.agentRestart, "patroni")] });
  // Read at every connection attempt: a change needs no restart (the unit's change does).
  s.file({
    path: LIBPQ_SERVICE.file,
    content: render(ROLE, "pg_service.conf", { service: LIBPQ_SERVICE.name, connectTimeoutSeconds: LIBPQ_SERVICE.timeoutSeconds, tcpUserTimeoutMs: LIBPQ_SERVICE.timeoutSeconds * 1000 }),
  });
  s.file({
    path: "/etc/systemd/system/patroni.service.d/pgcluster.conf",
    content: render(ROLE, "patroni.service.conf", { launcher, serviceFile: LIBPQ_SERVICE.file, service: LIBPQ_SERVICE.name }),
    notify: [daemonReload, run(shell.agentRestart, "patroni")],
  });
  // Not validated on the host with `patroni --validate-config`: in 3.0.2 it probes the listen
  // ports and fails whenever Patroni is already running. The tests run it offline instead.
  s.file({
    path: PATRONI_CONFIG,
    ...own,
    mode: "0600",
    secret: true,
    notify: [reload("patroni")],
    content: render(ROLE, "config.yml", {
      scope: ctx.spec.clusterName,
      name: host.name,
      address: host.address,
      ports,
      tls,
      users,
      restApiUser: users.restApi,
      restApiPassword: ctx.secrets.restApiPassword,
      superuserPassword: ctx.secrets.superuserPassword,
      replicationPassword: ctx.secrets.replicationPassword,
      rewindPassword: ctx.secrets.rewindPassword,
      etcdHosts: etcd.map((h) => `${h.address}:${ports.etcdClient}`),
      dcs: dcsConfig(ctx),
      pgHba: pgHba(ctx),
      pgIdent: pgIdent(ctx),
      dataDir: PG_DATA,
      binDir: PG_BIN,
      watchdog: ctx.spec.patroni.watchdog,
      replicaFromRepository: ctx.spec.backup.enabled && ctx.spec.backup.replicasFrom === "repository" ? replicaFromRepositoryCommand(ctx.spec) : undefined,
    }),
  });
  patroniFunctions(s, ctx, host);
  s.handlers();
  s.wait(120, `etcd quorum on ${etcd.length} members`, etcdShell.quorum);
  s.call(etcdShell.requireOneCluster);
  s.service("patroni");
  // A new replica clones the primary first (pg_basebackup): allow for it.
  s.wait(600, `PostgreSQL on ${host.name} running under Patroni`, shell.health);
  // The cluster's live settings (every node applies them; the first to run changes them).
  s.shell(ROLE, "dcs.sh", { configFile: PATRONI_CONFIG, dcsJson: dcsJson(ctx) });
  s.call(shell.dcsSync);
  return s;
}
