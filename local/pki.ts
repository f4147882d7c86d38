// Local PKI: the same certificates infra issues with @pulumi/tls (ECDSA P-256, same subjects,
// SANs, usages and lifetimes from model/certs.ts), generated in-process for the local stack and
// for tests, where no Pulumi engine runs.
import "reflect-metadata"; // @peculiar/x509 (via tsyringe) needs it loaded first
import * as crypto from "crypto";
import * as x509 from "@peculiar/x509";
import type { ClusterSpec } from "../model/config";
import { caSubject, certRequests, signingGeneration, splitCerts, type CertRequest } from "../model/certs";
import type { KeyPair, Pki } from "../roles/types";

x509.cryptoProvider.set(crypto.webcrypto as unknown as Crypto);
const alg = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };

export interface LocalPkiState {
  /** CAs by generation (spec.tls.caGenerations); a generation no longer listed is dropped. */
  cas: Record<string, KeyPair>;
  /** Certificates by request id, each with the request it was issued for (to re-issue on change). */
  certs: Record<string, KeyPair & { request: string }>;
}

async function exportKey(k: CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await crypto.webcrypto.subtle.exportKey("pkcs8", k as any), "PRIVATE KEY") + "\n";
}

/**
 * A distinguished name built attribute by attribute, never parsed from a string: a value such as
 * tls.rotation = "1, CN=evil" stays one attribute value. Values go in as typed strings, which
 * @peculiar/x509 takes literally (a plain string value would still be unescaped, and one starting
 * with '#' read as hex DER). PrintableString where the value allows it, as @pulumi/tls writes it.
 */
export function distinguishedName(attributes: [type: string, value: string][]): x509.Name {
  return new x509.Name(attributes.map(([type, value]) => ({
    [type]: [x509.Name.isPrintableString(value) ? { printableString: value } : { utf8String: value }],
  })));
}

function serial(): string {
  return crypto.randomBytes(16).toString("hex").replace(/^[89a-f]/, "1");
}

function hours(from: Date, h: number): Date {
  return new Date(from.getTime() + h * 3600_000);
}

const usageBits: Record<string, number> = {
  digital_signature: x509.KeyUsageFlags.digitalSignature,
  key_encipherment: x509.KeyUsageFlags.keyEncipherment,
};

export async function issueCa(spec: ClusterSpec, generation: string, now = new Date()): Promise<KeyPair> {
  const keys = await crypto.webcrypto.subtle.generateKey(alg, true, ["sign", "verify"]) as CryptoKeyPair;
  const s = caSubject(spec, generation);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: distinguishedName([["CN", s.commonName], ["O", s.organization]]),
    notBefore: now,
    notAfter: hours(now, spec.tls.caValidityHours),
    signingAlgorithm: alg,
    keys: keys as any,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey as any),
    ],
  });
  return { cert: cert.toString("pem") + "\n", key: await exportKey(keys.privateKey) };
}

export async function issueCert(spec: ClusterSpec, ca: KeyPair, req: CertRequest, now = new Date()): Promise<KeyPair> {
  const caCert = new x509.X509Certificate(ca.cert);
  const caKey = await crypto.webcrypto.subtle.importKey("pkcs8", x509.PemConverter.decode(ca.key)[0], alg, false, ["sign"]);
  const keys = await crypto.webcrypto.subtle.generateKey(alg, true, ["sign", "verify"]) as CryptoKeyPair;
  const eku = [
    ...(req.usages.includes("server_auth") ? [x509.ExtendedKeyUsage.serverAuth] : []),
    ...(req.usages.includes("client_auth") ? [x509.ExtendedKeyUsage.clientAuth] : []),
  ];
  const san = [...req.dnsNames.map((v) => ({ type: "dns" as const, value: v })), ...req.ipAddresses.map((v) => ({ type: "ip" as const, value: v }))];
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    // 2.5.4.5 = serialNumber, as @pulumi/tls writes it.
    subject: distinguishedName([["CN", req.commonName], ["O", "pgcluster"], ["2.5.4.5", req.generation]]),
    issuer: caCert.subjectName,
    notBefore: now,
    notAfter: hours(now, spec.tls.certValidityHours),
    signingAlgorithm: alg,
    publicKey: keys.publicKey as any,
    signingKey: caKey as any,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(req.usages.reduce((a, u) => a | (usageBits[u] ?? 0), 0), true),
      new x509.ExtendedKeyUsageExtension(eku, false),
      ...(san.length ? [new x509.SubjectAlternativeNameExtension(san, false)] : []),
      await x509.AuthorityKeyIdentifierExtension.create(caCert, false),
    ],
  });
  return { cert: cert.toString("pem") + "\n", key: await exportKey(keys.privateKey) };
}

