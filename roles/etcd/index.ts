// etcd: the DCS. TLS with client certificates on both ports. A new member starts without
// blocking, since its start only completes once a quorum of members is up (the next role waits
// for it); a change to a running, healthy cluster restarts the members one at a time.
import { tlsDir, ETCD_DATA, ports } from "../../model/identities";
import { render } from "../render";
import { StepScript } from "../script";
import type { Host, RoleContext } from "../types";
import { withRole } from "../hosts";
import { nodeTlsFiles } from "../tls";

export const ROLE = "etcd";

export function etcdEndpoints(ctx: RoleContext): string[] {
  return withRole(ctx, "etcd").map((h) => `https://${h.address}:${ports.etcdClient}`);
}

/** Shell functions to reach the etcd cluster from a node with its client certificate in `tls`. */
export function etcdctlFunctions(ctx: RoleContext, tls: string): string {
  return render(ROLE, "etcdctl.sh", { tls, endpoints: etcdEndpoints(ctx), count: withRole(ctx, "etcd").length });
}

export function etcdStep(ctx: RoleContext, host: Host): StepScript {
  const tls = tlsDir.etcd;
  const members = withRole(ctx, "etcd");
  const s = new StepScript(`${host.name}/${ROLE}`);
  s.packages("etcd-server", "etcd-client");
  s.sh(etcdctlFunctions(ctx, tls));
  s.sh(render(ROLE, "etcd.sh", { dataDir: ETCD_DATA, count: members.length, clientPort: ports.etcdClient }));
  const restart = ["run:pgc_etcd_restart:etcd"];
  nodeTlsFiles(s, ctx, host, { dir: tls, owner: "etcd", notify: restart });
  s.file({
    path: "/etc/default/etcd",
    content: render(ROLE, "etcd.env", {
      name: host.name,
      address: host.address,
      dataDir: ETCD_DATA,
      tls,
      clientPort: ports.etcdClient,
      peerPort: ports.etcdPeer,
      token: ctx.spec.clusterName,
      initialCluster: members.map((m) => `${m.name}=https://${m.address}:${ports.etcdPeer}`).join(","),
    }),
    notify: restart,
  });
  s.service("etcd", { noBlock: true });
  return s;
}
