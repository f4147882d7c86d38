// database: what lives inside PostgreSQL (roles and their passwords, the application database,
// pgBouncer's auth function). Runs on every database host; only the current primary acts, so it
// is correct whichever node leads.
import { following } from "../standby";
import { tlsDir, ports, users } from "../../model/identities";
import { StepBuilder } from "../step";
import { saltName, scramVerifier, type RolePassword } from "../scram";
import { stepId } from "../types";
import type { Host, RoleContext } from "../types";
import type { RoleUnit } from "../role";
import { withRole } from "../hosts";
import { dumpHosts, PRELOADED_LIBRARIES, ROLE as PATRONI } from "../patroni";

export const ROLE = "database";

export const database: RoleUnit = {
  name: ROLE,
  hosts: (spec) => withRole(spec, "postgres"),
  // Once every node runs under Patroni (whichever leads, its step acts).
  after: (spec) => withRole(spec, "postgres").map((h) => stepId(h.name, PATRONI)),
  step: databaseStep,
};

function databaseStep(ctx: RoleContext, _host: Host): StepBuilder {
  const sec = ctx.secrets;
  const pg = ctx.spec.postgresql;
  const role = (name: string, password: RolePassword, attrs: { login?: boolean; superuser?: boolean; replication?: boolean }) => ({
    name,
    verifier: scramVerifier(sec[password], sec[saltName(password)]),
    login: attrs.login ?? true,
    superuser: attrs.superuser ?? false,
    replication: attrs.replication ?? false,
  });
  return new StepBuilder().shell(ROLE, "database.sh", {
    cluster: ctx.spec.clusterName,
    standbyOf: following(ctx.spec) ? ctx.spec.standby!.primaryStack : undefined,
    tls: tlsDir.patroni,
    ports,
    database: pg.database,
    appUser: pg.appUser,
    authUser: users.pgbouncerAuth,
    // Each preloaded library here is an extension of the same name (pg_stat_statements).
    extensions: PRELOADED_LIBRARIES,
    dumpUser: dumpHosts(ctx).length ? users.dump : undefined,
    monitorUser: ctx.spec.monitoring.enabled ? users.monitor : undefined,
    roles: [
      role(users.superuser, "superuserPassword", { superuser: true, replication: true }),
      role(users.replication, "replicationPassword", { replication: true }),
      role(users.rewind, "rewindPassword", {}),
      role(users.pgbouncerAuth, "pgbouncerAuthPassword", {}),
      role(pg.appUser, "appPassword", {}),
    ],
  });
}