export class CaSwitchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CaSwitchError";
  }
}

/** CAs inside their early-renewal window: each needs a CA rotation (a new generation), not a re-issue. */
export function caRenewalWarnings(spec: ClusterSpec, state: LocalPkiState, now = new Date()): string[] {
  return Object.entries(state.cas)
    .filter(([, ca]) => needsRenewal(ca.cert, spec.tls.earlyRenewalHours, now))
    .map(([gen, ca]) => `CA ${gen} expires ${new x509.X509Certificate(ca.cert).notAfter.toISOString()}: rotate to a new CA generation with pgcluster:tls.caGenerations (README, rotation runbook)`);
}

/** True when a certificate is inside its early-renewal window (or already expired). */
export function needsRenewal(certPem: string, earlyRenewalHours: number, now = new Date()): boolean {
  const c = new x509.X509Certificate(certPem);
  return c.notAfter.getTime() - earlyRenewalHours * 3600_000 <= now.getTime();
}

/**
 * Bring a PKI state up to date: keep what is valid and was issued for the same request, issue
 * what is missing, changed (a new address, rotation value or signing CA) or due for renewal.
 */
export async function ensurePki(spec: ClusterSpec, addresses: Record<string, string>, state: LocalPkiState | undefined, now = new Date()): Promise<LocalPkiState> {
  const trusted = Object.keys(state?.cas ?? {});
  if (trusted.length && !spec.tls.caGenerations.some((g) => trusted.includes(g)))
    throw new CaSwitchError(
      `pgcluster:tls.caGenerations ${JSON.stringify(spec.tls.caGenerations)} keeps none of the CAs the cluster trusts now (${trusted.join(", ")}): ` +
      `the nodes would change trust one by one during the apply and stop talking to each other. Rotate in three applies: ` +
      `[${trusted[0]}, new], then [new, ${trusted[0]}], then [new] (README, rotation runbook). Nothing was changed.`);
  const cas: Record<string, KeyPair> = {};
  const renewed = new Set<string>();
  for (const gen of spec.tls.caGenerations) {
    const old = state?.cas?.[gen];
    // A CA is never replaced in place while it is valid (that too would switch trust mid-apply):
    // inside its renewal window it is kept, and caRenewalWarnings() asks for a CA rotation.
    if (old && new x509.X509Certificate(old.cert).notAfter.getTime() > now.getTime()) cas[gen] = old;
    else { cas[gen] = await issueCa(spec, gen, now); renewed.add(gen); }
  }
  const signer = signingGeneration(spec);
  const certs: LocalPkiState["certs"] = {};
  for (const req of certRequests(spec, (h) => addresses[h])) {
    const fingerprint = JSON.stringify(req);
    const old = state?.certs[req.id];
    if (!renewed.has(signer) && old && old.request === fingerprint && !needsRenewal(old.cert, spec.tls.earlyRenewalHours, now)) certs[req.id] = old;
    else certs[req.id] = { ...(await issueCert(spec, cas[signer], req, now)), request: fingerprint };
  }
  return { cas, certs };
}

export function toPki(spec: ClusterSpec, state: LocalPkiState): Pki {
  const pair = ({ cert, key }: KeyPair): KeyPair => ({ cert, key });
  const { nodes, replication, pooler } = splitCerts(state.certs);
  return {
    ca: state.cas[signingGeneration(spec)].cert,
    caBundle: spec.tls.caGenerations.map((g) => state.cas[g].cert).join(""),
    nodes: Object.fromEntries(Object.entries(nodes).map(([k, v]) => [k, pair(v)])),
    replication: pair(replication),
    pooler: pair(pooler),
  };
}
