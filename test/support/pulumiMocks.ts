// Runs the Pulumi program in-process under pulumi.runtime.setMocks (no CLI, no plugins) with a
// stack file's config, recording every registered resource and its dependencies.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import YAML from "yaml";
import * as pulumi from "@pulumi/pulumi";
import { PROJECT_ROOT } from "../../spec/stackFile";

export const SECRET_SIG = "4dabf18193072939515e22adb298388d";

export interface Registered {
  type: string;
  name: string;
  inputs: Record<string, any>;
  dependencies: string[];
  urn?: string;
}

export function isSecretValue(v: unknown): boolean {
  return !!v && typeof v === "object" && SECRET_SIG in (v as object);
}

export function reveal(v: any): any {
  return isSecretValue(v) ? v.value : v;
}

/** Stack file config as the CLI hands it to a program: strings, structured values as JSON. */
export function stackConfig(stack: string, extra: Record<string, string> = {}): Record<string, string> {
  const doc = YAML.parse(fs.readFileSync(path.join(PROJECT_ROOT, `Pulumi.${stack}.yaml`), "utf8"));
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(doc.config ?? {})) out[k] = typeof v === "object" ? JSON.stringify(v) : String(v);
  return { ...out, ...extra };
}

/** A well-formed ed25519 host key, distinct per seed (an instance name, an address). */
export function fakeHostKey(seed: string): string {
  const blob = Buffer.alloc(51);
  blob.writeUInt32BE(11, 0);
  blob.write("ssh-ed25519", 4, "latin1");
  blob.writeUInt32BE(32, 15);
  crypto.createHash("sha256").update(seed).digest().copy(blob, 19);
  return `ssh-ed25519 ${blob.toString("base64")}`;
}

/** Guest attributes the mock Compute API answers: instances named here have published nothing. */
export const guestAttributes = { unpublished: new Set<string>(), asked: [] as { name: string; zone: string; variableKey: string }[] };

/** The name the mock gives an instance, like Pulumi's auto-naming: logical name plus a suffix. */
export function mockInstanceName(logical: string): string {
  return `${logical}-${crypto.createHash("sha256").update(logical).digest("hex").slice(0, 7)}`;
}

let fakeIp = 10;
const computed: Record<string, (inputs: any, name: string) => Record<string, unknown>> = {
  "gcp:compute/instance:Instance": (inputs, name) => ({
    name: mockInstanceName(name),
    networkInterfaces: (inputs.networkInterfaces ?? []).map((ni: any) => ({
      ...ni,
      networkIp: `10.9.0.${fakeIp++}`,
      accessConfigs: ni.accessConfigs?.map(() => ({ natIp: "198.51.100.7" })),
    })),
  }),
  "gcp:serviceaccount/account:Account": (inputs) => ({ email: `${inputs.accountId}@example.iam.gserviceaccount.com` }),
  "tls:index/privateKey:PrivateKey": (_i, name) => ({ privateKeyPem: `-----BEGIN PRIVATE KEY-----\n${name}\n-----END PRIVATE KEY-----\n`, publicKeyOpenssh: "ssh-ed25519 AAAA" }),
  "tls:index/selfSignedCert:SelfSignedCert": (_i, name) => ({ certPem: `-----BEGIN CERTIFICATE-----\n${name}\n-----END CERTIFICATE-----\n` }),
  "tls:index/certRequest:CertRequest": (_i, name) => ({ certRequestPem: `csr ${name}` }),
  "tls:index/locallySignedCert:LocallySignedCert": (_i, name) => ({ certPem: `-----BEGIN CERTIFICATE-----\n${name}\n-----END CERTIFICATE-----\n` }),
  "random:index/randomPassword:RandomPassword": (_i, name) => ({ result: { [SECRET_SIG]: "1b47061264138c4ac30d75fd1eb44270", value: `pw-${name}` } }),
  // HostKeyScan (trust on first use): the key ssh-keyscan would have recorded.
  "pulumi-nodejs:dynamic:Resource": (inputs, name) => (name.endsWith("-hostkey") ? { hostKey: fakeHostKey(`scan ${inputs.address}`) } : {}),
  "random:index/randomBytes:RandomBytes": (i, name) => ({ base64: { [SECRET_SIG]: "1b47061264138c4ac30d75fd1eb44270", value: crypto.createHash("sha256").update(name).digest().subarray(0, i.length).toString("base64") } }),
};

function mockCall(a: pulumi.runtime.MockCallArgs): Record<string, any> {
  if (a.token === "gcp:compute/getInstanceGuestAttributes:getInstanceGuestAttributes") {
    guestAttributes.asked.push({ name: a.inputs.name, zone: a.inputs.zone, variableKey: a.inputs.variableKey });
    if (guestAttributes.unpublished.has(a.inputs.name)) return { ...a.inputs, variableValue: "" };
    // Published as the bare base64 blob, as the guest agent writes it.
    return { ...a.inputs, variableValue: fakeHostKey(`guest ${a.inputs.name}`).split(" ")[1] };
  }
  return a.inputs;
}

export async function withMocks(stack: string, config: Record<string, string>, secretKeys: string[]): Promise<Registered[]> {
  const registered: Registered[] = [];
  pulumi.runtime.setAllConfig(config, secretKeys);
  await pulumi.runtime.setMocks({
    newResource(a) {
      const state = { ...a.inputs, ...(computed[a.type]?.(a.inputs, a.name) ?? {}) };
      registered.push({ type: a.type, name: a.name, inputs: a.inputs, dependencies: [] });
      return { id: `${a.name}-id`, state };
    },
    call: mockCall,
  }, "pgcluster", stack, false);
  // The mock engine's request carries each resource's dependency URNs; keep them.
  const monitor: any = (pulumi.runtime as any).getMonitor();
  const orig = monitor.registerResource.bind(monitor);
  monitor.registerResource = (req: any, cb: any) => {
    const name = req.getName();
    const deps: string[] = req.getDependenciesList();
    orig(req, (err: unknown, resp: any) => {
      const r = [...registered].reverse().find((x) => x.name === name && x.type === req.getType());
      if (r) { r.dependencies = deps; r.urn = resp?.getUrn(); }
      cb(err, resp);
    });
  };
  return registered;
}

export function settle<T>(o: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => o.apply((v) => { resolve(v); return v; }));
}
