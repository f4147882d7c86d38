// Scale in on two applies (issue 13 item 1, the Pulumi path): a host marked leaving is
// decommissioned by the plan while every host still admits it; removing it afterwards only
// deletes it. And the firewall refuses to drop a host the cluster still counts as a member.
import { strict as assert } from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { spawnSync } from "child_process";
import { loadSpec } from "../../local/cluster";
import { ensurePki, toPki } from "../../local/pki";
import { compile, planGraph, topoOrder } from "../../roles/compile";
import { renderShell } from "../../roles/render";
import { stepScript } from "../../roles/script";
import { ConfigError, parseClusterSpec, type ClusterSpec } from "../../model/config";
import { DECOMMISSIONED_MARKER, ports } from "../../model/identities";
import { fileOf, hostsOf, TEST_SECRETS } from "../support/fixtures";

const JOINERS = [
  { name: "w1", address: "10.213.0.21", roles: ["etcd"] },
  { name: "pg5", address: "10.213.0.15", roles: ["etcd", "postgres"] },
];
const stackHosts = () => loadSpec("local").hosts.map(({ name, address, roles }) => ({ name, address, roles }));
/** The local stack grown by w1 and pg5, those marked leaving. */
const leavingSpec = () => loadSpec("local", { hosts: [...stackHosts(), ...JOINERS.map((j) => ({ ...j, leaving: true }))] });

/** The plans of `spec` and of `other`, with one PKI (the first's hosts must include the second's). */
async function plans(spec: ClusterSpec, other: ClusterSpec) {
  const hosts = hostsOf(spec);
  const pki = toPki(spec, await ensurePki(spec, Object.fromEntries(hosts.map((h) => [h.name, h.address])), undefined));
  return [spec, other].map((x) => compile(x, hostsOf(x), pki, TEST_SECRETS, undefined).steps);
}

/** An ed25519 public key line (structurally valid). */
function keyLine(): string {
  const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; };
  const t = Buffer.from("ssh-ed25519");
  return `ssh-ed25519 ${Buffer.concat([u32(t.length), t, u32(32), Buffer.alloc(32, 7)]).toString("base64")}`;
}

