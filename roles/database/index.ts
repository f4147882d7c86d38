// database: what lives inside PostgreSQL (roles and their passwords, the application database,
// pgBouncer's auth function) and Patroni's live DCS settings. Runs on every database host; only
// the current primary acts, so it is correct whichever node leads.
import { tlsDir, ports, users } from "../../model/identities";
import { render } from "../render";
import { StepScript } from "../script";
import { saltName, scramVerifier, type RolePassword } from "../scram";
import { postgresParameterName, postgresParameterValue } from "../quote";
import type { Host, RoleContext } from "../types";
import { dcsConfig } from "../patroni";

export const ROLE = "database";

/**
 * Patroni's live configuration, as JSON. Patroni writes its parameters into postgresql.conf as
 * `name = 'value'`, the name unquoted: a name that is not a parameter name, or a value with a
 * line break, is refused here (the plan does not compile).
 */
function dcsJson(ctx: RoleContext): string {
  const dcs = dcsConfig(ctx) as { postgresql: { parameters: Record<string, unknown> } };
  for (const [k, v] of Object.entries(dcs.postgresql.parameters)) {
    postgresParameterName(k, "a key of postgresql.parameters");
    postgresParameterValue(v, `postgresql.parameters.${k}`);
  }
  return JSON.stringify(dcs);
}

export function databaseStep(ctx: RoleContext, host: Host): StepScript {
  const sec = ctx.secrets;
  const pg = ctx.spec.postgresql;
  const role = (name: string, password: RolePassword, attrs: { login?: boolean; superuser?: boolean; replication?: boolean }) => ({
    name,
    verifier: scramVerifier(sec[password], sec[saltName(password)]),
    login: attrs.login ?? true,
    superuser: attrs.superuser ?? false,
    replication: attrs.replication ?? false,
  });
  return new StepScript(`${host.name}/${ROLE}`).sh(
    render(ROLE, "database.sh", {
      cluster: ctx.spec.clusterName,
      tls: tlsDir.patroni,
      ports,
      database: pg.database,
      appUser: pg.appUser,
      authUser: users.pgbouncerAuth,
      restApiUser: users.restApi,
      restApiPassword: sec.restApiPassword,
      dcsJson: dcsJson(ctx),
      roles: [
        role(users.superuser, "superuserPassword", { superuser: true, replication: true }),
        role(users.replication, "replicationPassword", { replication: true }),
        role(users.rewind, "rewindPassword", {}),
        role(users.pgbouncerAuth, "pgbouncerAuthPassword", {}),
        role(pg.appUser, "appPassword", {}),
      ],
    }),
  );
}
