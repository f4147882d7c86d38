// The Pulumi program: config -> hosts -> PKI -> secrets -> compile() -> one Command per step.
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { PROJECT, SECRET_KEYS, type ClusterSpec } from "../spec/config";
import { loadSpec, configSecret } from "./pulumiConfig";
import { clusterSecrets } from "./secrets";
import { clusterPki } from "./pki";
import { splitCerts } from "../spec/certs";
import { gcpHosts } from "./gcp";
import { applyPlan, type Connection } from "./driver";
import { HostDrift } from "./hostDrift";
import { HostKeyScan } from "./hostKeys";
import { PROJECT_ROOT } from "../spec/stackFile";
import { compile, topoOrder } from "../roles/compile";
import type { Host, Pki, Plan, Secrets } from "../roles/types";
import { ports, users } from "../spec/identities";
import { placeholderSalts } from "../roles/scram";

/** The plan's shape: compiled from placeholders, so ids and order are known at registration. */
export function planShape(spec: ClusterSpec): Plan {
  const hosts: Host[] = spec.hosts.map((h, i) => ({ ...h, address: h.address ?? `192.0.2.${i + 1}` }));
  const pair = { cert: "placeholder", key: "placeholder" };
  const pki: Pki = { ca: "placeholder", caBundle: "placeholder", nodes: Object.fromEntries(hosts.map((h) => [h.name, pair])), replication: pair, pooler: pair };
  const secrets = { ...Object.fromEntries(SECRET_KEYS.map((k) => [k, "placeholder"])), ...placeholderSalts() } as Secrets;
  const plan = compile(spec, hosts, pki, secrets);
  return { ...plan, steps: topoOrder(plan) };
}

function sshPrivateKey(spec: ClusterSpec): pulumi.Output<string> {
  const fromConfig = configSecret("sshPrivateKey");
  if (fromConfig) return fromConfig;
  const file = path.resolve(PROJECT_ROOT, spec.ssh.privateKeyFile!);
  if (!fs.existsSync(file)) throw new Error(`${PROJECT}:ssh.privateKeyFile: ${file} does not exist; create the key or set ${PROJECT}:sshPrivateKey as a secret`);
  return pulumi.secret(fs.readFileSync(file, "utf8"));
}

/** A static host's key: pinned from the config, or recorded at first contact (HostKeyScan). */
function staticHostKey(spec: ClusterSpec, i: number): { key: pulumi.Input<string>; retrust: pulumi.Input<string> } {
  const h = spec.hosts[i];
  if (h.hostKey !== undefined)
    return { key: h.hostKey, retrust: `If ${h.name} was rebuilt, verify its new key out of band and set ${PROJECT}:hosts[${i}].hostKey to it` };
  const scan = new HostKeyScan(`${h.name}-hostkey`, { host: h.name, address: h.address!, port: h.sshPort });
  return { key: scan.hostKey, retrust: pulumi.interpolate`If ${h.name} was rebuilt, verify its new key out of band and record it again: pulumi up --replace '${scan.urn}'` };
}

function connectionUrl(user: string, password: pulumi.Output<string>, host: pulumi.Input<string>, port: number, db: string) {
  return pulumi.secret(pulumi.interpolate`postgresql://${user}:${password.apply(encodeURIComponent)}@${host}:${port}/${db}?sslmode=verify-full&sslrootcert=pgcluster-ca.crt&target_session_attrs=any`);
}

