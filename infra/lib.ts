// The library: what `import … from "pgcluster"` gives a Pulumi program (package.json exports).
export { PgCluster, PgClusterHost, PGCLUSTER_TYPE, HOST_TYPE, type PgClusterArgs, type ClusterNode } from "./pgCluster";
export { parseComponentSpec as parseClusterSpec, type ComponentSpecContext } from "./componentSpec";
export { ConfigError, SECRET_KEYS, type ClusterSpec, type HostSpec, type Role, type SecretName } from "../model/config";
export type { GivenSecrets } from "./secrets";
