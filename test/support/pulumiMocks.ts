// Runs the Pulumi program in-process under pulumi.runtime.setMocks (no CLI, no plugins) with a
// stack file's config, recording every registered resource and its dependencies.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import YAML from "yaml";
import * as pulumi from "@pulumi/pulumi";
import { PROJECT_ROOT } from "../../model/stackFile";

export const SECRET_SIG = "4dabf18193072939515e22adb298388d";

/** An alias as the SDK sent it: a URN, or a spec (empty name/type: the resource's own). */
export interface AliasSent {
  urn?: string;
  name?: string;
  type?: string;
  /** The alias says "no parent": the resource was at the stack root. */
  noParent?: boolean;
  parentUrn?: string;
}

export interface Registered {
  type: string;
  name: string;
  inputs: Record<string, any>;
  /** Custom resource (false: a component). */
  custom: boolean;
  dependencies: string[];
  urn?: string;
  /** The parent's URN; "" at the stack root. */
  parent?: string;
  aliases: AliasSent[];
  /** What the mock returned as the resource's state (inputs and computed outputs). */
  state: Record<string, any>;
  /** The resource option ignoreChanges, as sent. */
  ignoreChanges?: string[];
  /** A component's registerOutputs, as sent (secrets keep their signature). */
  outputs?: Record<string, any>;
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

/** An internal address GCP picks when none is asked for (mock): outside the instances' 10.9.0.10… */
export const MOCK_INTERNAL_ADDRESS = "10.9.0.200";

/** A GCE resource's selfLink, as the API returns it. */
export function mockSelfLink(kind: string, where: string, name: string): string {
  return `https://www.googleapis.com/compute/v1/projects/mock-project/${where}/${kind}/${name}`;
}

/** What a StackReference reads (mock): outputs by stack name; a stack not here has none. */
export const stackOutputs: Record<string, Record<string, unknown>> = {};

/** Instance addresses are numbered in registration order from 10.9.0.10, anew for each program run. */
let fakeIp = 10;
const computed: Record<string, (inputs: any, name: string) => Record<string, unknown>> = {
  "gcp:compute/instance:Instance": (inputs, name) => ({
    name: mockInstanceName(name),
    selfLink: mockSelfLink("instances", `zones/${inputs.zone}`, mockInstanceName(name)),
    networkInterfaces: (inputs.networkInterfaces ?? []).map((ni: any) => ({
      ...ni,
      networkIp: `10.9.0.${fakeIp++}`,
      accessConfigs: ni.accessConfigs?.map(() => ({ natIp: "198.51.100.7" })),
    })),
  }),
  "gcp:serviceaccount/account:Account": (inputs) => ({ email: `${inputs.accountId}@example.iam.gserviceaccount.com` }),
  "gcp:compute/address:Address": (inputs) => ({ address: inputs.address ?? MOCK_INTERNAL_ADDRESS }),
  "gcp:compute/instanceGroup:InstanceGroup": (inputs, name) => ({ selfLink: mockSelfLink("instanceGroups", `zones/${inputs.zone}`, name) }),
  "tls:index/privateKey:PrivateKey": (_i, name) => ({ privateKeyPem: `-----BEGIN PRIVATE KEY-----\n${name}\n-----END PRIVATE KEY-----\n`, publicKeyOpenssh: "ssh-ed25519 AAAA" }),
  "tls:index/selfSignedCert:SelfSignedCert": (_i, name) => ({ certPem: `-----BEGIN CERTIFICATE-----\n${name}\n-----END CERTIFICATE-----\n` }),
  "tls:index/certRequest:CertRequest": (_i, name) => ({ certRequestPem: `csr ${name}` }),
  "tls:index/locallySignedCert:LocallySignedCert": (_i, name) => ({ certPem: `-----BEGIN CERTIFICATE-----\n${name}\n-----END CERTIFICATE-----\n` }),
  "random:index/randomPassword:RandomPassword": (_i, name) => ({ result: { [SECRET_SIG]: "1b47061264138c4ac30d75fd1eb44270", value: `pw-${name}` } }),
  // HostKeyScan (trust on first use): the key ssh-keyscan would have recorded; HostDrift: no drift, as its create() says.
  "pulumi-nodejs:dynamic:Resource": (inputs, name) => (name.endsWith("-hostkey") ? { hostKey: fakeHostKey(`scan ${inputs.address}`) } : name.endsWith("-drift") ? { drift: [] } : {}),
  // Outputs marked secret by the referenced stack stay secret through the reference.
  "pulumi:pulumi:StackReference": (inputs) => ({ outputs: stackOutputs[inputs.name] ?? {}, secretOutputNames: Object.keys(stackOutputs[inputs.name] ?? {}) }),
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

/**
 * `adopt`: a resource registered with an alias to a stack-root name gets the id and computed
 * outputs the mock gave that name, as the engine keeps an adopted resource's state.
 */
export async function withMocks(stack: string, config: Record<string, string>, secretKeys: string[], project = "pgcluster", opts: { adopt?: boolean } = {}): Promise<Registered[]> {
  const registered: Registered[] = [];
  const adoptedName = new Map<string, string>();
  fakeIp = 10;
  pulumi.runtime.setAllConfig(config, secretKeys);
  await pulumi.runtime.setMocks({
    newResource(a) {
      const identity = (opts.adopt && adoptedName.get(`${a.type} ${a.name}`)) || a.name;
      const state = { ...a.inputs, ...(computed[a.type]?.(a.inputs, identity) ?? {}) };
      registered.push({ type: a.type, name: a.name, inputs: a.inputs, custom: a.custom !== false, dependencies: [], aliases: [], state });
      return { id: `${identity}-id`, state };
    },
    call: mockCall,
  }, project, stack, false);
  // The mock engine's request carries each resource's dependency URNs, parent and aliases; keep them.
  const monitor: any = (pulumi.runtime as any).getMonitor();
  const orig = monitor.registerResource.bind(monitor);
  monitor.registerResource = (req: any, cb: any) => {
    const name = req.getName();
    const deps: string[] = req.getDependenciesList();
    const parent: string = req.getParent();
    const aliases: AliasSent[] = req.getAliasesList().map((a: any) => {
      if (a.hasSpec()) {
        const s = a.getSpec();
        return { name: s.getName(), type: s.getType(), noParent: s.getNoparent(), parentUrn: s.getParenturn() };
      }
      return { urn: a.getUrn() };
    });
    const root = aliases.find((x) => x.noParent && x.name);
    if (root) adoptedName.set(`${req.getType()} ${name}`, root.name!);
    orig(req, (err: unknown, resp: any) => {
      const r = [...registered].reverse().find((x) => x.name === name && x.type === req.getType());
      if (r) Object.assign(r, { dependencies: deps, urn: resp?.getUrn(), parent, aliases, ignoreChanges: req.getIgnorechangesList() });
      cb(err, resp);
    });
  };
  const origOutputs = monitor.registerResourceOutputs.bind(monitor);
  monitor.registerResourceOutputs = (req: any, cb: any) => {
    const r = registered.find((x) => x.urn === req.getUrn());
    if (r) r.outputs = req.getOutputs()?.toJavaScript() ?? {};
    origOutputs(req, cb);
  };
  return registered;
}

export function settle<T>(o: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => o.apply((v) => { resolve(v); return v; }));
}

/** Runs a Pulumi program module anew (as `pulumi up` would load it) and returns its exports. */
export function runProgram(modulePath: string): Record<string, any> {
  const file = require.resolve(modulePath);
  delete require.cache[file];
  return require(file);
}

/** The stack program, infra/index.ts. */
export const STACK_PROGRAM = path.join(PROJECT_ROOT, "infra", "index.ts");

/** The resource a URN names, among those registered. */
export function byUrn(rs: Registered[], urn: string | undefined): Registered | undefined {
  return urn ? rs.find((r) => r.urn === urn) : undefined;
}

/** A resource's chain of parents, nearest first, up to the stack root. */
export function ancestors(rs: Registered[], r: Registered): Registered[] {
  const out: Registered[] = [];
  for (let p = byUrn(rs, r.parent); p; p = byUrn(rs, p.parent)) out.push(p);
  return out;
}

/** Pulumi type tokens of the resources the infra tests look for. */
export const RESOURCE_TYPES = {
  address: "gcp:compute/address:Address",
  group: "gcp:compute/instanceGroup:InstanceGroup",
  backend: "gcp:compute/regionBackendService:RegionBackendService",
  health: "gcp:compute/regionHealthCheck:RegionHealthCheck",
  rule: "gcp:compute/forwardingRule:ForwardingRule",
  firewall: "gcp:compute/firewall:Firewall",
  instance: "gcp:compute/instance:Instance",
  disk: "gcp:compute/disk:Disk",
  network: "gcp:compute/network:Network",
  subnet: "gcp:compute/subnetwork:Subnetwork",
  account: "gcp:serviceaccount/account:Account",
  iam: "gcp:projects/iAMMember:IAMMember",
  csr: "tls:index/certRequest:CertRequest",
  command: "command:remote:Command",
  cluster: "pgcluster:index:PgCluster",
} as const;
