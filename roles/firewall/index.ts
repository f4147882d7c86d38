// firewall: nftables on every host. Inbound default drop; each service port admits exactly the
// sources that use it (the same rules as the GCP VPC firewall in infra/gcp.ts). The rules are
// data (hostFirewall) rendered to one nft file that replaces pgcluster's own table atomically,
// so other tables (Docker's, the distribution's) are never flushed.
import { parseCidr } from "../../model/cidr";
import { ports, tlsDir } from "../../model/identities";
import { GCP_HEALTH_CHECK_RANGES } from "../../model/gcpHealthChecks";
import { render, renderShell } from "../render";
import { daemonReload, handlerWord, run, shellFn, StepBuilder } from "../step";
import { stepId } from "../types";
import type { ClusterSpec, Host, Role, RoleContext } from "../types";
import type { RoleUnit } from "../role";
import { ROLE as COMMON } from "../common";
import { withRole } from "../hosts";
import { ipv4, ipv4Cidr } from "../quote";

export const ROLE = "firewall";
export const RULESET_FILE = "/etc/pgcluster/firewall.nft";
export const UNIT = "pgcluster-firewall";
const UNIT_FILE = `/etc/systemd/system/${UNIT}.service`;
export const shell = {
  load: shellFn(`${ROLE}/load.sh`, "pgc_fw_load"),
  loadedCheck: shellFn(`${ROLE}/load.sh`, "pgc_fw_loaded_check"),
  membersCheck: shellFn(`${ROLE}/members.sh`, "pgc_fw_members_check"),
};
/** The handler that loads the ruleset (a start of the unit makes it unnecessary). */
const LOAD = run(shell.load, UNIT);
const LOAD_WORD = handlerWord(LOAD);
/**
 * On the first load on a running host, connections open now are tracked for this long before
 * the drop policy applies: conntrack then knows every one of them (one packet each way) and
 * admits its packets as "established". The slowest periodic message on the cluster's long-lived
 * connections is the WAL receiver's status (wal_receiver_status_interval, 10 s).
 */
export const WARMUP_SECONDS = 12;

/** One (port, source) the firewall admits, and who that source is. */
export interface Admission {
  port: number;
  /** Canonical IPv4 CIDR (a host is a /32). */
  source: string;
  who: string;
}

export interface FirewallRule {
  ports: number[];
  /** Canonical CIDRs, none inside another, sorted. */
  sources: string[];
  who: string[];
}

export interface HostFirewall {
  host: string;
  address: string;
  sshPort: number;
  /** Who may open SSH; the guard refuses rules that would not admit the session applying them. */
  sshSources: string[];
  /** The stack key that decides sshSources, named in the guard's refusal. */
  sshSourceKey: string;
  admissions: Admission[];
  rules: FirewallRule[];
  /** Balancers whose VRRP (IP protocol 112, keepalived) this balancer admits: the other ones. */
  vrrpPeers: string[];
}

const WHO = {
  admin: "operators (network.adminCidrs)",
  bastion: "the bastion (gcp.bastionCidr)",
  clients: "clients (network.clientCidrs)",
  etcd: "etcd members",
  db: "database nodes",
  balancers: "balancers",
  backup: "the backup host",
  monitoring: "the monitoring host",
  standbys: "standby clusters (standbyClusters[].cidrs)",
  self: "this host",
  healthChecks: "Google's health checkers (the internal load balancer)",
};

// The shared per-format guards (roles/quote.ts): a value that is not an address never reaches nft.
function cidrOf(s: string): string {
  if (!s.includes("/")) return `${ipv4(s, "host address")}/32`;
  if (!parseCidr(ipv4Cidr(s, "source range"))) throw new Error(`firewall: source range ${JSON.stringify(s)} has host bits set`);
  return s;
}

