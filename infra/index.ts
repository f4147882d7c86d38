// The stack program (Pulumi.yaml: main: infra/): the stack's config, validated, makes one PgCluster.
import { loadSpec, providedSecrets, sshPrivateKey } from "./pulumiConfig";
import { PgCluster } from "./pgCluster";

const spec = loadSpec();
const cluster = new PgCluster(spec.clusterName, {
  spec,
  sshPrivateKey: sshPrivateKey(spec),
  secrets: providedSecrets(spec),
  // Stacks this program made before PgCluster keep their resources (aliases, no replacement).
  adoptStackRootResources: true,
});

export const DATABASE_URL_PRIMARY = cluster.primaryUrl;
export const DATABASE_URL_REPLICA = cluster.replicaUrl;
export const DATABASE_URL_PRIMARY_DIRECT = cluster.primaryDirectUrl;
export const DATABASE_URL_REPLICA_DIRECT = cluster.replicaDirectUrl;
export const haproxyStats = cluster.haproxyStats;
export const haproxyStatsPassword = cluster.haproxyStatsPassword;
export const caCert = cluster.caCert;
export const nodes = cluster.nodes;
export const steps = cluster.steps;
