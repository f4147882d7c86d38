// haproxy: the entry points on the balancer host(s); routes by Patroni's REST health over https.
import { following } from "../standby";
import { tlsDir, ports, users, BALANCER_HEALTH_PATH } from "../../model/identities";
import { render } from "../render";
import { daemonReload, reload, shellFn, StepBuilder } from "../step";
import { stepId } from "../types";
import type { RoleUnit } from "../role";
import { withRole } from "../hosts";
import { ROLE as COMMON } from "../common";
import { ROLE as PGBOUNCER } from "../pgbouncer";
import { minimalCidrs } from "../firewall";
import { METRICS_USER, metricsPasswordHash } from "../exporters/webConfig";
import type { RoleContext } from "../types";

export const ROLE = "haproxy";

export const shell = {
  writerUp: shellFn(`${ROLE}/haproxy.sh`, "pgc_writer_up"),
  standbyLeaderUp: shellFn(`${ROLE}/haproxy.sh`, "pgc_standby_leader_up"),
};

/** HAProxy's Prometheus exporter (monitoring.enabled): who may scrape it, with which login and certificate. */
function metricsFrontend(ctx: RoleContext) {
  if (!ctx.spec.monitoring.enabled) return undefined;
  return {
    user: METRICS_USER,
    hash: metricsPasswordHash(ctx.secrets.metricsPassword),
    pem: `${tlsDir.haproxy}/node.pem`,
    sources: minimalCidrs([...withRole(ctx, "monitoring").map((m) => m.address), ...ctx.spec.network.adminCidrs]),
  };
}

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
    // Where the entry points listen: the balancer's own address, and the entry address in front
    // of the balancers when there is one. That one is bound "transparent" (IP_TRANSPARENT, else
    // IP_FREEBIND): on GCP it is no interface address but a local route the guest agent adds once
    // the load balancer's forwarding rule exists, so HAProxy binds it whether or not it is there yet.
    const entry = ctx.entryAddress;
    const binds = [{ address: host.address, foreign: false }, ...(entry ? [{ address: entry, foreign: true }] : [])];
    s.file({
      path: "/etc/systemd/system/haproxy.service.d/pgcluster.conf",
      content: render(ROLE, "haproxy.service.conf", { stateFile }),
      notify: [daemonReload],
    });
    s.dir(tls, "root", "haproxy", "0750");
    s.file({ path: `${tls}/ca.crt`, content: ctx.pki.caBundle, owner: "root", group: "haproxy", notify: [reload("haproxy")] });
    const metrics = metricsFrontend(ctx);
    if (metrics) {
      // HAProxy reads a certificate and its key from one file.
      const node = ctx.pki.nodes[host.name];
      s.file({ path: metrics.pem, content: `${node.cert.trimEnd()}\n${node.key.trimEnd()}\n`, owner: "root", group: "haproxy", mode: "0640", secret: true, notify: [reload("haproxy")] });
    }
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
        binds,
        // HAProxy's own health answer, for the load balancer in front (haproxy.cfg says why).
        health: entry !== undefined,
        healthPath: BALANCER_HEALTH_PATH,
        // Readers' last resort: the primary; in a standby cluster (no primary) its standby leader.
        fallbackPath: following(ctx.spec) ? "/standby-leader" : "/primary",
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
        adminCidrs: ctx.spec.network.adminCidrs,
        statsUser: users.haproxyStats,
        statsPassword: ctx.secrets.statsPassword,
        metrics,
        nodes: withRole(ctx, "postgres").map((n) => ({ name: n.name, address: n.address })),
      }),
    });
    s.service("haproxy");
    s.shell(ROLE, "haproxy.sh", {});
    if (following(ctx.spec)) s.wait(60, `HAProxy on ${host.name} routing the readers to the standby leader`, shell.standbyLeaderUp);
    else s.wait(60, `HAProxy on ${host.name} routing the writer port to the primary`, shell.writerUp);
    return s;
  },
};