/** The smallest equivalent list: duplicates and CIDRs inside another one dropped, sorted by address. */
export function minimalCidrs(list: string[]): string[] {
  const parsed = [...new Set(list.map(cidrOf))].map((s) => ({ s, c: parseCidr(s)! }));
  const inside = (a: typeof parsed[0], b: typeof parsed[0]) =>
    a !== b && b.c.prefix <= a.c.prefix && a.c.network >= b.c.network && a.c.network < b.c.network + b.c.size;
  return parsed
    .filter((a) => !parsed.some((b) => inside(a, b)))
    .sort((a, b) => a.c.network - b.c.network || a.c.prefix - b.c.prefix)
    .map((x) => x.s);
}

/**
 * What `host` admits, port by port. SSH: static hosts from network.adminCidrs; GCP instances
 * from the bastion subnet only, as the VPC rule says (every driver arrives through the bastion).
 * Admin policy: on static hosts the host firewall is the only one, and the operator's machine
 * runs status, diagnosis and the hosts tests against the nodes, so adminCidrs reach every
 * service port of every host; on GCP the host firewall repeats the VPC rules and no more
 * (adminCidrs: HAProxy stats only), so a node is never more open than the VPC says.
 */
export function hostFirewall(ctx: RoleContext, host: Host): HostFirewall {
  const spec = ctx.spec;
  // Leaving hosts are admitted as their roles were until they are gone: their decommission talks to the others.
  const addrs = (r: Role) => [...withRole(ctx, r), ...withRole({ hosts: ctx.leaving ?? [] }, r)].map((h) => h.address);
  const etcd = addrs("etcd");
  const db = addrs("postgres");
  const balancers = addrs("balancer");
  const backups = addrs("backup");
  const admin = spec.network.adminCidrs;
  const gcp = spec.provider === "gcp";
  const sshSources = gcp ? [spec.gcp!.bastionCidr] : admin;
  const admissions: Admission[] = [];
  const admit = (p: number[], sources: string[], who: string) => {
    for (const port of p) for (const source of sources) admissions.push({ port, source: cidrOf(source), who });
  };
  const has = (r: Role) => host.roles.includes(r);

  admit([host.sshPort], sshSources, gcp ? WHO.bastion : WHO.admin);
  const service: number[] = [];
  if (has("etcd")) {
    // Patroni is an etcd client: on a static inventory a database node need not be a member.
    admit([ports.etcdClient], etcd, WHO.etcd);
    admit([ports.etcdClient], db, WHO.db);
    admit([ports.etcdPeer], etcd, WHO.etcd);
    service.push(ports.etcdClient, ports.etcdPeer);
  }
  if (has("postgres")) {
    admit([ports.postgres, ports.patroni], db, WHO.db);
    admit([ports.postgres, ports.patroni, ports.pgbouncer], balancers, WHO.balancers);
    admit([ports.pgbouncer], [host.address], WHO.self);
    service.push(ports.postgres, ports.pgbouncer, ports.patroni);
  }
  // pgBackRest's TLS servers: database nodes push WAL to the backup host; the backup host takes
  // backups from the database nodes.
  if (has("postgres") && backups.length) {
    admit([ports.pgbackrest], backups, WHO.backup);
    // The logical dump (pg_dump on the backup host, TLS, its certificate).
    admit([ports.postgres], backups, WHO.backup);
    service.push(ports.pgbackrest);
  }
  if (has("backup")) {
    admit([ports.pgbackrest], db, WHO.db);
    // Standby clusters' WAL fallback (archive-get with the replication certificate).
    admit([ports.pgbackrest], spec.standbyClusters.flatMap((sc) => sc.cidrs), WHO.standbys);
    service.push(ports.pgbackrest);
  }
  if (has("balancer")) {
    admit([ports.writer, ports.readers, ports.writerDirect, ports.readersDirect], spec.network.clientCidrs, WHO.clients);
    admit([ports.stats], admin, WHO.admin);
    // Standby clusters' leaders replicate through HAProxy (PostgreSQL sees the balancer's address).
    admit([ports.writerDirect], spec.standbyClusters.flatMap((sc) => sc.cidrs), WHO.standbys);
    service.push(ports.writer, ports.readers, ports.writerDirect, ports.readersDirect, ports.stats);
    // GCP's internal load balancer asks HAProxy's health answer, as the VPC rule admits it.
    if (gcp) admit([ports.balancerHealth], [...GCP_HEALTH_CHECK_RANGES], WHO.healthChecks);
    // With a floating address, a balancer checks that the address answers HAProxy's health
    // wherever it is (the keepalived step's wait): the other balancers ask it.
    if (!gcp && spec.network.floatingAddress) {
      admit([ports.balancerHealth], balancers, WHO.balancers);
      service.push(ports.balancerHealth);
    }
  }
  // Prometheus on the monitoring host scrapes every host's exporters, Patroni and etcd.
  const monitors = addrs("monitoring");
  if (spec.monitoring.enabled && monitors.length) {
    admit([ports.nodeExporter], monitors, WHO.monitoring);
    service.push(ports.nodeExporter);
    if (has("postgres")) {
      admit([ports.postgresExporter, ports.patroni], monitors, WHO.monitoring);
      service.push(ports.postgresExporter);
    }
    if (has("etcd")) admit([ports.etcdClient], monitors, WHO.monitoring);
    if (has("balancer")) {
      admit([ports.haproxyExporter], monitors, WHO.monitoring);
      service.push(ports.haproxyExporter);
    }
  }
  // Prometheus's web UI, API and console pages: operators (and Prometheus scraping itself).
  if (has("monitoring")) {
    admit([ports.prometheus], admin, WHO.admin);
    admit([ports.prometheus], [host.address], WHO.self);
    service.push(ports.prometheus);
  }
  if (!gcp) admit(service, admin, WHO.admin);
  // keepalived's advertisements go unicast between the balancers sharing a floating address.
  const vrrpPeers = has("balancer") && !gcp && spec.network.floatingAddress ? balancers.filter((a) => a !== host.address) : [];

  return {
    host: host.name, address: host.address, sshPort: host.sshPort,
    sshSources: minimalCidrs(sshSources), sshSourceKey: gcp ? "pgcluster:gcp.bastionCidr" : "pgcluster:network.adminCidrs",
    admissions, rules: rulesOf(admissions), vrrpPeers: minimalCidrs(vrrpPeers),
  };
}

