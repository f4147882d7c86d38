// GCP's internal passthrough Network Load Balancer in front of the balancers: one regional
// address in the nodes' subnet that every client dials, spread over every balancer instance.
//   address (INTERNAL, in the subnet) <- forwarding rule (TCP 5000-5003, 8404)
//     -> regional backend service (INTERNAL, TCP) -> one unmanaged instance group per zone
//   health check: HTTP GET /health on 8405, answered by HAProxy itself (haproxy.cfg's monitor-uri)
// Passthrough: packets reach a balancer with the client's source address and the load
// balancer's destination address, so the clients-to-lb firewall rule (clientCidrs) still decides
// who gets in, and HAProxy binds the load balancer's address too (roles/haproxy). These resources
// are new with the load balancer: no stack-root names, so never adoption aliases.
import * as pulumi from "@pulumi/pulumi";
import * as gcp from "@pulumi/gcp";
import type { ClusterSpec } from "../model/config";
import { BALANCER_HEALTH_PATH, ports } from "../model/identities";
import type { Children } from "./children";

/** The load balancer's children, by name suffix (`<component>-<suffix>`). */
export const ILB_NAMES = {
  address: "ilb-address",
  healthCheck: "ilb-health",
  backendService: "ilb-backend",
  forwardingRule: "ilb",
  /** One unmanaged instance group per zone that has balancers: "ilb-balancers-b" for europe-west1-b. */
  group: (spec: ClusterSpec, zone: string) => `ilb-balancers-${zone.slice(spec.gcp!.region.length + 1)}`,
} as const;

/**
 * The ports clients reach through the load balancer: writer, readers, writer and readers without
 * pooler, and the stats page (operators: the VPC rule and HAProxy admit network.adminCidrs only).
 * Five: the most one internal forwarding rule takes.
 */
export const ILB_PORTS = [ports.writer, ports.readers, ports.writerDirect, ports.readersDirect, ports.stats].map(String);

/**
 * Health check timing: a probe every 2 s, 2 s to answer; 2 failures take a balancer out of
 * rotation (a dead HAProxy stops getting new connections within about 4 s), 2 successes bring it
 * back. If every balancer fails, GCP spreads connections over all of them anyway.
 */
export const ILB_HEALTH = { checkIntervalSec: 2, timeoutSec: 2, unhealthyThreshold: 2, healthyThreshold: 2 } as const;

export interface LoadBalancerInputs {
  spec: ClusterSpec;
  c: Children;
  provider: gcp.Provider;
  network: gcp.compute.Network;
  subnet: gcp.compute.Subnetwork;
  /** The balancer instances, by host name (their zones come from the spec). */
  balancers: Record<string, gcp.compute.Instance>;
}

export interface InternalLoadBalancer {
  /** What clients dial: the reserved internal address the forwarding rule listens on. */
  address: pulumi.Output<string>;
}

export function internalLoadBalancer({ spec, c, provider, network, subnet, balancers }: LoadBalancerInputs): InternalLoadBalancer {
  const g = spec.gcp!;
  const opts = { ...c.optsNew(), provider };

  const address = new gcp.compute.Address(c.name(ILB_NAMES.address), {
    region: g.region,
    addressType: "INTERNAL",
    purpose: "GCE_ENDPOINT",
    subnetwork: subnet.id,
    ...(g.loadBalancerAddress ? { address: g.loadBalancerAddress } : {}),
    // (Kept as it was when 5003 and 8404 were added: a new description would replace the address.)
    description: `pgcluster ${spec.clusterName}: the internal load balancer clients dial (5000-5002)`,
  }, opts);

  // HTTP on HAProxy's own health answer, not TCP on a client port: a TCP probe of 5000 would open
  // a connection to the primary's pgBouncer every time, and the stats page (8404) is for
  // operators (and may ask for credentials). GET /health is answered by HAProxy itself, so the
  // check follows the HAProxy process and nothing behind it.
  const healthCheck = new gcp.compute.RegionHealthCheck(c.name(ILB_NAMES.healthCheck), {
    region: g.region,
    ...ILB_HEALTH,
    httpHealthCheck: { port: ports.balancerHealth, requestPath: BALANCER_HEALTH_PATH },
    description: `pgcluster ${spec.clusterName}: HAProxy answers on every balancer`,
  }, opts);

  // Unmanaged instance groups are zonal: one per zone that has balancers.
  const zones = new Map<string, gcp.compute.Instance[]>();
  for (const h of spec.hosts.filter((x) => x.kind === "balancer")) zones.set(h.zone!, [...(zones.get(h.zone!) ?? []), balancers[h.name]]);
  const groups = [...zones].map(([zone, vms]) => new gcp.compute.InstanceGroup(c.name(ILB_NAMES.group(spec, zone)), {
    zone,
    network: network.id,
    instances: vms.map((vm) => vm.selfLink),
    description: `pgcluster ${spec.clusterName}: the balancers in ${zone}`,
  }, opts));

  const backendService = new gcp.compute.RegionBackendService(c.name(ILB_NAMES.backendService), {
    region: g.region,
    loadBalancingScheme: "INTERNAL",
    protocol: "TCP",
    healthChecks: healthCheck.id,
    // CONNECTION is the only balancing mode an INTERNAL backend service takes.
    backends: groups.map((group) => ({ group: group.selfLink, balancingMode: "CONNECTION" })),
    description: `pgcluster ${spec.clusterName}: HAProxy on every balancer`,
  }, opts);

  new gcp.compute.ForwardingRule(c.name(ILB_NAMES.forwardingRule), {
    region: g.region,
    loadBalancingScheme: "INTERNAL",
    ipProtocol: "TCP",
    ports: ILB_PORTS,
    ipAddress: address.address,
    backendService: backendService.id,
    network: network.id,
    subnetwork: subnet.id,
    // A standby cluster in another region dials this address: only with global access.
    ...(spec.standbyClusters.length ? { allowGlobalAccess: true } : {}),
    description: `pgcluster ${spec.clusterName}: writer 5000, readers 5001, without pooler 5002/5003, stats 8404`,
  }, opts);

  return { address: address.address };
}

/** Name suffixes of the load balancer's GCE resources (each must fit GCE's 63 characters). */
export function ilbNameSuffixes(spec: ClusterSpec): string[] {
  const zones = new Set(spec.hosts.filter((h) => h.kind === "balancer").map((h) => h.zone!));
  return [ILB_NAMES.address, ILB_NAMES.healthCheck, ILB_NAMES.backendService, ILB_NAMES.forwardingRule, ...[...zones].map((z) => ILB_NAMES.group(spec, z))];
}
