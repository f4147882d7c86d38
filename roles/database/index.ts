// database: what lives inside PostgreSQL (roles and their passwords, the application database,
// pgBouncer's auth function) and Patroni's live DCS settings. Runs on every database host; only
// the current primary acts, so it is correct whichever node leads.
import { tlsDir, ports, users } from "../paths";
import { render } from "../render";
import { StepScript } from "../script";
import { scramVerifier } from "../scram";
import type { Host, RoleContext } from "../types";
import { dcsConfig } from "../patroni";

export const ROLE = "database";

export function databaseStep(ctx: RoleContext, host: Host): StepScript {
  const sec = ctx.secrets;
  const pg = ctx.spec.postgresql;
  const role = (name: string, password: string, attrs: { login?: boolean; superuser?: boolean; replication?: boolean }) => ({
    name,
    verifier: scramVerifier(name, password),
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
      dcsJson: JSON.stringify(dcsConfig(ctx)),
      roles: [
        role(users.superuser, sec.superuserPassword, { superuser: true, replication: true }),
        role(users.replication, sec.replicationPassword, { replication: true }),
        role(users.rewind, sec.rewindPassword, {}),
        role(users.pgbouncerAuth, sec.pgbouncerAuthPassword, {}),
        role(pg.appUser, sec.appPassword, {}),
      ],
    }),
  );
}
