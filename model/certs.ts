// What certificates a cluster needs: one description, used by the Pulumi PKI (@pulumi/tls) and
// by the local PKI alike, so both issue the same names, SANs, usages and lifetimes.
import type { ClusterSpec } from "./config";
import { CLIENT_CERTS } from "./identities";

export interface CertRequest<A = string> {
  /** Key in Pki.nodes, or one of CLIENT_CERTS. */
  id: string;
  commonName: string;
  ipAddresses: A[];
  dnsNames: string[];
  /** Subject serialNumber: the signing CA generation and the rotation value. A change re-issues the cert. */
  generation: string;
  /** Node certs serve (etcd, PostgreSQL, Patroni, pgBouncer) and are clients (etcd peers, Patroni->etcd). */
  usages: ("digital_signature" | "key_encipherment" | "server_auth" | "client_auth")[];
}

/** Whether `host` gets a node certificate (certRequests; compile() refuses a plan without it). */
export function needsNodeCert(spec: Pick<ClusterSpec, "monitoring">, host: { roles: readonly string[] }): boolean {
  return spec.monitoring.enabled || ["etcd", "postgres", "backup"].some((r) => host.roles.includes(r));
}

export const KEY_ALGORITHM = { algorithm: "ECDSA", curve: "P256" } as const;

export function caSubject(spec: ClusterSpec, generation: string): { commonName: string; organization: string } {
  return { commonName: `${spec.clusterName} cluster CA ${generation}`, organization: "pgcluster" };
}

/** The CA that signs: the first trusted generation. */
export function signingGeneration(spec: ClusterSpec): string {
  return spec.tls.caGenerations[0];
}

/**
 * Hosts that need a node certificate: everything that serves TLS (etcd and database nodes, the
 * backup host's pgBackRest server); with monitoring.enabled every host (its exporters serve TLS).
 * `address` gives a host's IP: a string locally, a Pulumi Output for GCP instances.
 * `entryAddresses`: what clients dial in front of the balancers, when that is not a balancer's
 * own address (GCP: the internal load balancer's); a static inventory's network.floatingAddress
 * is added here.
 */
export function certRequests<A>(spec: ClusterSpec, address: (host: string) => A | string, entryAddresses: readonly (A | string)[] = []): CertRequest<A | string>[] {
  const generation = `ca-${signingGeneration(spec)}.r-${spec.tls.rotation}`;
  const balancers = spec.hosts.filter((h) => h.roles.includes("balancer")).map((h) => address(h.name));
  // A static inventory's balancers share a floating address: clients dial it.
  if (spec.network.floatingAddress) entryAddresses = [...entryAddresses, spec.network.floatingAddress];
  const nodes = spec.hosts
    .filter((h) => needsNodeCert(spec, h))
    .map<CertRequest<A | string>>((h) => ({
      id: h.name,
      commonName: h.name,
      generation,
      // 127.0.0.1/localhost: pgBouncer and the health checks on the node itself verify too.
      // The balancers' addresses, and the entry address in front of them: HAProxy passes TLS
      // through, so a client that dialled either meets this certificate and must be able to
      // verify it (sslmode=verify-full).
      ipAddresses: [address(h.name), "127.0.0.1", ...balancers, ...entryAddresses],
      dnsNames: [h.name, "localhost"],
      usages: ["digital_signature", "key_encipherment", "server_auth", "client_auth"],
    }));
  const clients = Object.entries(CLIENT_CERTS).map<CertRequest<A | string>>(([id, commonName]) => (
    { id, commonName, generation, ipAddresses: [], dnsNames: [], usages: ["digital_signature", "key_encipherment", "client_auth"] }));
  return [...nodes, ...clients];
}

export type ClientCertId = keyof typeof CLIENT_CERTS;

/** Split issued certificates into node certificates and the client ones. */
export function splitCerts<T>(certs: Record<string, T>): { nodes: Record<string, T> } & Record<ClientCertId, T> {
  const nodes = Object.fromEntries(Object.entries(certs).filter(([id]) => !(id in CLIENT_CERTS)));
  return { nodes, replication: certs.replication, pooler: certs.pooler };
}
