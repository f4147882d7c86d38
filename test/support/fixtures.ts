// Shared test inputs: a stack's spec with a real (in-process) PKI and fixed secrets.
import { readStackFile, specFromStackFile } from "../../model/stackFile";
import type { ClusterSpec } from "../../model/config";
import { SECRET_KEYS, parseClusterSpec } from "../../model/config";
import { ensurePki, toPki, type LocalPkiState } from "../../local/pki";
import type { Host, Pki, Secrets, Step } from "../../roles/types";
import type { FileAction } from "../../roles/step";
import { ROLE_PASSWORDS, saltName } from "../../roles/scram";

export function localSpec(): ClusterSpec {
  return specFromStackFile(readStackFile("local"));
}

/** A GCP stack's spec (dev, prod), with a placeholder SSH key (the stack file has none). */
export function gcpStackSpec(stack: string): ClusterSpec {
  const sf = readStackFile(stack);
  return parseClusterSpec({ sshPrivateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n", ...sf.values }, { stack, secretKeys: new Set(["sshPrivateKey"]), source: `Pulumi.${stack}.yaml` });
}

export function hostsOf(spec: ClusterSpec, addr: (i: number) => string = (i) => `10.99.0.${10 + i}`): Host[] {
  return spec.hosts.map((h, i) => ({ ...h, address: h.address ?? addr(i) }));
}

export const TEST_SECRETS: Secrets = {
  ...Object.fromEntries(SECRET_KEYS.map((k) => [k, `test-${k}-'quote"dq$dollar`])),
  // Fixed, distinct salts (as a state file holds them): plans stay byte-for-byte deterministic.
  ...Object.fromEntries(ROLE_PASSWORDS.map((p, i) => [saltName(p), Buffer.alloc(16, i + 1).toString("base64")])),
  backupCipherPassphrase: `test-backupCipherPassphrase-'quote"dq$dollar#hash`,
} as Secrets;

let cached: Promise<LocalPkiState> | undefined;
/** One PKI for the whole test run: ECDSA keys are cheap, but not free. */
export async function testPki(spec: ClusterSpec, hosts: Host[]): Promise<Pki> {
  cached ??= ensurePki(spec, Object.fromEntries(hosts.map((h) => [h.name, h.address])), undefined);
  return toPki(spec, await cached);
}

/** The content a step installs at `file` (its file action, as the host gets it: ending in a line break). */
export function fileOf(step: Step | undefined, file: string): string {
  if (!step) throw new Error(`no such step (looking for ${file})`);
  const f = step.actions.find((a): a is FileAction => a.kind === "file" && a.path === file);
  if (!f) throw new Error(`step ${step.id} writes no ${file}`);
  return f.content.endsWith("\n") ? f.content : f.content + "\n";
}