export function deploy() {
  // Validation first: a bad config stops here, before any resource is registered.
  const spec = loadSpec();
  const shape = planShape(spec);
  const privateKey = sshPrivateKey(spec);

  // Every connection verifies the host's key (and the bastion's): see hostKeys.ts.
  let addresses: Record<string, pulumi.Input<string>>;
  let hostKeys: Record<string, pulumi.Input<string>>;
  let retrust: Record<string, pulumi.Input<string>>;
  let proxy: Connection["proxy"];
  if (spec.provider === "gcp") {
    const g = gcpHosts(spec);
    addresses = g.addresses;
    hostKeys = g.hostKeys;
    const why = "The key is the one the instance published in its guest attributes, so a mismatch means something else answers at its address: investigate before anything else (a replaced instance publishes its new key by itself)";
    retrust = Object.fromEntries(spec.hosts.map((h) => [h.name, why]));
    proxy = { host: g.bastion.address, user: spec.ssh.user, privateKey, hostKey: g.bastion.hostKey };
  } else {
    addresses = Object.fromEntries(spec.hosts.map((h) => [h.name, h.address!]));
    const known = spec.hosts.map((h, i) => [h.name, staticHostKey(spec, i)] as const);
    hostKeys = Object.fromEntries(known.map(([n, k]) => [n, k.key]));
    retrust = Object.fromEntries(known.map(([n, k]) => [n, k.retrust]));
  }

  const pki = clusterPki(spec, (h) => addresses[h]);
  const secrets = clusterSecrets(spec);

  const addressesOut = pulumi.output(addresses) as pulumi.Output<Record<string, string>>;
  const certsOut = pulumi.output(pki.certs) as unknown as pulumi.Output<Record<string, { cert: string; key: string }>>;
  const secretsOut = pulumi.output(secrets) as unknown as pulumi.Output<Secrets>;
  const plan: pulumi.Output<Plan> = pulumi.all([addressesOut, pki.ca, pki.caBundle, certsOut, secretsOut]).apply(([addr, ca, caBundle, certs, sec]) => {
    const hosts: Host[] = spec.hosts.map((h) => ({ ...h, address: addr[h.name] }));
    return compile(spec, hosts, { ca, caBundle, ...splitCerts(certs) }, sec);
  });

  const connections: Record<string, Connection> = Object.fromEntries(
    spec.hosts.map((h) => [h.name, { host: addresses[h.name], user: h.sshUser, port: h.sshPort, privateKey, hostKey: hostKeys[h.name], proxy }]),
  );
  const commands = applyPlan(shape, pulumi.secret(plan), connections);

  // What `pulumi preview --refresh` reads back from each host (check mode of its steps).
  for (const h of spec.hosts) {
    const conn = connections[h.name];
    new HostDrift(`${h.name}-drift`, {
      host: h.name,
      address: conn.host,
      user: conn.user,
      port: conn.port,
      privateKey: pulumi.secret(conn.privateKey),
      hostKey: conn.hostKey,
      retrust: retrust[h.name],
      ...(conn.proxy ? { proxy: pulumi.secret(pulumi.output(conn.proxy)) as any } : {}),
      steps: pulumi.secret(plan.apply((p) => p.steps.filter((s) => s.host === h.name).map(({ id, script }) => ({ id, script })))),
    }, { dependsOn: shape.steps.filter((s) => s.host === h.name).map((s) => commands[s.id]) });
  }

  const balancer = spec.hosts.find((h) => h.roles.includes("balancer"))!;
  const lb = addresses[balancer.name];
  const app = spec.postgresql;
  const appPassword = secrets.appPassword as pulumi.Output<string>;
  return {
    DATABASE_URL_PRIMARY: connectionUrl(app.appUser, appPassword, lb, ports.writer, app.database),
    DATABASE_URL_REPLICA: connectionUrl(app.appUser, appPassword, lb, ports.readers, app.database),
    DATABASE_URL_PRIMARY_DIRECT: connectionUrl(app.appUser, appPassword, lb, ports.writerDirect, app.database),
    haproxyStats: pulumi.interpolate`http://${lb}:${ports.stats}/`,
    caCert: pki.caBundle,
    nodes: addressesOut.apply((a) => spec.hosts.map((h) => ({ name: h.name, address: a[h.name], roles: h.roles, zone: h.zone ?? null }))),
    superuser: users.superuser,
    steps: Object.keys(commands),
  };
}

