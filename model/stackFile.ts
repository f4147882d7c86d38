// Reads Pulumi.<stack>.yaml without the Pulumi CLI (local driver, drift, tests): the same
// values the CLI would hand the program, minus encrypted ones, which only the CLI can decrypt.
import * as fs from "fs";
import * as path from "path";
import YAML from "yaml";
import { PROJECT, type ClusterSpec, parseClusterSpec } from "./config";

export const PROJECT_ROOT = path.join(__dirname, "..");

export interface StackFile {
  stack: string;
  file: string;
  /** pgcluster:* values, prefix removed. */
  values: Record<string, unknown>;
  /** Keys held encrypted (`secure:`), prefix removed. */
  secureKeys: string[];
}

export function stackFilePath(stack: string): string {
  return path.join(PROJECT_ROOT, `Pulumi.${stack}.yaml`);
}

export function readStackFile(stack: string, file = stackFilePath(stack)): StackFile {
  if (!fs.existsSync(file)) throw new Error(`no stack file ${file}; stacks here: ${listStacks().join(", ")}`);
  const doc = YAML.parse(fs.readFileSync(file, "utf8")) ?? {};
  const config = (doc.config ?? {}) as Record<string, unknown>;
  const values: Record<string, unknown> = {};
  const secureKeys: string[] = [];
  for (const [k, v] of Object.entries(config)) {
    if (!k.startsWith(`${PROJECT}:`)) continue;
    const key = k.slice(PROJECT.length + 1);
    if (v && typeof v === "object" && !Array.isArray(v) && "secure" in v) secureKeys.push(key);
    else values[key] = v;
  }
  return { stack, file, values, secureKeys };
}

export function listStacks(): string[] {
  return fs.readdirSync(PROJECT_ROOT).map((f) => /^Pulumi\.(.+)\.yaml$/.exec(f)?.[1]).filter((s): s is string => !!s).sort();
}

/** The spec of a stack file, for tools that run without the Pulumi CLI. */
export function specFromStackFile(sf: StackFile): ClusterSpec {
  if (sf.secureKeys.length)
    throw new Error(`${sf.file}: ${sf.secureKeys.map((k) => `${PROJECT}:${k}`).join(", ")} are encrypted Pulumi secrets; only the Pulumi CLI can read them (pulumi up -s ${sf.stack}), or remove them so pgcluster generates and keeps them in .pgcluster/${sf.stack}/`);
  return parseClusterSpec(sf.values, { stack: sf.stack, secretKeys: new Set(), source: path.basename(sf.file) });
}
