// The plan is data: both drivers (Pulumi remote.Command, local SSH) only transport it.
import type { ClusterSpec, HostSpec, Role, SecretName } from "../model/config";
import type { SaltName } from "./scram";
import type { Action } from "./step";

export type { ClusterSpec, Role, SecretName };

/** A host with its address resolved (static inventory, or a GCP instance's internal IP). */
export interface Host extends HostSpec {
  address: string;
}

export interface KeyPair { cert: string; key: string }

/** PEM material the roles install. `caBundle` is what nodes trust (more than one CA during a CA rotation). */
export interface Pki {
  ca: string;
  caBundle: string;
  nodes: Record<string, KeyPair>;
  /** Client certificate with CN=replicator: replicas authenticate to the primary with it. */
  replication: KeyPair;
  /** Client certificate pgBouncer logs in to PostgreSQL with (pg_ident maps it to the managed users). */
  pooler: KeyPair;
}

/**
 * Passwords, and the SCRAM salt of each PostgreSQL role's password (roles/scram.ts); the backup
 * repository's cipher passphrase when backup.enabled (model/config.ts BACKUP_PASSPHRASE).
 */
export type Secrets = Record<SecretName, string> & Record<SaltName, string> & { backupCipherPassphrase?: string };

export interface Step {
  /** "<host>/<role>", unique in the plan. */
  id: string;
  host: string;
  role: string;
  /** Step ids that must have succeeded first. */
  after: string[];
  /** What the step does, in order; roles/script.ts makes the bash program of it. May hold secrets. */
  actions: Action[];
  /** sha256 of the step's script: changes exactly when what the step does changes. */
  digest: string;
}

/** A step's place in the plan, known from the spec alone (host names and roles). */
export type StepNode = Pick<Step, "id" | "host" | "role" | "after">;

export interface Plan {
  cluster: string;
  steps: Step[];
}

export interface RoleContext {
  spec: ClusterSpec;
  hosts: Host[];
  pki: Pki;
  secrets: Secrets;
  /**
   * The address clients dial in front of the balancers, when it is not a balancer's own: on GCP
   * the internal load balancer's (required there). Every balancer binds it as well and answers
   * its health checks. Absent for a static inventory: clients dial the first balancer.
   */
  entryAddress?: string;
  /**
   * Hosts being decommissioned (scale in, first half): not in `hosts` nor `spec.hosts`, so no
   * role configures anything for them; the firewall alone still admits them as their roles did,
   * so that their decommission step still reaches the cluster.
   */
  leaving?: Host[];
}

export function stepId(host: string, role: string): string {
  return `${host}/${role}`;
}
