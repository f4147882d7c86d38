// update: the cluster's packages moved to the versions the stack asks for (packages.versions, or
// the newest the mirror has with packages.newest / `npm run update`), one host at a time and
// never under a running service's feet: maintainer scripts may not restart anything; a database
// node takes the cluster's restart lock, hands leadership over first when it leads (it asks last),
// installs as a replica and restarts Patroni (PostgreSQL on the new binaries); an etcd member
// restarts through etcd's own lock; HAProxy re-executes its new binary on a reload.
import { ETCD_DATA, PACKAGES_OF, ports, tlsDir } from "../../model/identities";
import type { ClusterSpec, PackageSet } from "../../model/config";
import { handlerWord, run, shellFn, StepBuilder } from "../step";
import { stepId, type Host } from "../types";
import type { RoleUnit } from "../role";
import { withRole } from "../hosts";
import { patroniFunctions } from "../patroni";
import { ROLE as RESTART } from "../restart";
import { ROLE as ETCD, etcdClientShell } from "../etcd";

export const ROLE = "update";

export const shell = {
  check: shellFn(`${ROLE}/update.sh`, "pgc_update_check"),
  rolling: shellFn(`${ROLE}/update.sh`, "pgc_update_rolling"),
};

/** The package sets a host of these roles runs (what is not installed there is skipped on the host). */
export function packageSetsOf(host: Pick<Host, "roles">): PackageSet[] {
  const sets = new Set<PackageSet>();
  if (host.roles.includes("postgres")) for (const s of ["postgresql", "patroni", "pgbouncer", "etcd"] as const) sets.add(s);
  if (host.roles.includes("etcd")) sets.add("etcd");
  if (host.roles.includes("balancer")) sets.add("haproxy");
  if (host.roles.includes("backup")) sets.add("postgresql");
  return [...sets];
}

/** "name=version" for a pinned package, "name" for one that follows the newest (packages.newest). */
export function updateTargets(spec: ClusterSpec, host: Pick<Host, "roles">): string[] {
  return packageSetsOf(host).flatMap((set) => {
    const version = spec.packages.versions[set];
    if (version) return PACKAGES_OF[set].map((p) => `${p}=${version}`);
    return spec.packages.newest ? [...PACKAGES_OF[set]] : [];
  });
}

export const update: RoleUnit = {
  name: ROLE,
  hosts: (spec) => spec.hosts.filter((h) => packageSetsOf(h).length > 0),
  // After every other step of its host (lastOnHost); database nodes also once every node runs
  // with the cluster's settings (their restart steps): restarts and updates take the same turns.
  lastOnHost: true,
  after: (spec, host) => (host.roles.includes("postgres") ? withRole(spec, "postgres").map((h) => stepId(h.name, RESTART)) : []),
  step(ctx, host) {
    const s = new StepBuilder();
    const database = host.roles.includes("postgres");
    const etcdMember = host.roles.includes("etcd");
    if (database) patroniFunctions(s, ctx, host);
    else if (etcdMember) etcdClientShell(s, ctx, tlsDir.etcd);
    // etcd's own one-member-at-a-time restart (its lock, every member healthy first).
    if (etcdMember) s.shell(ETCD, "etcd.sh", { dataDir: ETCD_DATA, count: withRole(ctx, "etcd").length, clientPort: ports.etcdClient });
    s.shell(ROLE, "update.sh", {
      targets: updateTargets(ctx.spec, host),
      newest: ctx.spec.packages.newest,
      database, etcdMember, balancer: host.roles.includes("balancer"),
      rollingHandler: handlerWord(run(shell.rolling)),
    });
    s.call(shell.check);
    return s;
  },
};
