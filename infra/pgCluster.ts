// PgCluster: one highly available PostgreSQL cluster as a Pulumi component.
//   spec -> hosts (GCP instances, or a static inventory) -> PKI (@pulumi/tls) -> passwords
//   (@pulumi/random, or given) -> compile() -> one remote.Command per plan step.
// Every resource is a child: GCP network and instances, PKI and passwords of the component; each
// host's Commands, HostDrift and HostKeyScan of that host's Host component. Names start with the
// component's name, so two clusters live side by side in one program.
import * as pulumi from "@pulumi/pulumi";
import { BACKUP_PASSPHRASE, PROJECT, SECRET_KEYS, type ClusterSpec, type Role, type SecretName } from "../model/config";
import { splitCerts } from "../model/certs";
import { Children, hostLabel } from "./children";
import { SECRET_VALUE } from "./componentSpec";
import { applyPlan, commandName, type Connection } from "./driver";
import { decommissionCommands } from "./decommission";
import { gceNameSuffixes, gcpHosts } from "./gcp";
import { HostDrift } from "./hostDrift";
import { HostKeyScan } from "./hostKeys";
import { clusterPki } from "./pki";
import { clusterSecrets, type GivenSecrets } from "./secrets";
import { compile, planGraph, topoOrder } from "../roles/compile";
import { stepScript } from "../roles/script";
import type { Host, Pki, Plan, Secrets } from "../roles/types";
import { asStandbyOf, standbyTrustOf, type StandbyTrust } from "../roles/standby";
import { restoreCommands } from "./restoreCommands";
import { ports } from "../model/identities";
import { ROLE as PGBACKREST } from "../roles/pgbackrest";
import { ROLE as STANZA } from "../roles/stanza";

export interface PgClusterArgs {
  /** The cluster, validated: parseClusterSpec(...) from "pgcluster" (the stack program: its stack config). */
  spec: ClusterSpec;
  /** Private key of ssh.user on every host (and on the bastion, on GCP). Kept a secret. */
  sshPrivateKey: pulumi.Input<string>;
  /**
   * Passwords to use instead of generating them: 16 to 128 printable ASCII characters, no spaces.
   * Any not given is generated (@pulumi/random, rotated by spec.secrets); with
   * spec.secrets.generate false, all must be given. Kept secrets.
   */
  secrets?: GivenSecrets;
  /**
   * For a stack that pgcluster's stack program created before PgCluster existed (its resources
   * at the stack root: pg1-etcd, <clusterName>-ca-1, <clusterName>-vpc, …): alias every child to
   * that name, so the next `pulumi up` moves them under the component instead of replacing them.
   * The stack program sets it; a new cluster in your own program should not.
   */
  adoptStackRootResources?: boolean;
  /**
   * spec.standby: what the primary cluster hands its standbys, i.e. its PgCluster's standbyTrust
   * (from another stack: a StackReference's output "standbyTrust"). Required then. Kept secret.
   */
  primaryTrust?: pulumi.Input<StandbyTrust>;
}

export interface ClusterNode {
  name: string;
  address: string;
  roles: Role[];
  zone: string | null;
}

export const PGCLUSTER_TYPE = "pgcluster:index:PgCluster";
/** Steps whose Commands use the backup repository first: a node's pgBackRest (archiving starts with it), the stanza. */
const REPOSITORY_ROLES: readonly string[] = [PGBACKREST, STANZA];
export const HOST_TYPE = "pgcluster:index:Host";

/** One host of a cluster: parent of that host's Commands, its HostDrift and its HostKeyScan. */
export class PgClusterHost extends pulumi.ComponentResource {
  /** What `pulumi preview --refresh` found different on the host ("<step>: <item>"); empty when it matches the plan. */
  drift!: pulumi.Output<string[]>;

  constructor(name: string, readonly host: string, opts: pulumi.ComponentResourceOptions) {
    super(HOST_TYPE, name, {}, opts);
  }

  /** @internal PgCluster calls it once the host's children exist. */
  done(drift: HostDrift): void {
    this.drift = drift.drift;
    this.registerOutputs({ drift: this.drift });
  }
}

