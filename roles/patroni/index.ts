// patroni: runs PostgreSQL, elects the leader through etcd, serves health on its REST API.
import { tlsDir, PATRONI_CONFIG, PG_BIN, PG_DATA, ports, users } from "../../model/identities";
import { render } from "../render";
import { q, StepScript } from "../script";
import { hbaName, ipv4Cidr } from "../quote";
import type { Host, RoleContext } from "../types";
import { withRole } from "../hosts";
import { etcdctlFunctions } from "../etcd";
import { nodeTlsFiles } from "../tls";
import { CLIENT_CERTS } from "../../model/identities";

export const ROLE = "patroni";

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
    "local all all scram-sha-256",
    `hostssl replication ${users.replication} ${cidr} cert`,
    `hostssl replication ${users.replication} 127.0.0.1/32 cert`,
    `hostssl all ${pooledUsers(ctx).map((u) => hbaName(u, "a pooled user")).join(",")} 127.0.0.1/32 cert map=${POOLER_MAP}`,
    "hostssl all all 127.0.0.1/32 scram-sha-256",
    `hostssl all all ${cidr} scram-sha-256`,
    "hostnossl all all 0.0.0.0/0 reject",
    "host all all 0.0.0.0/0 reject",
  ];
}

/** Patroni's dynamic (DCS) configuration: bootstrap value and what the database step keeps live. */
export function dcsConfig(ctx: RoleContext): Record<string, unknown> {
  const p = ctx.spec.patroni;
  return {
    ttl: p.ttl,
    loop_wait: p.loopWait,
    retry_timeout: p.retryTimeout,
    maximum_lag_on_failover: p.maximumLagOnFailover,
    synchronous_mode: p.synchronousMode,
    failsafe_mode: p.failsafeMode,
    postgresql: {
      use_pg_rewind: true,
      use_slots: true,
      parameters: {
        wal_level: "replica",
        hot_standby: "on",
        max_connections: 200,
        max_wal_senders: 10,
        max_replication_slots: 10,
        wal_keep_size: "1GB",
        wal_log_hints: "on",
        ...Object.fromEntries(Object.entries(ctx.spec.postgresql.parameters).map(([k, v]) => [k, typeof v === "boolean" ? (v ? "on" : "off") : v])),
      },
    },
  };
}

export function patroniStep(ctx: RoleContext, host: Host): StepScript {
  const tls = tlsDir.patroni;
  const etcd = withRole(ctx, "etcd");
  const s = new StepScript(`${host.name}/${ROLE}`);
  s.packages("patroni", "python3-psycopg2", "python3-etcd", "etcd-client");
  s.dir("/etc/patroni", "postgres", "postgres", "0750");
  const certs = ["run:pgc_reload_postgres"];
  const own = { owner: "postgres", group: "postgres" };
  nodeTlsFiles(s, ctx, host, { dir: tls, owner: "postgres", notify: certs });
  s.file({ path: `${tls}/replication.crt`, content: ctx.pki.replication.cert, ...own, notify: certs });
  s.file({ path: `${tls}/replication.key`, content: ctx.pki.replication.key, ...own, mode: "0600", secret: true, notify: certs });
  const launcher = "/usr/local/lib/pgcluster/pgcluster-patroni";
  s.file({ path: launcher, mode: "0755", content: render(ROLE, "pgcluster-patroni.py", {}), notify: ["run:pgc_patroni_agent_restart:patroni"] });
  s.file({
    path: "/etc/systemd/system/patroni.service.d/pgcluster.conf",
    content: render(ROLE, "patroni.service.conf", { launcher }),
    notify: ["daemon-reload", "run:pgc_patroni_agent_restart:patroni"],
  });
  // Not validated on the host with `patroni --validate-config`: in 3.0.2 it probes the listen
  // ports and fails whenever Patroni is already running. The tests run it offline instead.
  s.file({
    path: PATRONI_CONFIG,
    ...own,
    mode: "0600",
    secret: true,
    notify: ["reload:patroni"],
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
      pgIdent: pooledUsers(ctx).map((u) => `${POOLER_MAP} ${CLIENT_CERTS.pooler} ${hbaName(u, "a pooled user")}`),
      dataDir: PG_DATA,
      binDir: PG_BIN,
      watchdog: ctx.spec.patroni.watchdog,
    }),
  });
  s.sh(etcdctlFunctions(ctx, tls));
  s.sh(render(ROLE, "patroni.sh", {
    tls, ports, name: host.name, restApiUser: users.restApi, restApiPassword: ctx.secrets.restApiPassword,
  }));
  s.handlers();
  s.sh(`pgc_wait 120 "etcd quorum on ${etcd.length} members" pgc_etcd_quorum`);
  s.service("patroni");
  // A new replica clones the primary first (pg_basebackup): allow for it.
  s.sh(`pgc_wait 600 ${q(`PostgreSQL on ${host.name} running under Patroni`)} pgc_patroni_health`);
  return s;
}
