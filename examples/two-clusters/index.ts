// A user's own Pulumi program: two PostgreSQL clusters, dev and staging, side by side in one GCP
// project, each a PgCluster component. Resource names start with the component's name, so the
// two never collide; the GCP service account's id derives from clusterName, so each cluster needs
// its own clusterName in the project.
import * as pulumi from "@pulumi/pulumi";
import { PgCluster, parseClusterSpec } from "pgcluster";

const config = new pulumi.Config();
const project = config.require("gcpProject");
// Where operators SSH from to the clusters' bastions (your office/VPN range, or IAP's 35.235.240.0/20).
const sshSourceRanges = config.requireObject<string[]>("sshSourceRanges");
// The key pair the hosts accept: the public half goes on the instances, the private half stays a
// secret (pulumi config set --secret sshPrivateKey < ~/.ssh/pgcluster).
const sshPublicKey = config.require("sshPublicKey");
const sshPrivateKey = config.requireSecret("sshPrivateKey");

function cluster(environment: "dev" | "staging", cidr: string, nodes: { dbNodes: number; witnessNodes: number }): PgCluster {
  const name = `orders-${environment}`;
  // The same keys as a pgcluster stack config (README: Configuration), validated the same way.
  const spec = parseClusterSpec({
    environment,
    clusterName: name,
    provider: "gcp",
    gcp: { project, region: "europe-west1", zones: ["europe-west1-b", "europe-west1-c", "europe-west1-d"], ...nodes, sshSourceRanges },
    // Each cluster has its own VPC; here the clients are in it (widen clientCidrs to your apps' ranges).
    network: { cidr, clientCidrs: [cidr] },
    ssh: { user: "pgcluster", publicKey: sshPublicKey },
    patroni: { synchronousMode: nodes.dbNodes >= 2 },
  }, { source: `${name} (examples/two-clusters)` });
  return new PgCluster(name, { spec, sshPrivateKey });
}

// dev: one database node, two etcd witnesses for quorum; staging: three database nodes.
const dev = cluster("dev", "10.30.0.0/24", { dbNodes: 1, witnessNodes: 2 });
const staging = cluster("staging", "10.31.0.0/24", { dbNodes: 3, witnessNodes: 0 });

// Connection URLs are secrets (they hold the app password): pulumi stack output --show-secrets.
export const devDatabaseUrl = dev.primaryUrl;
export const stagingDatabaseUrl = staging.primaryUrl;
export const stagingReplicaUrl = staging.replicaUrl;
export const caCerts = { dev: dev.caCert, staging: staging.caCert };
export const nodes = { dev: dev.nodes, staging: staging.nodes };