/** One rule per set of ports that admit the same sources (minimal), in port order. */
function rulesOf(admissions: Admission[]): FirewallRule[] {
  const byPort = new Map<number, Admission[]>();
  for (const a of admissions) byPort.set(a.port, [...(byPort.get(a.port) ?? []), a]);
  const rules: FirewallRule[] = [];
  for (const port of [...byPort.keys()].sort((a, b) => a - b)) {
    const as = byPort.get(port)!;
    const sources = minimalCidrs(as.map((a) => a.source));
    const who = [...new Set(as.map((a) => a.who))];
    const same = rules.find((r) => r.sources.join() === sources.join() && r.who.join() === who.join());
    if (same) same.ports.push(port);
    else rules.push({ ports: [port], sources, who });
  }
  return rules;
}

const SERVICE: Record<number, string> = {
  [ports.etcdClient]: "etcd client", [ports.etcdPeer]: "etcd peers", [ports.postgres]: "PostgreSQL",
  [ports.pgbouncer]: "pgBouncer", [ports.patroni]: "Patroni REST", [ports.writer]: "writer",
  [ports.readers]: "readers", [ports.writerDirect]: "writer direct",
  [ports.readersDirect]: "readers direct", [ports.stats]: "HAProxy stats",
  [ports.balancerHealth]: "balancer health", [ports.pgbackrest]: "pgBackRest",
  [ports.nodeExporter]: "node exporter", [ports.postgresExporter]: "postgres exporter",
  [ports.haproxyExporter]: "HAProxy metrics", [ports.prometheus]: "Prometheus",
};

