// GCP hosts: a VPC with a private subnet for the cluster and a small one for the bastion, Cloud
// NAT for package downloads, firewall rules per port and source, one instance per node spread
// over the zones, a pd-ssd data disk per database node, no public IP except the bastion's, and
// an internal load balancer in front of the balancers (gcpLoadBalancer.ts).
// Resource names start with the component's name; GCP-level ids that must be unique in a project
// (the service account) derive from clusterName, as before PgCluster, so they do not change.
import * as pulumi from "@pulumi/pulumi";
import * as gcp from "@pulumi/gcp";
import type { ClusterSpec, HostSpec } from "../model/config";
import { ports } from "../model/identities";
import { GCP_HEALTH_CHECK_RANGES } from "../model/gcpHealthChecks";
import { guestAttributeHostKey } from "./hostKeys";
import { hostLabel, type Children } from "./children";
import { ilbNameSuffixes, internalLoadBalancer } from "./gcpLoadBalancer";
import { backupBucket, type BackupBucket } from "./backupBucket";

export interface GcpHosts {
  addresses: Record<string, pulumi.Output<string>>;
  /** Each instance's ed25519 host key, as its guest agent published it (see hostKeys.ts). */
  hostKeys: Record<string, pulumi.Output<string>>;
  bastion: { address: pulumi.Output<string>; hostKey: pulumi.Output<string> };
  instances: Record<string, gcp.compute.Instance>;
  /** The internal load balancer in front of the balancers: its address is what clients dial. */
  loadBalancer: { address: pulumi.Output<string> };
  /** backup.enabled: the repository's bucket and the nodes' access to it (backupBucket.ts). */
  backupRepository?: BackupBucket;
}

/** Firewall rules, by name suffix (see gceNameSuffixes). */
const RULES = [
  "etcd-peers", "db-replication", "lb-to-db", "clients-to-lb", "admin-to-stats", "ssh-to-bastion", "bastion-to-nodes", "lb-health-checks", "standbys-to-lb",
  // monitoring.enabled: Prometheus's scrapes, and operators to Prometheus.
  "mon-to-nodes", "mon-to-db", "mon-to-etcd", "mon-to-lb", "admin-to-prom",
] as const;
type RuleName = (typeof RULES)[number];

/**
 * Every GCE name Pulumi chooses for a child is "<component>-<suffix>-<7 characters>", and GCE
 * allows 63: the suffixes, so PgCluster can check the component's name before creating anything.
 */
export function gceNameSuffixes(spec: ClusterSpec): string[] {
  return [
    "vpc", "nodes", "bastion", "router", "nat", ...RULES,
    ...spec.hosts.map((h) => `${hostLabel(spec, h.name)}${h.kind === "db" ? "-data" : ""}`),
    ...ilbNameSuffixes(spec),
  ];
}

const TAG = { db: "pgcluster-db", witness: "pgcluster-etcd", balancer: "pgcluster-lb", monitoring: "pgcluster-mon", bastion: "pgcluster-bastion" } as const;

function tagsOf(h: HostSpec): string[] {
  return h.kind === "db" ? [TAG.db] : h.kind === "witness" ? [TAG.witness] : h.kind === "monitoring" ? [TAG.monitoring] : [TAG.balancer];
}

