// The stack program (Pulumi.yaml: main: infra/): the stack's config, validated, makes one PgCluster.
import { loadSpec, providedSecrets, sshPrivateKey } from "./pulumiConfig";
import * as pulumi from "@pulumi/pulumi";
import { PgCluster } from "./pgCluster";
import type { StandbyTrust } from "../roles/standby";

const spec = loadSpec();
// A standby cluster takes its primary's trust from the primary's stack (its output standbyTrust).
const primaryTrust = spec.standby ? new pulumi.StackReference(spec.standby.primaryStack).requireOutput("standbyTrust") : undefined;
const cluster = new PgCluster(spec.clusterName, {
  ...(primaryTrust ? { primaryTrust: primaryTrust as pulumi.Output<StandbyTrust> } : {}),
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
/** monitoring.enabled: Prometheus's URL (the overview page is consoles/pgcluster.html under it); null when off. */
export const prometheus = cluster.prometheus;
export const metricsPassword = cluster.metricsPassword;
export const caCert = cluster.caCert;
export const nodes = cluster.nodes;
export const steps = cluster.steps;
/** For standby clusters of this one (their standby.primaryStack): a secret. */
export const standbyTrust = cluster.standbyTrust;