export class PgCluster extends pulumi.ComponentResource {
  /**
   * postgresql://… to the primary through pgBouncer (port 5000), at the internal load balancer's
   * address on GCP, the first balancer's on a static inventory. Secret: it holds the app password.
   */
  readonly primaryUrl: pulumi.Output<string>;
  /** postgresql://… to the replicas through pgBouncer (port 5001), at the same address. Secret. */
  readonly replicaUrl: pulumi.Output<string>;
  /** postgresql://… to the primary without the pooler (port 5002), at the same address. Secret. */
  readonly primaryDirectUrl: pulumi.Output<string>;
  /**
   * postgresql://… to the replicas without the pooler (port 5003; the primary when no replica is
   * healthy), at the same address: session semantics, for named prepared statements. Secret.
   */
  readonly replicaDirectUrl: pulumi.Output<string>;
  /**
   * HAProxy's stats pages (port 8404): the entry address's first when there is one (GCP: the
   * internal load balancer's; static: network.floatingAddress), then every balancer's. Reachable from network.adminCidrs only,
   * user "stats", password the secret statsPassword.
   */
  readonly haproxyStats: pulumi.Output<string[]>;
  /** The stats page's password (user "stats"). Secret. */
  readonly haproxyStatsPassword: pulumi.Output<string>;
  /**
   * monitoring.enabled: Prometheus on the monitoring host (its web UI, API and the overview page
   * /consoles/pgcluster.html), reachable from network.adminCidrs only, user "prometheus",
   * password metricsPassword; null when monitoring is off.
   */
  readonly prometheus: pulumi.Output<string | null>;
  /** The metrics login's password (user "prometheus": Prometheus and every exporter). Secret. */
  readonly metricsPassword: pulumi.Output<string>;
  /** The CA bundle clients verify the servers with (sslrootcert). */
  readonly caCert: pulumi.Output<string>;
  readonly nodes: pulumi.Output<ClusterNode[]>;
  /** The plan's step ids, in order ("pg1/etcd", …): one remote.Command each. */
  readonly steps: pulumi.Output<string[]>;
  /** The host components (pgcluster:index:Host), by host name. */
  readonly hosts: Record<string, PgClusterHost>;
  /**
   * What a standby cluster of this one needs (its CA bundle, replication certificate and key, the
   * database roles' passwords): the stack program exports it, a standby stack reads it with a
   * StackReference (standby.primaryStack). Secret.
   */
  readonly standbyTrust: pulumi.Output<StandbyTrust>;

