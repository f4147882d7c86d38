// Shared test inputs: a stack's spec with a real (in-process) PKI and fixed secrets.
import { readStackFile, specFromStackFile } from "../../model/stackFile";
import type { ClusterSpec } from "../../model/config";
import { SECRET_KEYS } from "../../model/config";
import { ensurePki, toPki, type LocalPkiState } from "../../local/pki";
import type { Host, Pki, Secrets } from "../../roles/types";
import { ROLE_PASSWORDS, saltName } from "../../roles/scram";

export function localSpec(): ClusterSpec {
  return specFromStackFile(readStackFile("local"));
}

export function hostsOf(spec: ClusterSpec, addr: (i: number) => string = (i) => `10.99.0.${10 + i}`): Host[] {
  return spec.hosts.map((h, i) => ({ ...h, address: h.address ?? addr(i) }));
}

export const TEST_SECRETS: Secrets = {
  ...Object.fromEntries(SECRET_KEYS.map((k) => [k, `test-${k}-'quote"dq$dollar`])),
  // Fixed, distinct salts (as a state file holds them): plans stay byte-for-byte deterministic.
  ...Object.fromEntries(ROLE_PASSWORDS.map((p, i) => [saltName(p), Buffer.alloc(16, i + 1).toString("base64")])),
} as Secrets;

let cached: Promise<LocalPkiState> | undefined;
/** One PKI for the whole test run: ECDSA keys are cheap, but not free. */
export async function testPki(spec: ClusterSpec, hosts: Host[]): Promise<Pki> {
  cached ??= ensurePki(spec, Object.fromEntries(hosts.map((h) => [h.name, h.address])), undefined);
  return toPki(spec, await cached);
}

/** The content a step's script would write to `file` (from its pgc_file here-document). */
export function fileIn(script: string, file: string): string {
  const start = script.indexOf(`pgc_file '${file}' `);
  if (start < 0) throw new Error(`script writes no ${file}`);
  const header = script.slice(start, script.indexOf("\n", start));
  const eof = /<<'([^']+)'$/.exec(header)![1];
  const body = script.slice(start + header.length + 1);
  return body.slice(0, body.indexOf(`${eof}\n`) >= 0 ? body.indexOf(`\n${eof}\n`) + 1 : undefined);
}
