// haproxy: the entry points on the balancer host(s); routes by Patroni's REST health over https.
import { tlsDir, ports } from "../../model/identities";
import { render } from "../render";
import { q, StepScript } from "../script";
import type { Host, RoleContext } from "../types";
import { withRole } from "../hosts";

export const ROLE = "haproxy";

export function haproxyStep(ctx: RoleContext, host: Host): StepScript {
  const tls = tlsDir.haproxy;
  const h = ctx.spec.haproxy;
  const s = new StepScript(`${host.name}/${ROLE}`);
  s.packages("haproxy", "socat");
  const stateFile = "/var/lib/haproxy/server-state";
  s.file({
    path: "/etc/systemd/system/haproxy.service.d/pgcluster.conf",
    content: render(ROLE, "haproxy.service.conf", { stateFile }),
    notify: ["daemon-reload"],
  });
  s.dir(tls, "root", "haproxy", "0750");
  s.file({ path: `${tls}/ca.crt`, content: ctx.pki.caBundle, owner: "root", group: "haproxy", notify: ["reload:haproxy"] });
  s.file({
    path: "/etc/haproxy/haproxy.cfg",
    owner: "root",
    group: "haproxy",
    mode: "0640",
    notify: ["reload:haproxy"],
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
  s.sh(render(ROLE, "haproxy.sh", { address: host.address, ports }));
  s.sh(`pgc_wait 60 ${q(`HAProxy on ${host.name} routing the writer port to the primary`)} pgc_writer_up`);
  return s;
}