/** nft syntax: 10.0.0.5 for a host, 5000-5002 for consecutive ports. */
function nftSources(sources: string[]): string {
  return sources.map((s) => s.replace(/\/32$/, "")).join(", ");
}

function nftPorts(p: number[]): string {
  const runs: string[] = [];
  for (let i = 0; i < p.length; ) {
    let j = i;
    while (j + 1 < p.length && p[j + 1] === p[j] + 1) j++;
    runs.push(j > i ? `${p[i]}-${p[j]}` : String(p[i]));
    i = j + 1;
  }
  return runs.join(", ");
}

export function renderRuleset(spec: ClusterSpec, fw: HostFirewall): string {
  return render(ROLE, "firewall.nft", {
    host: fw.host,
    cluster: spec.clusterName,
    provider: spec.provider,
    rules: fw.rules.map((r) => ({
      what: r.ports.map((p) => (p === fw.sshPort ? "SSH" : SERVICE[p] ?? String(p))).join(", "),
      who: r.who.join(", "), sources: nftSources(r.sources), ports: nftPorts(r.ports),
    })),
    vrrpPeers: fw.vrrpPeers.length ? nftSources(fw.vrrpPeers) : "",
  });
}

/** Host-side check that the session applying the rules is one they admit (else: refuse, load nothing). */
export function renderGuard(fw: HostFirewall): string {
  return renderShell(ROLE, "guard.sh", guardContext(fw));
}

function guardContext(fw: HostFirewall) {
  return { sshPort: fw.sshPort, sshSources: fw.sshSources, sshSourceKey: fw.sshSourceKey, host: fw.host };
}

export const firewall: RoleUnit = {
  name: ROLE,
  hosts: (spec) => spec.hosts,
  after: (_spec, host) => [stepId(host.name, COMMON)],
  step: firewallStep,
};

function firewallStep(ctx: RoleContext, host: Host): StepBuilder {
  const s = new StepBuilder();
  if (!ctx.spec.firewall.enabled) {
    s.shell(ROLE, "off.sh", { unit: UNIT });
    s.stopped(UNIT);
    s.absent(UNIT_FILE, daemonReload);
    s.absent(RULESET_FILE);
    return s;
  }
  const fw = hostFirewall(ctx, host);
  // First, before anything changes: a ruleset that would lock the applying session out is refused,
  // and so is one that would drop a host the cluster still counts as a member.
  s.shell(ROLE, "guard.sh", guardContext(fw));
  const known = [...ctx.hosts, ...(ctx.leaving ?? [])];
  s.shell(ROLE, "members.sh", {
    etcdPeers: withRole({ hosts: known }, "etcd").map((h) => `https://${h.address}:${ports.etcdPeer}`),
    patroniMembers: withRole({ hosts: known }, "postgres").map((h) => h.name),
    etcdTls: tlsDir.etcd, patroniTls: tlsDir.patroni, clientPort: ports.etcdClient, patroniPort: ports.patroni,
  });
  s.call(shell.membersCheck);
  s.packages("nftables");
  s.shell(ROLE, "load.sh", { rulesetFile: RULESET_FILE, unit: UNIT, load: LOAD_WORD, address: host.address, sshPort: host.sshPort, warmup: WARMUP_SECONDS });
  s.file({ path: UNIT_FILE, content: render(ROLE, "pgcluster-firewall.service", { rulesetFile: RULESET_FILE }), notify: [daemonReload] });
  s.dir("/etc/pgcluster");
  s.file({ path: RULESET_FILE, mode: "0640", content: renderRuleset(ctx.spec, fw), validate: "nft -c -f {}", notify: [LOAD] });
  s.call(shell.loadedCheck);
  s.handlers();
  s.service(UNIT);
  return s;
}
