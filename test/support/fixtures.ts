// Shared test inputs: a stack's spec with a real (in-process) PKI and fixed secrets.
import { readStackFile, specFromStackFile } from "../../infra/stackFile";
import type { ClusterSpec } from "../../infra/config";
import { SECRET_KEYS } from "../../infra/config";
import { ensurePki, toPki, type LocalPkiState } from "../../local/pki";
import type { Host, Pki, Secrets } from "../../roles/types";

export function localSpec(): ClusterSpec {
  return specFromStackFile(readStackFile("local"));
}

export function hostsOf(spec: ClusterSpec, addr: (i: number) => string = (i) => `10.99.0.${10 + i}`): Host[] {
  return spec.hosts.map((h, i) => ({ ...h, address: h.address ?? addr(i) }));
}

export const TEST_SECRETS: Secrets = Object.fromEntries(
  SECRET_KEYS.map((k) => [k, `test-${k}-'quote"dq$dollar`]),
) as Secrets;

let cached: Promise<LocalPkiState> | undefined;
/** One PKI for the whole test run: ECDSA keys are cheap, but not free. */
export async function testPki(spec: ClusterSpec, hosts: Host[]): Promise<Pki> {
  cached ??= ensurePki(spec, Object.fromEntries(hosts.map((h) => [h.name, h.address])), undefined);
  return toPki(await cached);
}
