// Where PgCluster puts a child resource: a name prefixed with the component's (two clusters in
// one program never collide), a parent (the component, or the host it belongs to), and, for a
// stack the stack program created before PgCluster existed, an alias to the name the resource had
// at the stack root. The engine then treats the two as the same resource: no replacement.
import * as pulumi from "@pulumi/pulumi";
import type { ClusterSpec } from "../model/config";

/**
 * A host's part in its children's names. GCP hosts are named "<clusterName>-db-1": their children
 * use "db-1" ("<component>-db-1-etcd", not "<component>-<clusterName>-db-1-etcd"), which also
 * keeps auto-named instances and disks within GCE's 63 characters. Static hosts: the host name.
 */
export function hostLabel(spec: ClusterSpec, host: string): string {
  const prefix = `${spec.clusterName}-`;
  return spec.provider === "gcp" && host.startsWith(prefix) ? host.slice(prefix.length) : host;
}

export class Children {
  /**
   * @param prefix the component's name
   * @param parent the component
   * @param adoptStackRoot alias each child to its stack-root name (PgClusterArgs.adoptStackRootResources)
   */
  constructor(readonly prefix: string, readonly parent: pulumi.Resource, readonly adoptStackRoot: boolean) {}

  /** A child's resource name: `${component}-${suffix}`. */
  name(suffix: string): string {
    return `${this.prefix}-${suffix}`;
  }

  /**
   * Options for a child whose name at the stack root, before PgCluster, was `rootName`. Only
   * when adopting: a new cluster in a user's program must not claim resources of that name.
   */
  opts(rootName: string, parent: pulumi.Resource = this.parent): pulumi.CustomResourceOptions {
    return {
      parent,
      ...(this.adoptStackRoot ? { aliases: [{ name: rootName, parent: pulumi.rootStackResource }] } : {}),
    };
  }

  /** Options for a child that only PgCluster ever created (no stack-root name): never an alias. */
  optsNew(parent: pulumi.Resource = this.parent): pulumi.CustomResourceOptions {
    return { parent };
  }
}