  constructor(name: string, args: PgClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    // Checked, and the plan's graph known, before anything is registered.
    const given = checkArgs(name, args);
    const graph = topoOrder(planGraph(args.spec));
    super(PGCLUSTER_TYPE, name, {}, opts);
    const { spec } = args;
    const c = new Children(name, this, args.adoptStackRootResources === true);
    const privateKey = pulumi.secret(args.sshPrivateKey);

    const label = (host: string) => hostLabel(spec, host);
    this.hosts = Object.fromEntries(spec.hosts.map((h) => [h.name, new PgClusterHost(c.name(label(h.name)), h.name, { parent: this })]));

    // Every connection verifies the host's key (and the bastion's): see hostKeys.ts.
    let addresses: Record<string, pulumi.Input<string>>;
    let hostKeys: Record<string, pulumi.Input<string>>;
    let retrust: Record<string, pulumi.Input<string>>;
    let proxy: Connection["proxy"];
    // The address clients dial in front of the balancers, when there is one (GCP: the internal
    // load balancer). A static inventory's is network.floatingAddress (keepalived), which
    // compile() and the certificates take from the spec; without one, the first balancer.
    let entryAddress: pulumi.Output<string> | undefined;
    // The steps that use the backup repository wait for it (GCP: the bucket and the nodes' access).
    let repositoryReady: pulumi.Resource[] = [];
    if (spec.provider === "gcp") {
      const g = gcpHosts(spec, c);
      entryAddress = g.loadBalancer.address;
      repositoryReady = g.backupRepository?.ready ?? [];
      addresses = g.addresses;
      hostKeys = g.hostKeys;
      const why = "The key is the one the instance published in its guest attributes, so a mismatch means something else answers at its address: investigate before anything else (a replaced instance publishes its new key by itself)";
      retrust = Object.fromEntries(spec.hosts.map((h) => [h.name, why]));
      proxy = { host: g.bastion.address, user: spec.ssh.user, privateKey, hostKey: g.bastion.hostKey };
    } else {
      addresses = Object.fromEntries(spec.hosts.map((h) => [h.name, h.address!]));
      const known = spec.hosts.map((h, i) => [h.name, this.staticHostKey(spec, i, c)] as const);
      hostKeys = Object.fromEntries(known.map(([n, k]) => [n, k.key]));
      retrust = Object.fromEntries(known.map(([n, k]) => [n, k.retrust]));
    }

    const pki = clusterPki(spec, (h) => addresses[h], c, entryAddress ? [entryAddress] : []);
    const secrets = clusterSecrets(spec, given, c);

    const addressesOut = pulumi.output(addresses) as pulumi.Output<Record<string, string>>;
    const certsOut = pulumi.output(pki.certs) as unknown as pulumi.Output<Record<string, { cert: string; key: string }>>;
    const ownSecrets = pulumi.output(secrets) as unknown as pulumi.Output<Secrets>;
    const ownPki: pulumi.Output<Pki> = pulumi.all([pki.ca, pki.caBundle, certsOut]).apply(([ca, caBundle, certs]) => ({ ca, caBundle, ...splitCerts(certs) }));
    this.standbyTrust = pulumi.secret(pulumi.all([ownPki, ownSecrets]).apply(([p, sec]) => standbyTrustOf(p, sec)));
    // A standby cluster: the primary's trust and role passwords laid over its own (roles/standby.ts).
    const primaryTrust = args.primaryTrust === undefined ? undefined : pulumi.secret(pulumi.output(args.primaryTrust));
    const effective = pulumi.all([ownPki, ownSecrets, primaryTrust]).apply(([p, sec, trust]) => (trust ? asStandbyOf(p, sec, trust as StandbyTrust) : { pki: p, secrets: sec }));
    const pkiOut = effective.apply((e) => e.pki);
    const secretsOut = effective.apply((e) => e.secrets);
    const plan: pulumi.Output<Plan> = pulumi.all([addressesOut, pkiOut, secretsOut, entryAddress]).apply(([addr, p, sec, entry]) => {
      const hosts: Host[] = spec.hosts.map((h) => ({ ...h, address: addr[h.name] }));
      return compile(spec, hosts, p, sec, entry);
    });

    const connections: Record<string, Connection> = Object.fromEntries(
      spec.hosts.map((h) => [h.name, { host: addresses[h.name], user: h.sshUser, port: h.sshPort, privateKey, hostKey: hostKeys[h.name], proxy }]),
    );
    const roleContext = pulumi.all([addressesOut, pkiOut, secretsOut, entryAddress]).apply(([addr, p, sec, entry]) => ({
      spec, hosts: spec.hosts.filter((h) => !h.leaving).map((h) => ({ ...h, address: addr[h.name] })), pki: p, secrets: sec, ...(entry ? { entryAddress: entry } : {}),
    }));
    // A restore from the stack config (spec.restore) runs before the plan (restoreCommands.ts).
    const restore = restoreCommands(spec, roleContext, connections, c, this.hosts);
    const commands = applyPlan(graph, pulumi.secret(plan), connections, (step) => ({
      name: c.name(`${label(step.host)}-${step.role}`),
      opts: {
        ...c.opts(commandName(step.id), this.hosts[step.host]),
        dependsOn: [...(REPOSITORY_ROLES.includes(step.role) ? repositoryReady : []), ...restore.before],
      },
    }), restore.planTriggers);
    restore.finish(Object.values(commands));

    // Scale in: a database node's decommission runs as its Command's delete (infra/decommission.ts).
    const clusterInputs = pulumi.all([addressesOut, pkiOut, secretsOut, entryAddress]).apply(([addr, p, sec, entry]) => ({
      hosts: spec.hosts.map((h) => ({ ...h, address: addr[h.name] })), pki: p, secrets: sec, ...(entry ? { entryAddress: entry } : {}),
    }));
    decommissionCommands(spec, pulumi.secret(clusterInputs), graph, commands, connections, (host) => ({
      name: c.name(`${label(host)}-decommission`),
      opts: c.optsNew(this.hosts[host]),
    }));

    // What `pulumi preview --refresh` reads back from each host (check mode of its steps).
    for (const h of spec.hosts) {
      const conn = connections[h.name];
      const drift = new HostDrift(c.name(`${label(h.name)}-drift`), {
        host: h.name,
        address: conn.host,
        user: conn.user,
        port: conn.port,
        privateKey: pulumi.secret(conn.privateKey),
        hostKey: conn.hostKey,
        retrust: retrust[h.name],
        ...(conn.proxy ? { proxy: pulumi.secret(pulumi.output(conn.proxy)) as any } : {}),
        steps: pulumi.secret(plan.apply((p) => topoOrder(p.steps).filter((s) => s.host === h.name).map((s) => ({ id: s.id, script: stepScript(s) })))),
      }, {
        ...c.opts(`${h.name}-drift`, this.hosts[h.name]),
        dependsOn: graph.filter((s) => s.host === h.name).map((s) => commands[s.id]),
      });
      this.hosts[h.name].done(drift);
    }

    const balancers = spec.hosts.filter((h) => h.roles.includes("balancer"));
    const lb = addresses[balancers[0].name];
    const clientHost = entryAddress ?? spec.network.floatingAddress ?? lb;
    const app = spec.postgresql;
    // A standby cluster's application role is the primary's: so is its password.
    const appPassword = primaryTrust ? primaryTrust.apply((t) => t.rolePasswords.appPassword) : secrets.appPassword;
    this.primaryUrl = connectionUrl(app.appUser, appPassword, clientHost, ports.writer, app.database);
    this.replicaUrl = connectionUrl(app.appUser, appPassword, clientHost, ports.readers, app.database);
    this.primaryDirectUrl = connectionUrl(app.appUser, appPassword, clientHost, ports.writerDirect, app.database);
    this.replicaDirectUrl = connectionUrl(app.appUser, appPassword, clientHost, ports.readersDirect, app.database);
    // Each balancer has its own page (its own view of the servers); the entry address's is one of them.
    this.haproxyStats = pulumi.all([entryAddress ?? spec.network.floatingAddress, ...balancers.map((b) => addresses[b.name])])
      .apply(([entry, ...lbs]) => [...(entry ? [entry] : []), ...lbs].map((a) => `http://${a}:${ports.stats}/`));
    this.haproxyStatsPassword = secrets.statsPassword;
    const monitor = spec.monitoring.enabled ? spec.hosts.find((h) => h.roles.includes("monitoring")) : undefined;
    this.prometheus = monitor ? pulumi.output(addresses[monitor.name]).apply((a) => `https://${a}:${ports.prometheus}/`) : pulumi.output(null);
    this.metricsPassword = secrets.metricsPassword;
    this.caCert = pki.caBundle;
    this.nodes = addressesOut.apply((a) => spec.hosts.map((h) => ({ name: h.name, address: a[h.name], roles: h.roles, zone: h.zone ?? null })));
    this.steps = pulumi.output(Object.keys(commands));
    this.registerOutputs({
      primaryUrl: this.primaryUrl,
      replicaUrl: this.replicaUrl,
      primaryDirectUrl: this.primaryDirectUrl,
      replicaDirectUrl: this.replicaDirectUrl,
      haproxyStats: this.haproxyStats,
      haproxyStatsPassword: this.haproxyStatsPassword,
      prometheus: this.prometheus,
      metricsPassword: this.metricsPassword,
      caCert: this.caCert,
      nodes: this.nodes,
      steps: this.steps,
      standbyTrust: this.standbyTrust,
    });
  }