describe("scale in, first half: hosts marked leaving", function () {
  this.timeout(60_000);
  let steps: Awaited<ReturnType<typeof plans>>[number], three: typeof steps;
  before(async () => { [steps, three] = await plans(leavingSpec(), loadSpec("local")); });
  const step = (s: typeof steps, id: string) => s.find((x) => x.id === id);

  it("a leaving host gets its decommission step and nothing else; the others' steps are exactly the remaining cluster's", () => {
    for (const j of JOINERS) assert.deepEqual(steps.filter((s) => s.host === j.name).map((s) => s.id), [`${j.name}/decommission`]);
    const rest = steps.filter((s) => !JOINERS.some((j) => j.name === s.host));
    assert.deepEqual(rest.map((s) => s.id), three.map((s) => s.id));
    // What they configure is the three-member cluster's (HAProxy, Patroni's etcd hosts, the bootstrap list), the firewall aside.
    for (const s of rest.filter((x) => x.role !== "firewall")) assert.equal(s.digest, step(three, s.id)!.digest, `${s.id} is the remaining cluster's`);
  });

  it("the leaving hosts go one at a time, before any step of the others; pg5 leaves Patroni, then etcd", () => {
    const graph = planGraph(leavingSpec());
    assert.deepEqual(graph.find((n) => n.id === "pg5/decommission")!.after, ["w1/decommission"]);
    for (const n of graph.filter((x) => x.role !== "decommission")) assert.ok(n.after.includes("w1/decommission") && n.after.includes("pg5/decommission"), n.id);
    assert.deepEqual(topoOrder(graph).slice(0, 2).map((n) => n.id), ["w1/decommission", "pg5/decommission"]);
    const script = stepScript(step(steps, "pg5/decommission")!);
    const at = ["\npgc_decommission\n", "\npgc_etcd_leave\n", "\npgc_decom_mark\n"].map((c) => script.lastIndexOf(c));
    assert.ok(at.every((i) => i > 0) && at[0] < at[1] && at[1] < at[2], "Patroni leaves, then etcd, then the marker");
    assert.match(script, /PGC_ETCD_ENDPOINTS='https:\/\/10\.213\.0\.11:2379,https:\/\/10\.213\.0\.12:2379,https:\/\/10\.213\.0\.13:2379'/, "through the remaining members");
  });

  it("every remaining host's firewall still admits the leaving hosts as their roles did", () => {
    for (const n of ["pg1", "pg2", "pg3"]) {
      const nft = fileOf(step(steps, `${n}/firewall`), "/etc/pgcluster/firewall.nft");
      for (const j of JOINERS) assert.ok(nft.includes(j.address), `${n} admits ${j.name}`);
      assert.notEqual(nft, fileOf(step(three, `${n}/firewall`), "/etc/pgcluster/firewall.nft"));
    }
  });

  it("the common step of every host in the plan removes a stale decommission marker", () => {
    assert.ok(step(three, "pg1/common")!.actions.some((a) => a.kind === "absent" && a.path === DECOMMISSIONED_MARKER));
  });

  it("what the cluster must have is counted without the leaving hosts", () => {
    const refused = (hosts: unknown[], why: RegExp) => assert.throws(() => loadSpec("local", { hosts }), (e: Error) => e instanceof ConfigError && why.test(e.message));
    // 3 + w1 + pg5 = 5 members; one of them leaving leaves 4.
    refused([...stackHosts(), JOINERS[0], { ...JOINERS[1], leaving: true }], /gives 4 etcd member\(s\)/);
    // Every database node but one leaving: synchronous mode needs two.
    refused(stackHosts().map((h) => (h.name === "pg2" || h.name === "pg3" ? { ...h, leaving: true } : h)), /patroni\.synchronousMode.*needs at least 2 database nodes|gives 1 etcd member/);
    refused(stackHosts().map((h) => (h.name === "lb1" ? { ...h, leaving: true } : h)), /hosts\[\d+\]\.leaving.*no Patroni or etcd membership to leave: remove it from hosts instead/);
  });

  it("GCP: gcp.dbNodesLeaving / witnessNodesLeaving mark the last nodes; at least one database node stays", () => {
    const gcp = (g: Record<string, unknown>) => parseClusterSpec({
      clusterName: "pgtest", provider: "gcp",
      gcp: { project: "pgcluster-test", region: "europe-west1", zones: ["europe-west1-b", "europe-west1-c"], sshSourceRanges: ["203.0.113.0/28"], ...g },
      network: { cidr: "10.1.0.0/24", clientCidrs: ["10.0.0.0/8"] }, ssh: { user: "ops", publicKey: `${keyLine()} ops@example` },
      sshPrivateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU=\n-----END OPENSSH PRIVATE KEY-----\n",
    }, { stack: "dev", secretKeys: new Set(["sshPrivateKey"]), source: "test" });
    const s = gcp({ dbNodes: 5, dbNodesLeaving: 2 });
    assert.deepEqual(s.hosts.filter((h) => h.leaving).map((h) => h.name), ["pgtest-db-4", "pgtest-db-5"]);
    const w = gcp({ dbNodes: 3, witnessNodes: 2, witnessNodesLeaving: 2 });
    assert.deepEqual(w.hosts.filter((h) => h.leaving).map((h) => h.name), ["pgtest-witness-1", "pgtest-witness-2"]);
    assert.throws(() => gcp({ dbNodes: 3, dbNodesLeaving: 1 }), (e: Error) => e instanceof ConfigError && /gives 2 etcd member\(s\)/.test(e.message));
    assert.throws(() => gcp({ dbNodes: 3, dbNodesLeaving: 3 }), (e: Error) => e instanceof ConfigError && /gcp\.dbNodesLeaving.*at least one must stay/.test(e.message));
    assert.throws(() => gcp({ dbNodes: 3, witnessNodesLeaving: 1 }), (e: Error) => e instanceof ConfigError && /gcp\.witnessNodesLeaving.*only 0 witnesses/.test(e.message));
  });
});

