// etcd: the DCS. TLS with client certificates on both ports. A new member starts without
// blocking, since its start only completes once a quorum of members is up (the next role waits
// for it); a change to a running, healthy cluster restarts the members one at a time. A member
// joining a running cluster (it grows, or the host was rebuilt empty) is added as "existing" and
// started inside its step, one join at a time (join.sh), and the step ends once it is healthy.
import { tlsDir, ETCD_DATA, ports } from "../../model/identities";
import { daemonReload, run, shellFn, StepBuilder } from "../step";
import { stepId } from "../types";
import type { Host, RoleContext } from "../types";
import type { RoleUnit } from "../role";
import { withRole } from "../hosts";
import { nodeTlsFiles } from "../tls";
import { ROLE as COMMON } from "../common";
import { ROLE as FIREWALL } from "../firewall";
import { render } from "../render";

export const ROLE = "etcd";

/** Functions of the shell the steps carry: etcdctl.sh (any etcd client), etcd.sh (members). */
export const shell = {
  quorum: shellFn(`${ROLE}/etcdctl.sh`, "pgc_etcd_quorum"),
  requireOneCluster: shellFn(`${ROLE}/etcdctl.sh`, "pgc_etcd_require_one_cluster"),
  restart: shellFn(`${ROLE}/etcd.sh`, "pgc_etcd_restart"),
  joinExisting: shellFn(`${ROLE}/join.sh`, "pgc_etcd_join_existing"),
};

/** Written only when a member joins a running cluster (pgc_etcd_join_existing); read after /etc/default/etcd. */
export const ETCD_JOIN_FILE = "/var/lib/pgcluster/etcd-join.env";
/**
 * The bootstrap membership (ETCD_INITIAL_CLUSTER): apart from /etc/default/etcd and written
 * without a restart, so that a membership change (3 -> 5 -> 3) does not restart every member
 * (etcd reads it only while the member has no data).
 */
export const ETCD_INITIAL_FILE = "/etc/default/etcd-initial";
/** The lock that members joining or leaving hold, one change at a time (also the restart lock: neither overlaps a restart). */
export const ETCD_MEMBERSHIP_LOCK = "pgcluster/etcd-restart";

export function etcdEndpoints(ctx: RoleContext): string[] {
  return withRole(ctx, "etcd").map((h) => `https://${h.address}:${ports.etcdClient}`);
}

/** Adds the shell functions that reach the etcd cluster from a node with its client certificate in `tls`. */
export function etcdClientShell(s: StepBuilder, ctx: RoleContext, tls: string): void {
  s.shell(ROLE, "etcdctl.sh", { tls, endpoints: etcdEndpoints(ctx), count: withRole(ctx, "etcd").length });
}

export const etcd: RoleUnit = {
  name: ROLE,
  hosts: (spec) => withRole(spec, "etcd"),
  // Every host's firewall admits this member before it talks to the others.
  after: (spec, host) => [stepId(host.name, COMMON), ...spec.hosts.map((h) => stepId(h.name, FIREWALL))],
  step: etcdStep,
};

function etcdStep(ctx: RoleContext, host: Host): StepBuilder {
  const tls = tlsDir.etcd;
  const members = withRole(ctx, "etcd");
  const s = new StepBuilder();
  s.packages("etcd-server", "etcd-client");
  etcdClientShell(s, ctx, tls);
  const peerUrl = `https://${host.address}:${ports.etcdPeer}`;
  s.shell(ROLE, "etcd.sh", { dataDir: ETCD_DATA, count: members.length, clientPort: ports.etcdClient });
  s.shell(ROLE, "join.sh", {
    dataDir: ETCD_DATA, name: host.name, peerUrl, joinFile: ETCD_JOIN_FILE, lock: ETCD_MEMBERSHIP_LOCK, clientPort: ports.etcdClient,
    others: members.filter((m) => m.name !== host.name).map((m) => `https://${m.address}:${ports.etcdClient}`),
  });
  const restart = [run(shell.restart, "etcd")];
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
    }),
    notify: restart,
  });
  // No notify: a running member has data and ignores it; only a member without data reads it.
  s.file({
    path: ETCD_INITIAL_FILE,
    content: render(ROLE, "initial.env", {
      name: host.name,
      initialCluster: members.map((m) => `${m.name}=https://${m.address}:${ports.etcdPeer}`).join(","),
    }),
  });
  // A member joining a running cluster (new, or rebuilt empty) reads the join file: see join.sh.
  s.file({
    path: "/etc/systemd/system/etcd.service.d/pgcluster-join.conf",
    content: render(ROLE, "join.conf", { initialFile: ETCD_INITIAL_FILE, joinFile: ETCD_JOIN_FILE }),
    notify: [daemonReload],
  });
  s.call(shell.joinExisting);
  s.service("etcd", { noBlock: true });
  return s;
}