  /** A static host's key: pinned in the spec, or recorded at first contact (HostKeyScan, a child of its Host). */
  private staticHostKey(spec: ClusterSpec, i: number, c: Children): { key: pulumi.Input<string>; retrust: pulumi.Input<string> } {
    const h = spec.hosts[i];
    if (h.hostKey !== undefined)
      return { key: h.hostKey, retrust: `If ${h.name} was rebuilt, verify its new key out of band and set ${PROJECT}:hosts[${i}].hostKey to it` };
    const scan = new HostKeyScan(c.name(`${hostLabel(spec, h.name)}-hostkey`), { host: h.name, address: h.address!, port: h.sshPort }, c.opts(`${h.name}-hostkey`, this.hosts[h.name]));
    return { key: scan.hostKey, retrust: pulumi.interpolate`If ${h.name} was rebuilt, verify its new key out of band and record it again: pulumi up --replace '${scan.urn}'` };
  }
}

function connectionUrl(user: string, password: pulumi.Output<string>, host: pulumi.Input<string>, port: number, db: string) {
  return pulumi.secret(pulumi.interpolate`postgresql://${user}:${password.apply(encodeURIComponent)}@${host}:${port}/${db}?sslmode=verify-full&sslrootcert=pgcluster-ca.crt&target_session_attrs=any`);
}

