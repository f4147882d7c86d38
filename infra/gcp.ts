// GCP hosts: a VPC with a private subnet for the cluster and a small one for the bastion, Cloud
// NAT for package downloads, firewall rules per port and source, one instance per node spread
// over the zones, a pd-ssd data disk per database node, no public IP except the bastion's.
// Resource names start with the component's name; GCP-level ids that must be unique in a project
// (the service account) derive from clusterName, as before PgCluster, so they do not change.
import * as pulumi from "@pulumi/pulumi";
import * as gcp from "@pulumi/gcp";
import type { ClusterSpec, HostSpec } from "../model/config";
import { ports } from "../model/identities";
import { guestAttributeHostKey } from "./hostKeys";
import { hostLabel, type Children } from "./children";

export interface GcpHosts {
  addresses: Record<string, pulumi.Output<string>>;
  /** Each instance's ed25519 host key, as its guest agent published it (see hostKeys.ts). */
  hostKeys: Record<string, pulumi.Output<string>>;
  bastion: { address: pulumi.Output<string>; hostKey: pulumi.Output<string> };
  instances: Record<string, gcp.compute.Instance>;
}

const TAG = { db: "pgcluster-db", witness: "pgcluster-etcd", balancer: "pgcluster-lb", bastion: "pgcluster-bastion" } as const;

function tagsOf(h: HostSpec): string[] {
  return h.kind === "db" ? [TAG.db] : h.kind === "witness" ? [TAG.witness] : [TAG.balancer];
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
  const rule = (name: string, p: number[], source: { sourceTags?: string[]; sourceRanges?: string[] }, targetTags: string[]) =>
    new gcp.compute.Firewall(c.name(name), {
      network: network.id,
      direction: "INGRESS",
      allows: [{ protocol: "tcp", ports: p.map(String) }],
      ...source,
      targetTags,
    }, opts(`${n}-${name}`));
  rule("etcd-peers", [ports.etcdClient, ports.etcdPeer], { sourceTags: [TAG.db, TAG.witness] }, [TAG.db, TAG.witness]);
  rule("db-replication", [ports.postgres, ports.patroni], { sourceTags: [TAG.db] }, [TAG.db]);
  rule("lb-to-db", [ports.postgres, ports.pgbouncer, ports.patroni], { sourceTags: [TAG.balancer] }, [TAG.db]);
  rule("clients-to-lb", [ports.writer, ports.readers, ports.writerDirect], { sourceRanges: spec.network.clientCidrs }, [TAG.balancer]);
  if (spec.network.adminCidrs.length) rule("admin-to-stats", [ports.stats], { sourceRanges: spec.network.adminCidrs }, [TAG.balancer]);
  rule("ssh-to-bastion", [22], { sourceRanges: g.sshSourceRanges }, [TAG.bastion]);
  rule("bastion-to-nodes", [22], { sourceTags: [TAG.bastion] }, [TAG.db, TAG.witness, TAG.balancer]);

  // Least privilege: the nodes may write logs and metrics, nothing else.
  // The account id is unique per project: it derives from clusterName (two clusters in one
  // project need two clusterNames), never from the component's name.
  const sa = new gcp.serviceaccount.Account(c.name("nodes"), { accountId: `${n}-nodes`.slice(0, 30), displayName: `pgcluster ${n} nodes` }, opts(`${n}-nodes`));
  for (const role of ["roles/logging.logWriter", "roles/monitoring.metricWriter"]) {
    const suffix = `nodes-${role.split("/")[1].replace(/\./g, "-")}`;
    new gcp.projects.IAMMember(c.name(suffix), {
      project: g.project, role, member: pulumi.interpolate`serviceAccount:${sa.email}`,
    }, opts(`${n}-${suffix}`));
  }

  // enable-guest-attributes: the guest agent publishes the host keys it generates at first boot
  // (hostkeys/ssh-ed25519), which every SSH connection of the program then verifies.
  const metadata = { "ssh-keys": `${spec.ssh.user}:${spec.ssh.publicKey}`, "block-project-ssh-keys": "true", "enable-oslogin": "FALSE", "enable-guest-attributes": "TRUE" };
  const machineType = (h: HostSpec) => (h.kind === "db" ? g.dbMachineType : h.kind === "witness" ? g.witnessMachineType : g.balancerMachineType);
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
      bootDisk: { initializeParams: { image: g.image, size: g.bootDiskGb, type: "pd-balanced" } },
      attachedDisks,
      // No accessConfigs: no public IP. Packages come through Cloud NAT.
      networkInterfaces: [{ subnetwork: subnet.id }],
      serviceAccount: { email: sa.email, scopes: ["cloud-platform"] },
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
  return { addresses, hostKeys, bastion: { address: bastionIp, hostKey: guestAttributeHostKey(bastion, g.project, provider, `${n}-bastion`) }, instances };
}
