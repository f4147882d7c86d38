// Reads the stack's config from the Pulumi engine and validates it before anything is created.
import * as pulumi from "@pulumi/pulumi";
import { PROJECT, type ClusterSpec, decodeConfigValue, parseClusterSpec } from "../spec/config";

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
