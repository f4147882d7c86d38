// pgbouncer: the pooler on every database node, TLS on both sides, client logins checked with
// auth_query through a dedicated unprivileged user, server logins by client certificate.
import { tlsDir, ports, users } from "../../model/identities";
import { render } from "../render";
import type { Host, RoleContext } from "../types";
import { daemonReload, reload as reloadOf, restart, StepBuilder } from "../step";
import { stepId } from "../types";
import type { RoleUnit } from "../role";
import { withRole } from "../hosts";
import { nodeTlsFiles } from "../tls";
import { ROLE as PATRONI } from "../patroni";
import { ROLE as DATABASE } from "../database";

export const ROLE = "pgbouncer";

export const pgbouncer: RoleUnit = {
  name: ROLE,
  hosts: (spec) => withRole(spec, "postgres"),
  // After the database step on every node: its auth user, auth function and the pooled roles
  // must exist before it serves, and a changed auth-user password is in PostgreSQL before its file.
  after: (spec, host) => [stepId(host.name, PATRONI), ...withRole(spec, "postgres").map((d) => stepId(d.name, DATABASE))],
  step: pgbouncerStep,
};

function pgbouncerStep(ctx: RoleContext, host: Host): StepBuilder {
  const tls = tlsDir.pgbouncer;
  const b = ctx.spec.pgbouncer;
  const s = new StepBuilder();
  s.packages("pgbouncer");
  const reload = [reloadOf("pgbouncer")];
  const own = { owner: "postgres", group: "postgres" };
  nodeTlsFiles(s, ctx, host, { dir: tls, owner: "postgres", notify: reload });
  s.file({
    path: "/etc/pgbouncer/listen.ini",
    owner: "root",
    group: "postgres",
    mode: "0640",
    notify: [restart("pgbouncer")],
    content: render(ROLE, "listen.ini", { address: host.address, ports }),
  });
  s.file({
    path: "/etc/pgbouncer/pgbouncer.ini",
    owner: "root",
    group: "postgres",
    mode: "0640",
    notify: reload,
    content: render(ROLE, "pgbouncer.ini", {
      ports,
      tls,
      authUser: users.pgbouncerAuth,
      adminUser: users.superuser,
      poolMode: b.poolMode,
      defaultPoolSize: b.defaultPoolSize,
      reservePoolSize: b.reservePoolSize,
      maxClientConn: b.maxClientConn,
    }),
  });
  // Its own client certificate for server logins (pg_hba "cert", pg_ident maps it to the
  // pooled users): a password rotation then never touches a pooled server connection.
  s.file({ path: `${tls}/pooler.crt`, content: ctx.pki.pooler.cert, ...own, notify: reload });
  s.file({ path: `${tls}/pooler.key`, content: ctx.pki.pooler.key, ...own, mode: "0600", secret: true, notify: reload });
  // Only the auth user: its password serves the admin console (stats) logins.
  s.file({
    path: "/etc/pgbouncer/userlist.txt",
    ...own,
    mode: "0600",
    secret: true,
    notify: reload,
    content: render(ROLE, "userlist.txt", { authUser: users.pgbouncerAuth, authPassword: ctx.secrets.pgbouncerAuthPassword }),
  });
  s.file({
    path: "/etc/systemd/system/pgbouncer.service.d/pgcluster.conf",
    content: render(ROLE, "pgbouncer.service.conf", { nofile: Math.max(4096, 2 * b.maxClientConn + 1024) }),
    notify: [daemonReload, restart("pgbouncer")],
  });
  s.service("pgbouncer");
  return s;
}
