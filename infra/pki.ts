// The cluster's PKI with @pulumi/tls: one CA, a certificate per node (SANs: its IP and name,
// localhost, the balancers' IPs and the address in front of them), a client certificate for
// replication. Private keys live only in Pulumi's encrypted state; validity and early renewal
// come from the stack config.
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import type { ClusterSpec } from "../model/config";
import { caSubject, certRequests, signingGeneration, KEY_ALGORITHM } from "../model/certs";
import { hostLabel, type Children } from "./children";

export interface PkiOutputs {
  /** The signing CA. */
  ca: pulumi.Output<string>;
  /** Every trusted CA generation, signing one first: what nodes and clients trust. */
  caBundle: pulumi.Output<string>;
  certs: Record<string, { cert: pulumi.Output<string>; key: pulumi.Output<string> }>;
}

/** `c`: names and parents the resources (children.ts); `${clusterName}-…` are their stack-root names before PgCluster. */
/** `entryAddresses`: what clients dial in front of the balancers (GCP: the internal load balancer); node certificates carry them. */
export function clusterPki(spec: ClusterSpec, address: (host: string) => pulumi.Input<string>, c: Children, entryAddresses: pulumi.Input<string>[] = []): PkiOutputs {
  const n = spec.clusterName;
  const keyArgs = { algorithm: KEY_ALGORITHM.algorithm, ecdsaCurve: KEY_ALGORITHM.curve };
  // One CA per trusted generation; a generation dropped from the list is deleted with it.
  const cas = Object.fromEntries(spec.tls.caGenerations.map((gen) => {
    const key = new tls.PrivateKey(c.name(`ca-${gen}-key`), keyArgs, c.opts(`${n}-ca-${gen}-key`));
    const cert = new tls.SelfSignedCert(c.name(`ca-${gen}`), {
      privateKeyPem: key.privateKeyPem,
      isCaCertificate: true,
      subject: caSubject(spec, gen),
      validityPeriodHours: spec.tls.caValidityHours,
      // No earlyRenewalHours: replacing a CA in place would switch the nodes' trust in one
      // apply. Near its end it asks for a CA rotation (a new generation) instead.
      allowedUses: ["cert_signing", "crl_signing", "digital_signature"],
    }, c.opts(`${n}-ca-${gen}`));
    cert.validityEndTime.apply((end) => {
      if (end && Date.parse(end) - spec.tls.earlyRenewalHours * 3600_000 <= Date.now())
        pulumi.log.warn(`CA ${gen} expires ${end}: rotate to a new CA generation with pgcluster:tls.caGenerations (README, rotation runbook)`, cert);
    });
    return [gen, { key, cert }];
  }));
  const { key: caKey, cert: ca } = cas[signingGeneration(spec)];
  const certs: PkiOutputs["certs"] = {};
  for (const req of certRequests(spec, address, entryAddresses)) {
    const id = hostLabel(spec, req.id);
    const key = new tls.PrivateKey(c.name(`${id}-key`), keyArgs, c.opts(`${n}-${req.id}-key`));
    const csr = new tls.CertRequest(c.name(`${id}-csr`), {
      privateKeyPem: key.privateKeyPem,
      subject: { commonName: req.commonName, organization: "pgcluster", serialNumber: req.generation },
      dnsNames: req.dnsNames,
      ipAddresses: req.ipAddresses,
    }, c.opts(`${n}-${req.id}-csr`));
    const cert = new tls.LocallySignedCert(c.name(`${id}-cert`), {
      certRequestPem: csr.certRequestPem,
      caPrivateKeyPem: caKey.privateKeyPem,
      caCertPem: ca.certPem,
      validityPeriodHours: spec.tls.certValidityHours,
      earlyRenewalHours: spec.tls.earlyRenewalHours,
      allowedUses: req.usages,
    }, c.opts(`${n}-${req.id}-cert`));
    certs[req.id] = { cert: cert.certPem, key: pulumi.secret(key.privateKeyPem) };
  }
  const caBundle = pulumi.all(spec.tls.caGenerations.map((g) => cas[g].cert.certPem)).apply((pems) => pems.join(""));
  return { ca: ca.certPem, caBundle, certs };
}
