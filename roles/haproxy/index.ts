// haproxy: the entry points on the balancer host(s); routes by Patroni's REST health over https.
import { tlsDir, ports } from "../../model/identities";
import { render } from "../render";
import { daemonReload, reload, shellFn, StepBuilder } from "../step";
import { stepId } from "../types";
import type { RoleUnit } from "../role";
import { withRole } from "../hosts";
import { ROLE as COMMON } from "../common";
import { ROLE as PGBOUNCER } from "../pgbouncer";

export const ROLE = "haproxy";

export const shell = {
  writerUp: shellFn(`${ROLE}/haproxy.sh`, "pgc_writer_up"),
};

export const haproxy: RoleUnit = {
  name: ROLE,
  hosts: (spec) => withRole(spec, "balancer"),
  // Every pooler serving before the balancer routes to it.
  after: (spec, host) => [stepId(host.name, COMMON), ...withRole(spec, "postgres").map((d) => stepId(d.name, PGBOUNCER))],
  step(ctx, host) {
    const tls = tlsDir.haproxy;
    const h = ctx.spec.haproxy;
    const s = new StepBuilder();
    s.packages("haproxy", "socat");
    const stateFile = "/var/lib/haproxy/server-state";
    s.file({
      path: "/etc/systemd/system/haproxy.service.d/pgcluster.conf",
      content: render(ROLE, "haproxy.service.conf", { stateFile }),
      notify: [daemonReload],
    });
    s.dir(tls, "root", "haproxy", "0750");
    s.file({ path: `${tls}/ca.crt`, content: ctx.pki.caBundle, owner: "root", group: "haproxy", notify: [reload("haproxy")] });
    s.file({
      path: "/etc/haproxy/haproxy.cfg",
      owner: "root",
      group: "haproxy",
      mode: "0640",
      notify: [reload("haproxy")],
      validate: "haproxy -c -q -f {}",
      content: render(ROLE, "haproxy.cfg", {
        cluster: ctx.spec.clusterName,
        address: host.address,
        ports,
        tls,
        stateFile,
        maxConn: h.maxConn,
        checkIntervalMs: h.checkIntervalMs,
        fastIntervalMs: Math.max(100, Math.floor(h.checkIntervalMs / 2)),
        checkTimeoutMs: Math.max(500, h.checkIntervalMs),
        fall: h.fall,
        rise: h.rise,
        maxLagBytes: h.maxReplicaLagBytes,
        nodes: withRole(ctx, "postgres").map((n) => ({ name: n.name, address: n.address })),
      }),
    });
    s.service("haproxy");
    s.shell(ROLE, "haproxy.sh", { address: host.address, ports });
    s.wait(60, `HAProxy on ${host.name} routing the writer port to the primary`, shell.writerUp);
    return s;
  },
};
