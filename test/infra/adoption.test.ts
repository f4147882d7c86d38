// A stack the stack program made before PgCluster (resources at the stack root) must see no
// replacement on its next `pulumi up`. Checked against what that program really registered
// (fixtures/stack-root-resources.json, recorded by running it): every old resource is claimed by
// exactly one new child through an alias to its old name at the stack root, with the same type,
// and keeps its inputs. No engine runs here: the aliases are checked as the SDK sends them.
import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { withMocks, settle, runProgram, STACK_PROGRAM, type Registered } from "../support/pulumiMocks";
import { inputHashes } from "./fixtures/inputHashes";

interface OldResource { type: string; name: string; inputs: Record<string, string> }
const FIXTURE = JSON.parse(fs.readFileSync(path.join(__dirname, "fixtures", "stack-root-resources.json"), "utf8")) as {
  commit: string;
  stacks: Record<string, { config: Record<string, string>; secretKeys: string[]; resources: OldResource[] }>;
};

const key = (type: string, name: string) => `${type} ${name}`;
/** Aliases that name a resource; the providers' SDKs add their own type-only aliases to some types. */
const named = (r: Registered) => r.aliases.filter((a) => a.urn || a.name);

/** Roles added after the fixture was recorded: their Commands are new resources. */
const NEW_ROLES = ["firewall", "restart", "keepalived", "update"];
/** Passwords added after the fixture was recorded: generated on the next up. */
const NEW_SECRETS = ["vrrpPassword"];
/**
 * GCP resources added after the fixture was recorded (the internal load balancer and its
 * health-check firewall rule): created on the next up, registered without any alias (they had
 * no stack-root name to be adopted from).
 */
const NEW_GCP_TYPES = [
  "gcp:compute/address:Address", "gcp:compute/instanceGroup:InstanceGroup", "gcp:compute/regionHealthCheck:RegionHealthCheck",
  "gcp:compute/regionBackendService:RegionBackendService", "gcp:compute/forwardingRule:ForwardingRule",
];
const isNewGcpResource = (r: Registered) => NEW_GCP_TYPES.includes(r.type) || (r.type === "gcp:compute/firewall:Firewall" && r.name.endsWith("-lb-health-checks"));
/**
 * The stack config as its owner edits it for this version: parameters that became pgcluster's
 * after the fixture was recorded are refused, naming the key that replaces them
 * (log_min_duration_statement -> postgresql.slowQueryMs). Resources do not change with it.
 */
function migrateConfig(config: Record<string, string>): Record<string, string> {
  const raw = config["pgcluster:postgresql"];
  if (raw === undefined) return config;
  const pg = JSON.parse(raw) as { parameters?: Record<string, unknown>; slowQueryMs?: unknown };
  if (pg.parameters && "log_min_duration_statement" in pg.parameters) {
    pg.slowQueryMs = pg.parameters.log_min_duration_statement;
    delete pg.parameters.log_min_duration_statement;
  }
  return { ...config, "pgcluster:postgresql": JSON.stringify(pg) };
}
/** Passwords added after the fixture was recorded (HAProxy's stats page, the metrics login): new, no alias. */
const isNewSecret = (r: Registered) => r.type === "random:index/randomPassword:RandomPassword" && (r.name.endsWith("-statsPassword") || r.name.endsWith("-metricsPassword"));
/**
 * Inputs that carry the step scripts: every pgcluster version changes some script, which runs
 * that step again (an update of the Command, a new check for HostDrift); nothing is replaced on
 * the hosts by it. Every other input (instances, disks, PKI, passwords, connections) must match.
 */
const SCRIPT_INPUTS: Record<string, string[]> = {
  "command:remote:Command": ["stdin", "triggers"],
  // __provider: the serialized provider code, which changes with any refactor of it; each
  // provider's own diff() decides (HostKeyScan replaces only on a new address or port).
  "pulumi-nodejs:dynamic:Resource": ["steps", "__provider"],
};

