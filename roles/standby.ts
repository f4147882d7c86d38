// A standby cluster (spec.standby) replicates another stack's cluster: what it takes from that
// primary cluster, and the names both sides agree on. The local CLI reads the primary's state,
// the Pulumi program a stack reference to the primary's output standbyTrust; both hand it here.
import type { ClusterSpec } from "../model/config";
import { CLIENT_CERTS } from "../model/identities";
import { ROLE_PASSWORDS, saltName, type RolePassword, type SaltName } from "./scram";
import type { KeyPair, Pki, Secrets } from "./types";

/**
 * What a standby cluster needs of its primary cluster: its CA bundle (the standby verifies the
 * primary's servers, and accepts its replication certificate), its replication client
 * certificate (the standby leader logs in with it), and the passwords (with salts) of the roles
 * that live in the replicated database: the same roles, so the same passwords.
 */
export interface StandbyTrust {
  caBundle: string;
  replication: KeyPair;
  rolePasswords: Record<RolePassword | SaltName, string>;
}

/** The primary's side: what it hands a standby (Pulumi output standbyTrust, a secret). */
export function standbyTrustOf(pki: Pick<Pki, "caBundle" | "replication">, secrets: Secrets): StandbyTrust {
  const rolePasswords = Object.fromEntries(ROLE_PASSWORDS.flatMap((p) => [[p, secrets[p]], [saltName(p), secrets[saltName(p)]]])) as StandbyTrust["rolePasswords"];
  return { caBundle: pki.caBundle, replication: pki.replication, rolePasswords };
}

/**
 * The standby's own PKI and secrets with the primary's trust laid over: both CA bundles
 * trusted, the primary's replication identity, the primary's role passwords. Its own node
 * certificates, CA and non-role secrets (REST API, VRRP, stats) stay its own.
 */
export function asStandbyOf(pki: Pki, secrets: Secrets, trust: StandbyTrust): { pki: Pki; secrets: Secrets } {
  const bundle = [pki.caBundle.trim(), trust.caBundle.trim()].join("\n") + "\n";
  return {
    pki: { ...pki, caBundle: bundle, replication: trust.replication },
    secrets: { ...secrets, ...trust.rolePasswords },
  };
}

/** A standby cluster not promoted: it follows its primary cluster and takes no writes. */
export function following(spec: Pick<ClusterSpec, "standby">): boolean {
  return spec.standby !== undefined && !spec.standby.promoted;
}

/** The primary's permanent replication slot for a standby cluster (Patroni slot names: [a-z0-9_]). */
export function standbySlot(standbyClusterName: string): string {
  return `standby_${standbyClusterName.replace(/-/g, "_")}`;
}

/** Patroni's standby_cluster section: stream from the primary cluster's entry, on its slot for us. */
export function standbyClusterConfig(spec: ClusterSpec): Record<string, unknown> | undefined {
  if (!spec.standby || spec.standby.promoted) return undefined;
  const repo = spec.standby.repository;
  return {
    host: spec.standby.host,
    port: spec.standby.port,
    primary_slot_name: standbySlot(spec.clusterName),
    create_replica_methods: ["basebackup"],
    // WAL streaming cannot serve comes from the primary's repository (roles/pgbackrest: standby).
    ...(repo ? { restore_command: `pgbackrest --stanza=${repo.stanza} archive-get %f "%p"` } : {}),
  };
}

/** The primary's repository a standby that follows reads WAL from, if its stack names one. */
export function primaryRepository(spec: Pick<ClusterSpec, "standby">): NonNullable<ClusterSpec["standby"]>["repository"] | undefined {
  return following(spec) ? spec.standby!.repository : undefined;
}

/**
 * The client certificate a primary's backup host admits for its standby clusters' WAL fallback:
 * the replication certificate, which a standby holds anyway (its leader streams with it).
 */
export const STANDBY_REPOSITORY_CLIENT = CLIENT_CERTS.replication;