describe("firewall: a host the cluster still counts as a member is not dropped", () => {
  const lib = renderShell("firewall", "members.sh", {
    etcdPeers: ["https://10.0.0.1:2380", "https://10.0.0.2:2380", "https://10.0.0.3:2380"], patroniMembers: ["pg1", "pg2", "pg3"],
    etcdTls: "/nonexistent/etcd", patroniTls: "/nonexistent/patroni", clientPort: ports.etcdClient, patroniPort: ports.patroni,
  });
  const PRELUDE = fs.readFileSync(path.join(__dirname, "../../roles/lib/prelude.sh"), "utf8");

  /** Runs the check with fake systemctl (etcd and Patroni running), etcdctl and curl answering `members` and `cluster`. */
  function check(members: unknown[] | undefined, cluster: unknown[] | undefined): { code: number; out: string } {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgc-fw-members-"));
    const bin = path.join(dir, "bin");
    fs.mkdirSync(bin);
    fs.writeFileSync(path.join(bin, "systemctl"), "#!/bin/bash\nexit 0\n", { mode: 0o755 });
    fs.writeFileSync(path.join(bin, "etcdctl"), `#!/bin/bash\ncat ${dir}/members\n`, { mode: 0o755 });
    fs.writeFileSync(path.join(bin, "curl"), `#!/bin/bash\ncat ${dir}/cluster\n`, { mode: 0o755 });
    fs.writeFileSync(path.join(bin, "logger"), "#!/bin/bash\n", { mode: 0o755 });
    fs.writeFileSync(path.join(dir, "members"), members ? JSON.stringify({ members }) : "");
    fs.writeFileSync(path.join(dir, "cluster"), cluster ? JSON.stringify({ members: cluster }) : "");
    // The check reads the etcd key only when it can: the fake one is readable.
    const script = ["#!/bin/bash", "set -euo pipefail", "PGC_STEP='pg1/firewall'", `PGC_PENDING=${dir}/pending`, PRELUDE, lib.replace(/\[\[ -r \/nonexistent\/etcd\/node\.key \]\]/, "true"), "pgc_fw_members_check", "echo CHECK-PASSED"].join("\n");
    const r = spawnSync("bash", ["-c", script], { encoding: "utf8", env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
    fs.rmSync(dir, { recursive: true, force: true });
    return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
  }
  const member = (name: string, ip: string, started = true) => ({ ID: 1, name: started ? name : "", peerURLs: [`https://${ip}:2380`], ...(started ? { clientURLs: [`https://${ip}:2379`] } : {}) });
  const base = [member("pg1", "10.0.0.1"), member("pg2", "10.0.0.2"), member("pg3", "10.0.0.3")];
  const patroni = ["pg1", "pg2", "pg3"].map((name) => ({ name, host: name, role: "replica" }));

  it("the inventory's members (and an unstarted one it knows) pass", () => {
    const r = check([...base.slice(0, 2), member("pg3", "10.0.0.3", false)], patroni);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /CHECK-PASSED/);
  });

  it("an etcd member that left the inventory without its decommission is refused, named, before anything changes", () => {
    const r = check([...base, member("pg5", "10.0.0.15")], patroni);
    assert.equal(r.code, 1, r.out);
    assert.doesNotMatch(r.out, /CHECK-PASSED/);
    assert.match(r.out, /still counts members that are not in the inventory: etcd member pg5 \(https:\/\/10\.0\.0\.15:2380\)\. A host leaves in two applies: first mark it leaving/);
  });

  it("a Patroni member that left the inventory without its decommission is refused, named", () => {
    const r = check(base, [...patroni, { name: "pg4", host: "10.0.0.14", role: "leader" }]);
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /Patroni member pg4 \(10\.0\.0\.14\)/);
  });

  it("nothing to ask (etcd and Patroni do not answer: a new host) is not a refusal", () => {
    const r = check(undefined, undefined);
    assert.equal(r.code, 0, r.out);
  });
});