for (const [stack, old] of Object.entries(FIXTURE.stacks)) {
  describe(`adopting a stack made before PgCluster, stack ${stack} (mocks; recorded from ${FIXTURE.commit.slice(0, 7)})`, function () {
    this.timeout(60000);
    let registered: Registered[];
    /** New custom resource -> the old resource its alias names. */
    const claimed = new Map<Registered, OldResource>();

    before(async () => {
      // Adopted resources keep the state (ids, keys, certificates) the old ones had, as with the engine.
      registered = await withMocks(stack, migrateConfig(old.config), old.secretKeys, "pgcluster", { adopt: true });
      const out = runProgram(STACK_PROGRAM);
      await settle(pulumi.all([out.DATABASE_URL_PRIMARY, out.nodes, out.caCert]));
      await new Promise((r) => setTimeout(r, 300));
      const oldByKey = new Map(old.resources.map((r) => [key(r.type, r.name), r]));
      for (const r of registered.filter((x) => x.custom)) {
        const a = named(r);
        const o = a.length === 1 ? oldByKey.get(key(a[0].type || r.type, a[0].name!)) : undefined;
        if (o) claimed.set(r, o);
      }
    });

    it("every resource the old program registered is claimed by exactly one child, through an alias to its old name at the stack root, same type", () => {
      const fresh = registered.filter((r) => r.custom && isNewGcpResource(r));
      // address, health check, backend service, forwarding rule, firewall rule, and a group per zone with balancers
      const groups = registered.filter((r) => r.type === "gcp:compute/instanceGroup:InstanceGroup").length;
      assert.equal(fresh.length, stack === "local" ? 0 : 5 + groups, fresh.map((r) => r.name).join(", "));
      if (stack !== "local") assert.ok(groups >= 1);
      for (const r of fresh) assert.deepEqual(named(r), [], `${r.type} ${r.name}: new, so no alias`);
      const secrets = registered.filter((r) => r.custom && isNewSecret(r));
      assert.equal(secrets.length, 2, "the stats and metrics passwords are generated");
      for (const s of secrets) assert.deepEqual(named(s), [], `${s.name}: new, so no alias`);
      const custom = registered.filter((r) => r.custom && !isNewGcpResource(r) && !isNewSecret(r));
      for (const r of custom) {
        assert.equal(named(r).length, 1, `${r.type} ${r.name}: ${JSON.stringify(r.aliases)}`);
        const [a] = named(r);
        assert.deepEqual({ urn: a.urn, type: a.type, noParent: a.noParent, parentUrn: a.parentUrn }, { urn: undefined, type: "", noParent: true, parentUrn: "" },
          `${r.type} ${r.name}: the alias must name the stack root as parent and keep the type`);
        assert.ok(r.parent, `${r.type} ${r.name} is at the stack root`);
      }
      // Steps of roles the recorded version did not have yet are new Commands, created on the
      // next up (the firewall came after the recording); nothing else may be new.
      const newSteps = custom.filter((r) => !claimed.has(r) && r.type === "command:remote:Command" && NEW_ROLES.some((role) => r.name.endsWith(`-${role}`)));
      assert.equal(newSteps.length, custom.filter((r) => r.type === "command:remote:Command" && NEW_ROLES.some((role) => r.name.endsWith(`-${role}`))).length);
      const newSecrets = custom.filter((r) => !claimed.has(r) && r.type === "random:index/randomPassword:RandomPassword" && NEW_SECRETS.some((n) => r.name.endsWith(`-${n}`)));
      assert.equal(newSecrets.length, NEW_SECRETS.length, `one new password each: ${newSecrets.map((r) => r.name).join(", ")}`);
      const claims = custom.filter((r) => !newSteps.includes(r) && !newSecrets.includes(r)).map((r) => (claimed.has(r) ? key(r.type, claimed.get(r)!.name) : `(unclaimed) ${key(r.type, r.name)} alias ${named(r)[0]?.name}`));
      assert.equal(new Set(claims).size, claims.length, "two children claim one old resource");
      assert.deepEqual(claims.sort(), old.resources.map((r) => key(r.type, r.name)).sort(),
        "the new children and the old resources must match one to one (an unmatched old one would be deleted, an unmatched new one created)");
    });

    it("the components themselves are new (no aliases), the PgCluster named after clusterName at the stack root", () => {
      const components = registered.filter((r) => !r.custom);
      assert.ok(components.length > 1);
      for (const c of components) assert.deepEqual(c.aliases, [], c.name);
      const top = components.filter((c) => c.type === "pgcluster:index:PgCluster");
      assert.deepEqual(top.map((c) => [c.name, c.parent]), [[old.config["pgcluster:clusterName"], ""]]);
    });

    it("every adopted resource keeps its inputs (so nothing is replaced), but the drift records of trust-on-first-use hosts, whose re-trust hint names the scan's new URN, and on GCP the node certificate requests, which gain the load balancer's address, and the clients' VPC rule, which gains 5003", () => {
      assert.equal(claimed.size, old.resources.length, "every old resource claimed");
      const differences: string[] = [];
      for (const [r, o] of claimed) {
        const now = inputHashes(r.inputs);
        for (const k of new Set([...Object.keys(now), ...Object.keys(o.inputs)]))
          if (now[k] !== o.inputs[k] && !(SCRIPT_INPUTS[r.type] ?? []).includes(k)) differences.push(`${o.name}.${k}`);
      }
      const tofu = old.resources.filter((r) => r.name.endsWith("-hostkey")).map((r) => `${r.name.replace(/-hostkey$/, "")}-drift.retrust`);
      // GCP: the node certificates gain the internal load balancer's address as a SAN, so their
      // requests (and then the certificates) are issued anew on the next up.
      const sans = stack === "local" ? [] : old.resources.filter((r) => r.type === "tls:index/certRequest:CertRequest" && /-db-\d+-csr$/.test(r.name)).map((r) => `${r.name}.ipAddresses`);
      if (stack !== "local") assert.ok(sans.length >= 3, "every database node's certificate request");
      // GCP: the clients' VPC rule gains 5003 (readers without pooler): its allows change (an
      // update in place of the firewall rule, not a replacement).
      const ports5003 = stack === "local" ? [] : old.resources.filter((r) => r.type === "gcp:compute/firewall:Firewall" && r.name.endsWith("-clients-to-lb")).map((r) => `${r.name}.allows`);
      if (stack !== "local") assert.equal(ports5003.length, 1);
      assert.deepEqual(differences.sort(), [...tofu, ...sans, ...ports5003].sort());
      if (stack === "local") assert.equal(tofu.length, 4, "the local stack trusts its hosts on first use");
    });
  });
}