/** `c`: names and parents the resources (children.ts); `${n}-…` and host names are their stack-root names before PgCluster. */
export function gcpHosts(spec: ClusterSpec, c: Children): GcpHosts {
  const g = spec.gcp!;
  const n = spec.clusterName;
  const provider = new gcp.Provider(c.name("gcp"), { project: g.project, region: g.region }, c.opts(`${n}-gcp`));
  const opts = (rootName: string) => ({ ...c.opts(rootName), provider });

  const network = new gcp.compute.Network(c.name("vpc"), { autoCreateSubnetworks: false }, opts(`${n}-vpc`));
  const subnet = new gcp.compute.Subnetwork(c.name("nodes"), {
    network: network.id, region: g.region, ipCidrRange: spec.network.cidr, privateIpGoogleAccess: true,
  }, opts(`${n}-nodes`));
  const bastionSubnet = new gcp.compute.Subnetwork(c.name("bastion"), {
    network: network.id, region: g.region, ipCidrRange: g.bastionCidr,
  }, opts(`${n}-bastion`));
  const router = new gcp.compute.Router(c.name("router"), { network: network.id, region: g.region }, opts(`${n}-router`));
  new gcp.compute.RouterNat(c.name("nat"), {
    router: router.name, region: g.region,
    natIpAllocateOption: "AUTO_ONLY",
    sourceSubnetworkIpRangesToNat: "ALL_SUBNETWORKS_ALL_IP_RANGES",
  }, opts(`${n}-nat`));

  // One rule per (ports, source): each says who may reach what, nothing wider.
  // `isNew`: a rule that came after PgCluster, so it has no stack-root name to be adopted from.
  const rule = (name: RuleName, p: number[], source: { sourceTags?: string[]; sourceRanges?: string[] }, targetTags: string[], isNew = false) =>
    new gcp.compute.Firewall(c.name(name), {
      network: network.id,
      direction: "INGRESS",
      allows: [{ protocol: "tcp", ports: p.map(String) }],
      ...source,
      targetTags,
    }, isNew ? { ...c.optsNew(), provider } : opts(`${n}-${name}`));
  rule("etcd-peers", [ports.etcdClient, ports.etcdPeer], { sourceTags: [TAG.db, TAG.witness] }, [TAG.db, TAG.witness]);
  rule("db-replication", [ports.postgres, ports.patroni], { sourceTags: [TAG.db] }, [TAG.db]);
  rule("lb-to-db", [ports.postgres, ports.pgbouncer, ports.patroni], { sourceTags: [TAG.balancer] }, [TAG.db]);
  rule("clients-to-lb", [ports.writer, ports.readers, ports.writerDirect, ports.readersDirect], { sourceRanges: spec.network.clientCidrs }, [TAG.balancer]);
  if (spec.network.adminCidrs.length) rule("admin-to-stats", [ports.stats], { sourceRanges: spec.network.adminCidrs }, [TAG.balancer]);
  rule("ssh-to-bastion", [22], { sourceRanges: g.sshSourceRanges }, [TAG.bastion]);
  const monitoring = spec.hosts.some((h) => h.kind === "monitoring");
  rule("bastion-to-nodes", [22], { sourceTags: [TAG.bastion] }, [TAG.db, TAG.witness, TAG.balancer, ...(monitoring ? [TAG.monitoring] : [])]);
  // The internal load balancer's health checks come from Google's ranges, to HAProxy's own health
  // answer only (the balancers' nftables admit the same).
  rule("lb-health-checks", [ports.balancerHealth], { sourceRanges: [...GCP_HEALTH_CHECK_RANGES] }, [TAG.balancer], true);
  // Standby clusters (standbyClusters): their leaders replicate through HAProxy's writer port
  // without pooler. Their network must reach this one (VPC peering: README, Standby cluster).
  const standbySources = spec.standbyClusters.flatMap((s) => s.cidrs);
  if (standbySources.length) rule("standbys-to-lb", [ports.writerDirect], { sourceRanges: standbySources }, [TAG.balancer], true);
  // monitoring.enabled: Prometheus on the monitoring instance scrapes what the host firewalls
  // admit from it (roles/firewall): node exporter everywhere, postgres_exporter and Patroni's
  // /metrics on the database nodes, etcd's /metrics on every member, HAProxy's exporter on the
  // balancers. Its own node exporter and Prometheus it reaches on its own address, which never
  // leaves the instance, so no VPC rule targets it but the operators' (adminCidrs, as for the
  // stats page; none when the list is empty). The monitoring instance runs Prometheus and
  // Alertmanager from Debian like a static inventory's monitoring host (roles/monitoring), not
  // Google's Ops Agent (no Debian package: it downloads from Google at install); the nodes'
  // account keeps its logWriter/metricWriter rights (below) for whoever adds it.
  if (monitoring) {
    const mon = { sourceTags: [TAG.monitoring] };
    rule("mon-to-nodes", [ports.nodeExporter], mon, [TAG.db, TAG.witness, TAG.balancer], true);
    rule("mon-to-db", [ports.postgresExporter, ports.patroni], mon, [TAG.db], true);
    rule("mon-to-etcd", [ports.etcdClient], mon, [TAG.db, TAG.witness], true);
    rule("mon-to-lb", [ports.haproxyExporter], mon, [TAG.balancer], true);
    if (spec.network.adminCidrs.length) rule("admin-to-prom", [ports.prometheus], { sourceRanges: spec.network.adminCidrs }, [TAG.monitoring], true);
  }

  // Least privilege: the nodes may write logs and metrics, nothing else in the project; with
  // backup.enabled, use objects in the repository's bucket (a binding on that bucket only).
  // The account id is unique per project: it derives from clusterName (two clusters in one
  // project need two clusterNames), never from the component's name.
  const sa = new gcp.serviceaccount.Account(c.name("nodes"), { accountId: `${n}-nodes`.slice(0, 30), displayName: `pgcluster ${n} nodes` }, opts(`${n}-nodes`));
  for (const role of ["roles/logging.logWriter", "roles/monitoring.metricWriter"]) {
    const suffix = `nodes-${role.split("/")[1].replace(/\./g, "-")}`;
    new gcp.projects.IAMMember(c.name(suffix), {
      project: g.project, role, member: pulumi.interpolate`serviceAccount:${sa.email}`,
    }, opts(`${n}-${suffix}`));
  }

  // The monitoring instance has an account of its own without any role: Prometheus needs nothing
  // in the project, and the host whose web UI operators reach must not hold the nodes' rights (the
  // backup bucket's objects among them).
  const monSa = spec.hosts.some((h) => h.kind === "monitoring")
    ? new gcp.serviceaccount.Account(c.name("mon"), { accountId: `${n}-mon`.slice(0, 30), displayName: `pgcluster ${n} monitoring` }, { ...c.optsNew(), provider })
    : undefined;
  const accountOf = (h: HostSpec) => (h.kind === "monitoring" && monSa ? monSa : sa);

  // enable-guest-attributes: the guest agent publishes the host keys it generates at first boot
  // (hostkeys/ssh-ed25519), which every SSH connection of the program then verifies.
  const metadata = { "ssh-keys": `${spec.ssh.user}:${spec.ssh.publicKey}`, "block-project-ssh-keys": "true", "enable-oslogin": "FALSE", "enable-guest-attributes": "TRUE" };
  const machineType = (h: HostSpec) => (h.kind === "db" ? g.dbMachineType : h.kind === "witness" ? g.witnessMachineType : h.kind === "monitoring" ? g.monitoringMachineType : g.balancerMachineType);
  // The monitoring instance keeps Prometheus's TSDB on its boot disk (gcp.monitoringDiskGb).
  const bootDiskGb = (h: HostSpec) => (h.kind === "monitoring" ? g.monitoringDiskGb : g.bootDiskGb);
  const instances: Record<string, gcp.compute.Instance> = {};
  const addresses: Record<string, pulumi.Output<string>> = {};
  const hostKeys: Record<string, pulumi.Output<string>> = {};
  for (const h of spec.hosts) {
    const attachedDisks = [];
    if (h.kind === "db") {
      const disk = new gcp.compute.Disk(c.name(`${hostLabel(spec, h.name)}-data`), { zone: h.zone!, type: g.dataDiskType, size: g.dataDiskGb }, opts(`${h.name}-data`));
      // deviceName "pgdata" -> /dev/disk/by-id/google-pgdata, the host's dataDevice.
      attachedDisks.push({ source: disk.id, deviceName: "pgdata" });
    }
    // Auto-named from the resource name (PgCluster checks it fits); an adopted instance keeps its name.
    const vm = new gcp.compute.Instance(c.name(hostLabel(spec, h.name)), {
      zone: h.zone!,
      machineType: machineType(h),
      bootDisk: { initializeParams: { image: g.image, size: bootDiskGb(h), type: "pd-balanced" } },
      attachedDisks,
      // No accessConfigs: no public IP. Packages come through Cloud NAT.
      networkInterfaces: [{ subnetwork: subnet.id }],
      serviceAccount: { email: accountOf(h).email, scopes: ["cloud-platform"] },
      tags: tagsOf(h),
      metadata,
      shieldedInstanceConfig: { enableSecureBoot: true, enableVtpm: true, enableIntegrityMonitoring: true },
      allowStoppingForUpdate: true,
    }, opts(h.name));
    instances[h.name] = vm;
    addresses[h.name] = vm.networkInterfaces.apply((ni) => ni[0].networkIp!);
    hostKeys[h.name] = guestAttributeHostKey(vm, g.project, provider, h.name);
  }

  const bastion = new gcp.compute.Instance(c.name("bastion"), {
    zone: g.zones[0],
    machineType: g.bastionMachineType,
    bootDisk: { initializeParams: { image: g.image, size: 10 } },
    networkInterfaces: [{ subnetwork: bastionSubnet.id, accessConfigs: [{}] }],
    tags: [TAG.bastion],
    metadata,
    shieldedInstanceConfig: { enableSecureBoot: true, enableVtpm: true, enableIntegrityMonitoring: true },
    allowStoppingForUpdate: true,
  }, opts(`${n}-bastion`));
  const bastionIp = bastion.networkInterfaces.apply((ni) => ni[0].accessConfigs?.[0]?.natIp ?? "");
  const balancers = Object.fromEntries(spec.hosts.filter((h) => h.kind === "balancer").map((h) => [h.name, instances[h.name]]));
  const loadBalancer = internalLoadBalancer({ spec, c, provider, network, subnet, balancers });
  const backupRepository = spec.backup.enabled ? backupBucket(spec, c, provider, sa) : undefined;
  return { addresses, hostKeys, bastion: { address: bastionIp, hostKey: guestAttributeHostKey(bastion, g.project, provider, `${n}-bastion`) }, instances, loadBalancer, ...(backupRepository ? { backupRepository } : {}) };
}
