// What certificates a cluster needs: one description, used by the Pulumi PKI (@pulumi/tls) and
// by the local PKI alike, so both issue the same names, SANs, usages and lifetimes.
import type { ClusterSpec } from "./config";

export interface CertRequest {
  /** Key in Pki.nodes, or "replication". */
  id: string;
  commonName: string;
  ipAddresses: string[];
  dnsNames: string[];
  /** Node certs serve (etcd, PostgreSQL, Patroni, pgBouncer) and are clients (etcd peers, Patroni->etcd). */
  usages: ("digital_signature" | "key_encipherment" | "server_auth" | "client_auth")[];
}

export const KEY_ALGORITHM = { algorithm: "ECDSA", curve: "P256" } as const;

export function caSubject(spec: ClusterSpec): { commonName: string; organization: string } {
  return { commonName: `${spec.clusterName} cluster CA`, organization: "pgcluster" };
}

/** Hosts that need a node certificate: everything that serves TLS (etcd and database nodes). */
export function certRequests(spec: ClusterSpec, addresses: Record<string, string>): CertRequest[] {
  const nodes = spec.hosts
    .filter((h) => h.roles.includes("etcd") || h.roles.includes("postgres"))
    .map<CertRequest>((h) => ({
      id: h.name,
      commonName: h.name,
      // 127.0.0.1/localhost: pgBouncer and the health checks on the node itself verify too.
      ipAddresses: [addresses[h.name], "127.0.0.1"],
      dnsNames: [h.name, "localhost"],
      usages: ["digital_signature", "key_encipherment", "server_auth", "client_auth"],
    }));
  // CN is the PostgreSQL role: pg_hba "cert" maps the certificate to user replicator.
  const replication: CertRequest = { id: "replication", commonName: "replicator", ipAddresses: [], dnsNames: [], usages: ["digital_signature", "key_encipherment", "client_auth"] };
  return [...nodes, replication];
}