/**
 * What the spec cannot say: the SSH key is there, each password PgCluster is given has the
 * config's grammar, and none the spec expects is missing. Returns the given passwords, checked.
 */
function checkArgs(name: string, args: PgClusterArgs): GivenSecrets {
  const problems: string[] = [];
  if (!args?.spec) throw new Error(`PgCluster ${name}: args.spec is required (parseClusterSpec(...))`);
  const { spec } = args;
  if (args.sshPrivateKey === undefined || args.sshPrivateKey === null || args.sshPrivateKey === "")
    problems.push("sshPrivateKey: is required (the private key of ssh.user on the hosts), as a pulumi secret");
  const given = args.secrets ?? {};
  const valueProblem = (k: string) => `secrets.${k}: must be 16 to 128 printable ASCII characters without spaces (the value is not shown)`;
  for (const k of Object.keys(given)) {
    if (k === BACKUP_PASSPHRASE) {
      if (typeof given[k] === "string" && !SECRET_VALUE.test(given[k] as string)) problems.push(valueProblem(k));
    } else if (!(SECRET_KEYS as readonly string[]).includes(k)) problems.push(`secrets.${k}: is not a pgcluster password; they are ${SECRET_KEYS.join(", ")}`);
    else if (typeof given[k as SecretName] === "string" && !SECRET_VALUE.test(given[k as SecretName] as string)) problems.push(valueProblem(k));
  }
  if (spec.provider === "gcp") {
    // Pulumi names a GCE resource "<resource name>-<7 characters>"; GCE allows 63, lower case.
    if (!/^[a-z][a-z0-9-]*$/.test(name)) problems.push(`name: with provider gcp, it starts GCE instance and disk names: lower-case letters, digits and '-', starting with a letter`);
    const suffix = gceNameSuffixes(spec).reduce((a, b) => (b.length > a.length ? b : a));
    const longest = `${name}-${suffix}`.length;
    if (longest + 8 > 63) problems.push(`name: with provider gcp, instance and disk names (and every other GCE name, the longest "${name}-${suffix}-<7 characters>") must fit GCE's 63 characters: shorten the component's name by ${longest + 8 - 63}`);
  }
  for (const k of SECRET_KEYS) {
    if (given[k] !== undefined) continue;
    if (spec.secrets.provided.includes(k)) problems.push(`secrets.${k}: the spec was given ${PROJECT}:${k}, but PgCluster was not: pass it in secrets`);
    else if (!spec.secrets.generate) problems.push(`secrets.${k}: is required: spec.secrets.generate is false`);
  }
  if (spec.standby && args.primaryTrust === undefined)
    problems.push(`primaryTrust: is required because spec.standby is set (a standby of ${spec.standby.primaryStack}): pass the primary cluster's standbyTrust (the stack program reads it with a StackReference)`);
  if (!spec.standby && args.primaryTrust !== undefined) problems.push(`primaryTrust: is given, but spec.standby is not set: only a standby cluster takes the primary's trust`);
  if (spec.backup.enabled && given[BACKUP_PASSPHRASE] === undefined) {
    if (spec.secrets.backupPassphraseProvided) problems.push(`secrets.${BACKUP_PASSPHRASE}: the spec was given ${PROJECT}:${BACKUP_PASSPHRASE}, but PgCluster was not: pass it in secrets`);
    else if (!spec.secrets.generate) problems.push(`secrets.${BACKUP_PASSPHRASE}: is required: spec.secrets.generate is false and backup.enabled is true`);
  }
  if (problems.length) throw new Error(`PgCluster ${name}:\n` + problems.map((p) => `  - ${p}`).join("\n"));
  // A value known only later (an Output) is checked when it is known.
  return Object.fromEntries(([...SECRET_KEYS, BACKUP_PASSPHRASE] as const).filter((k) => given[k] !== undefined).map((k) => [k, pulumi.output(given[k]!).apply((v) => {
    if (typeof v !== "string" || !SECRET_VALUE.test(v)) throw new Error(`PgCluster ${name}: ${valueProblem(k)}`);
    return v;
  })]));
}
