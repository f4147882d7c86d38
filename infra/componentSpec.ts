// A cluster's spec for PgCluster, in a user's own Pulumi program: the keys of the stack config
// (without "pgcluster:") through the same validation, minus what PgCluster takes as arguments,
// so that secrets stay Pulumi secrets: the SSH private key and the passwords.
import * as pulumi from "@pulumi/pulumi";
import { BACKUP_PASSPHRASE, ConfigError, SECRET_KEYS, configKey, parseClusterSpec, type ClusterSpec } from "../model/config";

export interface ComponentSpecContext {
  /** Names the deployment when `environment` is not given (default: the Pulumi stack's name). */
  stack?: string;
  /** Where the values come from, for error messages (default: "PgCluster spec"). */
  source?: string;
}

/** Grammar of a password PgCluster is given, as config.ts's `secretValue`: a unit test keeps the two equal. */
export const SECRET_VALUE = /^[\x21-\x7e]{16,128}$/;

/** Passes the stack config's "key is set" check; never used: the key is PgClusterArgs.sshPrivateKey. */
const KEY_GIVEN_AS_ARGUMENT = "-----BEGIN OPENSSH PRIVATE KEY-----\nPgClusterArgs.sshPrivateKey\n-----END OPENSSH PRIVATE KEY-----";

/**
 * Validates `raw` like a stack config and returns the ClusterSpec PgCluster takes. Throws
 * ConfigError listing every problem. The SSH key and passwords are refused here: they are
 * arguments of PgCluster (pulumi secrets), not plain values in a spec.
 */
export function parseComponentSpec(raw: Record<string, unknown>, ctx: ComponentSpecContext = {}): ClusterSpec {
  const source = ctx.source ?? "PgCluster spec";
  const misplaced = ["sshPrivateKey", ...SECRET_KEYS, BACKUP_PASSPHRASE].filter((k) => raw[k] !== undefined);
  if (misplaced.length)
    throw new ConfigError(misplaced.map((k) => `${configKey([k])}: is an argument of PgCluster, not part of its spec: pass it as ${k === "sshPrivateKey" ? k : `secrets.${k}`}, a pulumi secret`), source);
  // The stack config's own rules ask it for the SSH key and, with secrets.generate false, for
  // every password; here both come as arguments, and PgCluster checks they are there.
  const secrets = raw.secrets;
  const noGenerate = !!secrets && typeof secrets === "object" && !Array.isArray(secrets) && (secrets as Record<string, unknown>).generate === false;
  const spec = parseClusterSpec(
    { ...raw, ...(noGenerate ? { secrets: { ...(secrets as object), generate: true } } : {}), sshPrivateKey: KEY_GIVEN_AS_ARGUMENT },
    { stack: ctx.stack ?? pulumi.getStack(), secretKeys: new Set(["sshPrivateKey"]), source },
  );
  return noGenerate ? { ...spec, secrets: { ...spec.secrets, generate: false } } : spec;
}
