// The stack program's inputs: the stack's config from the Pulumi engine, validated before anything
// is created, and what PgCluster takes besides the spec (the SSH key, passwords set as secrets).
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { BACKUP_PASSPHRASE, PROJECT, type ClusterSpec, type SecretName, decodeConfigValue, parseClusterSpec } from "../model/config";
import { PROJECT_ROOT } from "../model/stackFile";

// Exported by the SDK's runtime at run time, not in its typings.
const { isConfigSecret } = require("@pulumi/pulumi/runtime/config") as { isConfigSecret(k: string): boolean };

export function loadSpec(): ClusterSpec {
  const raw: Record<string, unknown> = {};
  const secretKeys = new Set<string>();
  for (const [k, v] of Object.entries(pulumi.runtime.allConfig())) {
    if (!k.startsWith(`${PROJECT}:`)) continue;
    const key = k.slice(PROJECT.length + 1);
    raw[key] = decodeConfigValue(v);
    if (isConfigSecret(k)) secretKeys.add(key);
  }
  const stack = pulumi.getStack();
  return parseClusterSpec(raw, { stack, secretKeys, source: `Pulumi.${stack}.yaml` });
}

/** A secret config value as a Pulumi secret (undefined when not set). */
export function configSecret(key: string): pulumi.Output<string> | undefined {
  return new pulumi.Config(PROJECT).getSecret(key);
}

/** The SSH private key: pgcluster:sshPrivateKey (a secret), or the file ssh.privateKeyFile names (relative to the project). */
export function sshPrivateKey(spec: ClusterSpec): pulumi.Output<string> {
  const fromConfig = configSecret("sshPrivateKey");
  if (fromConfig) return fromConfig;
  const file = path.resolve(PROJECT_ROOT, spec.ssh.privateKeyFile!);
  if (!fs.existsSync(file)) throw new Error(`${PROJECT}:ssh.privateKeyFile: ${file} does not exist; create the key or set ${PROJECT}:sshPrivateKey as a secret`);
  return pulumi.secret(fs.readFileSync(file, "utf8"));
}

/** The passwords the stack config sets (as secrets; loadSpec refused plain ones). */
export function providedSecrets(spec: ClusterSpec): Partial<Record<SecretName | typeof BACKUP_PASSPHRASE, pulumi.Output<string>>> {
  const keys: string[] = [...spec.secrets.provided, ...(spec.backup.enabled && spec.secrets.backupPassphraseProvided ? [BACKUP_PASSPHRASE] : [])];
  return Object.fromEntries(keys.map((k) => [k, configSecret(k)!]));
}
