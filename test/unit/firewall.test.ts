// The host firewall as data and as nft renders it: for the local, dev and prod stacks every host
// admits, port by port, exactly the sources the rules say (nothing wider), the rendered ruleset
// passes `nft -c` and, loaded in a throwaway network namespace, lists exactly those rules; the
// SSH lock-out guard refuses what it must; firewall.enabled false removes only our table.
import { strict as assert } from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { hostsOf, testPki, TEST_SECRETS, fileOf } from "../support/fixtures";
import { readStackFile } from "../../model/stackFile";
import { intToIp, ipToInt, parseCidr } from "../../model/cidr";
import { parseClusterSpec, type ClusterSpec } from "../../model/config";
import { compile } from "../../roles/compile";
import { hostFirewall, minimalCidrs, renderGuard, renderRuleset, RULESET_FILE } from "../../roles/firewall";
import { stepScript } from "../../roles/script";
import type { Host, RoleContext } from "../../roles/types";

type Range = [number, number];

/** Merged address ranges a list of CIDRs covers: two lists admit the same sources iff equal. */
function coverage(cidrs: string[]): Range[] {
  const rs = cidrs.map((s) => {
    const c = parseCidr(s.includes("/") ? s : `${s}/32`);
    if (!c) throw new Error(`not a CIDR: ${s}`);
    return [c.network, c.network + c.size - 1] as Range;
  }).sort((a, b) => a[0] - b[0]);
  const out: Range[] = [];
  for (const r of rs) {
    const last = out[out.length - 1];
    if (last && r[0] <= last[1] + 1) last[1] = Math.max(last[1], r[1]);
    else out.push([...r]);
  }
  return out;
}

/** The rules as issue #9 states them, written out independently of roles/firewall. */
function expectedAdmits(spec: ClusterSpec, hosts: Host[], h: Host): Map<number, string[]> {
  const of = (r: string) => hosts.filter((x) => x.roles.includes(r as never)).map((x) => x.address);
  const gcp = spec.provider === "gcp";
  const admin = spec.network.adminCidrs;
  const op = gcp ? [] : admin; // static: operators reach every service port
  const m = new Map<number, string[]>();
  const add = (port: number, src: string[]) => m.set(port, [...(m.get(port) ?? []), ...src]);
  add(h.sshPort, gcp ? [spec.gcp!.bastionCidr] : admin);
  if (h.roles.includes("etcd")) {
    add(2379, [...of("etcd"), ...of("postgres"), ...op]);
    add(2380, [...of("etcd"), ...op]);
  }
  if (h.roles.includes("postgres")) {
    for (const p of [5432, 8008]) add(p, [...of("postgres"), ...of("balancer"), ...op]);
    add(6432, [...of("balancer"), h.address, ...op]);
    // pgBackRest's TLS server: the backup host takes backups from the nodes.
    if (of("backup").length) add(8432, [...of("backup"), ...op]);
    // The backup host's logical dump reaches PostgreSQL.
    if (of("backup").length) add(5432, of("backup"));
  }
  // The backup host's pgBackRest TLS server: the nodes push WAL to it.
  if (h.roles.includes("backup")) add(8432, [...of("postgres"), ...spec.standbyClusters.flatMap((sc) => sc.cidrs), ...op]);
  if (h.roles.includes("balancer")) {
    for (const p of [5000, 5001, 5002, 5003]) add(p, [...spec.network.clientCidrs, ...op]);
    // Standby clusters' leaders replicate through the writer port without pooler.
    add(5002, spec.standbyClusters.flatMap((sc) => sc.cidrs));
    add(8404, admin);
    // GCP: the internal load balancer's health checks reach HAProxy's health answer, from Google's ranges only.
    if (gcp) add(8405, ["35.191.0.0/16", "130.211.0.0/22"]);
    // static with a floating address: keepalived's VRRP from the other balancers only.
    if (!gcp && spec.network.floatingAddress) {
      add(VRRP, of("balancer").filter((a) => a !== h.address));
      // HAProxy's health answer on the floating address, asked by the balancers (and operators)
      add(8405, [...of("balancer"), ...op]);
    }
  }
  // monitoring.enabled (issue #14): the monitoring host scrapes every host's node exporter, the
  // nodes' postgres_exporter and Patroni, the etcd members, the balancers' HAProxy exporter; its
  // Prometheus answers operators (and itself).
  if (spec.monitoring.enabled) {
    const mon = of("monitoring");
    add(9100, [...mon, ...op]);
    if (h.roles.includes("postgres")) { add(9187, [...mon, ...op]); add(8008, mon); }
    if (h.roles.includes("etcd")) add(2379, mon);
    if (h.roles.includes("balancer")) add(8406, [...mon, ...op]);
    if (h.roles.includes("monitoring")) add(9090, [...admin, h.address]);
  }
  for (const [p, src] of m) if (!src.length) m.delete(p);
  return m;
}

/** The key under which the maps hold IP protocol 112 (VRRP) instead of a TCP port. */
const VRRP = -112;

function admitsOf(admissions: { port: number; source: string }[], vrrpPeers: string[] = []): Map<number, string[]> {
  const m = new Map<number, string[]>();
  for (const a of admissions) m.set(a.port, [...(m.get(a.port) ?? []), a.source]);
  if (vrrpPeers.length) m.set(VRRP, vrrpPeers);
  return m;
}

function assertSameAdmits(actual: Map<number, string[]>, expected: Map<number, string[]>, what: string): void {
  assert.deepEqual([...actual.keys()].sort((a, b) => a - b), [...expected.keys()].sort((a, b) => a - b), `${what}: ports`);
  for (const [p, src] of expected) assert.deepEqual(coverage(actual.get(p)!), coverage(src), `${what}: sources of port ${p}`);
}

// ---- nft, always inside a network namespace of its own: this machine's ruleset is never touched.
function requireNft(): void {
  if (spawnSync("nft", ["--version"]).error) throw new Error("nft is not installed; .ci/run installs it (apt-get install nftables)");
}

function inScratchNetns(script: string, args: string[], input = "", env: NodeJS.ProcessEnv = { PATH: process.env.PATH }): { code: number; out: string; stderr: string } {
  const unshare = process.getuid?.() === 0 ? ["-n"] : ["-r", "-n"];
  const r = spawnSync("unshare", [...unshare, "bash", "-c", script, "bash", ...args], { encoding: "utf8", input, env });
  if (r.error) throw r.error;
  return { code: r.status ?? -1, out: r.stdout, stderr: r.stderr };
}

const FIXED_RULES = [
  `[{"match":{"op":"==","left":{"meta":{"key":"iif"}},"right":"lo"}},{"accept":null}]`,
  `[{"match":{"op":"in","left":{"ct":{"key":"state"}},"right":["established","related"]}},{"accept":null}]`,
  `[{"match":{"op":"==","left":{"meta":{"key":"l4proto"}},"right":{"set":["icmp","ipv6-icmp"]}}},{"accept":null}]`,
  `[{"match":{"op":"==","left":{"payload":{"protocol":"udp","field":"sport"}},"right":67}},{"match":{"op":"==","left":{"payload":{"protocol":"udp","field":"dport"}},"right":68}},{"accept":null}]`,
];

/** Each ruleset checked (nft -c), loaded and listed as JSON, in turn, in one scratch namespace. */
function loadAll(rulesets: string[]): any[][] {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgc-fw-"));
  const files = rulesets.map((r, i) => { const f = path.join(dir, `${i}.nft`); fs.writeFileSync(f, r); return f; });
  const r = inScratchNetns(`for f in "$@"; do nft -c -f "$f" && nft -f "$f" && nft -j list ruleset || exit 1; done`, files);
  fs.rmSync(dir, { recursive: true });
  assert.equal(r.code, 0, `nft rejected a ruleset: ${r.stderr}`);
  return r.out.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l).nftables);
}

/** What each port admits, read back from nft's JSON listing of the loaded ruleset. */
function loadedAdmits(listing: Record<string, any>[]): Map<number, string[]> {
  const items = listing.filter((i) => !i.metainfo);
  const tables = items.filter((i) => i.table).map((i) => `${i.table.family} ${i.table.name}`);
  assert.deepEqual(tables, ["inet pgcluster"], "one table, ours");
  const chains = items.filter((i) => i.chain).map((i) => i.chain);
  assert.equal(chains.length, 1);
  assert.deepEqual({ name: chains[0].name, hook: chains[0].hook, type: chains[0].type, prio: chains[0].prio, policy: chains[0].policy },
    { name: "input", hook: "input", type: "filter", prio: 0, policy: "drop" });
  assert.deepEqual(items.filter((i) => !i.table && !i.chain && !i.rule), [], "no sets, maps or other objects");

  const rules = items.filter((i) => i.rule).map((i) => i.rule.expr as any[]);
  assert.deepEqual(rules.slice(0, FIXED_RULES.length).map((e) => JSON.stringify(e)), FIXED_RULES);
  const admits = new Map<number, string[]>();
  const elems = (right: any): any[] => (right && typeof right === "object" && "set" in right ? right.set : [right]);
  for (const e of rules.slice(FIXED_RULES.length)) {
    assert.equal(e.length, 3, `a port rule is saddr, dport, accept: ${JSON.stringify(e)}`);
    const [saddr, dport, verdict] = e;
    assert.deepEqual(saddr.match.left, { payload: { protocol: "ip", field: "saddr" } });
    const sourcesOf = () => elems(saddr.match.right).map((x) => (typeof x === "string" ? x : x.prefix ? `${x.prefix.addr}/${x.prefix.len}` : `${x.range[0]}-${x.range[1]}`));
    if (JSON.stringify(dport.match.left) === JSON.stringify({ payload: { protocol: "ip", field: "protocol" } })) {
      assert.ok([112, "vrrp"].includes(dport.match.right), `IP protocol rule admits VRRP only: ${JSON.stringify(e)}`);
      assert.deepEqual(verdict, { accept: null });
      admits.set(VRRP, [...(admits.get(VRRP) ?? []), ...sourcesOf()]);
      continue;
    }
    assert.deepEqual(dport.match.left, { payload: { protocol: "tcp", field: "dport" } });
    assert.ok(saddr.match.op === "==" && dport.match.op === "==", JSON.stringify(e));
    assert.deepEqual(verdict, { accept: null });
    // nft merges adjacent set elements into ranges (a-b) when it lists them: each address of one counts.
    const sources = elems(saddr.match.right).flatMap((x) => (typeof x === "string" ? [x] : x.prefix ? [`${x.prefix.addr}/${x.prefix.len}`]
      : Array.from({ length: ipToInt(x.range[1]) - ipToInt(x.range[0]) + 1 }, (_, i) => `${intToIp(ipToInt(x.range[0]) + i)}/32`)));
    for (const s of sources) assert.ok(parseCidr(s.includes("/") ? s : `${s}/32`), `source ${s}`);
    for (const p of elems(dport.match.right)) {
      const [lo, hi] = typeof p === "number" ? [p, p] : p.range;
      for (let port = lo; port <= hi; port++) admits.set(port, [...(admits.get(port) ?? []), ...sources]);
    }
  }
  return admits;
}

/** A stack file's spec; the GCP stacks' SSH key is a Pulumi secret the CLI would add. */
function stackSpec(stack: string): ClusterSpec {
  const sf = readStackFile(stack);
  return parseClusterSpec({ sshPrivateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n", ...sf.values }, { stack, secretKeys: new Set(["sshPrivateKey"]), source: path.basename(sf.file) });
}

async function stackCtx(stack: string, net: string): Promise<RoleContext> {
  const spec = stackSpec(stack);
  const hosts = hostsOf(spec, (i) => `${net}.${10 + i}`);
  return { spec, hosts, pki: await testPki(spec, hosts), secrets: TEST_SECRETS };
}

describe("host firewall (nftables)", () => {
  const stacks: [string, string][] = [["local", "10.213.0"], ["dev", "10.20.0"], ["prod", "10.30.0"]];
  before(requireNft);

  for (const [stack, net] of stacks) {
    it(`${stack}: every host admits, port by port, exactly the rules' sources; nft checks, loads and lists the same`, async () => {
      const ctx = await stackCtx(stack, net);
      const fws = ctx.hosts.map((h) => hostFirewall(ctx, h));
      const listings = loadAll(fws.map((fw) => renderRuleset(ctx.spec, fw)));
      ctx.hosts.forEach((h, i) => {
        const expected = expectedAdmits(ctx.spec, ctx.hosts, h);
        assertSameAdmits(admitsOf(fws[i].admissions, fws[i].vrrpPeers), expected, `${stack} ${h.name} (data)`);
        assertSameAdmits(loadedAdmits(listings[i]), expected, `${stack} ${h.name} (as nft loaded it)`);
      });
    });
  }

  it("local: the test namespaces' addresses — .201 a client of lb1 only, .210 nowhere; this machine everywhere", async () => {
    const ctx = await stackCtx("local", "10.213.0");
    const admitted = (host: string, port: number, ip: string) => {
      const fw = hostFirewall(ctx, ctx.hosts.find((x) => x.name === host)!);
      return fw.admissions.some((a) => a.port === port && coverage([a.source]).some(([lo, hi]) => ipToInt(ip) >= lo && ipToInt(ip) <= hi));
    };
    for (const p of [5000, 5001, 5002]) assert.ok(admitted("lb1", p, "10.213.0.201"));
    for (const [h, p] of [["lb1", 22], ["lb1", 8404], ["pg1", 22], ["pg1", 5432], ["pg1", 6432], ["pg1", 8008], ["pg1", 2379], ["pg1", 2380]] as const)
      assert.ok(!admitted(h, p, "10.213.0.201"), `${h}:${p} from .201`);
    for (const [h, p] of [["lb1", 22], ["lb1", 5000], ["lb1", 5001], ["lb1", 5002], ["lb1", 8404], ["pg1", 22], ["pg1", 2379], ["pg1", 2380], ["pg1", 5432], ["pg1", 6432], ["pg1", 8008]] as const) {
      assert.ok(!admitted(h, p, "10.213.0.210"), `${h}:${p} from .210`);
      assert.ok(admitted(h, p, "10.213.0.1"), `${h}:${p} from this machine`);
    }
    // pgBouncer: balancers and the node itself, not the other nodes.
    assert.ok(admitted("pg1", 6432, "10.213.0.11") && admitted("pg1", 6432, "10.213.0.10") && !admitted("pg1", 6432, "10.213.0.12"));
  });

  it("gcp: SSH from the bastion subnet only; operators reach HAProxy stats only, as the VPC rules say", async () => {
    const ctx = await stackCtx("prod", "10.30.0");
    for (const h of ctx.hosts) {
      const fw = hostFirewall(ctx, h);
      assert.deepEqual(fw.sshSources, ["10.250.0.0/28"]);
      assert.equal(fw.sshSourceKey, "pgcluster:gcp.bastionCidr");
      assert.deepEqual(fw.admissions.filter((a) => a.who.startsWith("operators")).map((a) => a.port), h.roles.includes("balancer") ? [8404] : []);
    }
    const dev = await stackCtx("dev", "10.20.0");
    const lb = dev.hosts.find((h) => h.roles.includes("balancer"))!;
    assert.ok(!hostFirewall(dev, lb).admissions.some((a) => a.port === 8404), "dev has no adminCidrs: stats admit nobody");
  });

  it("source lists are minimal and strictly parsed: nothing unparsed reaches the ruleset", () => {
    assert.deepEqual(minimalCidrs(["10.1.2.3", "10.1.0.0/16", "10.0.0.0/8", "192.168.1.0/24", "10.0.0.0/8"]), ["10.0.0.0/8", "192.168.1.0/24"]);
    assert.deepEqual(minimalCidrs(["10.213.0.1", "10.213.0.200/30", "10.213.0.1/32"]), ["10.213.0.1/32", "10.213.0.200/30"]);
    for (const bad of ["10.0.0.0/8; flush ruleset", "10.0.0.5/24", "host", "10.0.0.0/8 }", ""])
      assert.throws(() => minimalCidrs([bad]), /cannot be written into an IPv4 (address|CIDR)|has host bits set/, bad);
  });

  describe("the step", () => {
    let ctx: RoleContext;
    before(async () => { ctx = await stackCtx("local", "10.213.0"); });
    const step = (c: RoleContext, id: string) => compile(c.spec, c.hosts, c.pki, c.secrets).steps.find((s) => s.id === id)!;

    it("runs on every host after its common step; every etcd member starts after every host's firewall", () => {
      const plan = compile(ctx.spec, ctx.hosts, ctx.pki, ctx.secrets);
      for (const h of ctx.hosts) assert.deepEqual(plan.steps.find((s) => s.id === `${h.name}/firewall`)?.after, [`${h.name}/common`]);
      for (const s of plan.steps.filter((x) => x.role === "etcd"))
        for (const h of ctx.hosts) assert.ok(s.after.includes(`${h.name}/firewall`), `${s.id} after ${h.name}/firewall`);
    });

    it("guards first, validates the file with nft -c, loads it with a unit of ours that also loads it at boot", () => {
      const st = step(ctx, "pg1/firewall");
      const s = stepScript(st);
      const at = (needle: string) => { const i = s.indexOf(needle); assert.ok(i >= 0, needle); return i; };
      assert.ok(at("\npgc_fw_guard 22 'pgcluster:network.adminCidrs' '10.213.0.1/32'\n") < at("pgc_packages 'nftables'"));
      assert.ok(at("pgc_packages 'nftables'") < at(`pgc_file '${RULESET_FILE}'`));
      assert.match(s, /pgc_file '\/etc\/pgcluster\/firewall\.nft' 'root' 'root' '0640' --notify 'run:pgc_fw_load:pgcluster-firewall' --validate 'nft -c -f \{\}'/);
      const unit = fileOf(st, "/etc/systemd/system/pgcluster-firewall.service");
      for (const line of ["Type=oneshot", "RemainAfterExit=yes", `ExecStart=/usr/sbin/nft -f ${RULESET_FILE}`, "Before=network-pre.target shutdown.target", "WantedBy=sysinit.target", "DefaultDependencies=no"])
        assert.ok(unit.split("\n").includes(line), line);
      assert.doesNotMatch(unit, /^ExecStop/m, "stopping the unit never opens the host");
      const nft = fileOf(st, RULESET_FILE);
      assert.match(nft, /^table inet pgcluster\ndelete table inet pgcluster\ntable inet pgcluster \{$/m, "replaces our table only, atomically");
      assert.doesNotMatch(nft, /flush ruleset/);
    });

    describe("SSH lock-out guard (bash, as the host runs it)", () => {
      const guard = (c: RoleContext, host = "pg1") => stepScript({ id: `${host}/firewall`, actions: [{ kind: "shell", template: "firewall/guard.sh", source: renderGuard(hostFirewall(c, c.hosts.find((h) => h.name === host)!)) }, { kind: "shell", template: "test", source: 'echo "GUARD-PASSED"' }] });
      const runGuard = (script: string, env: Record<string, string>, wrap: string[] = []) => {
        const r = spawnSync(wrap[0] ?? "bash", [...wrap.slice(1), ...(wrap.length ? ["bash", "-s"] : ["-s"])], { input: script, encoding: "utf8", env: { PATH: process.env.PATH!, ...env } });
        return { code: r.status, out: `${r.stdout}${r.stderr}` };
      };
      const conn = (client: string, port = 22) => ({ SSH_CONNECTION: `${client} 40000 10.213.0.11 ${port}` });

      it("admits a session from the admin range and refuses one from outside it, naming the key and the address", () => {
        const ok = runGuard(guard(ctx), conn("10.213.0.1"));
        assert.equal(ok.code, 0, ok.out);
        assert.match(ok.out, /SSH from 10\.213\.0\.1 stays admitted/);
        assert.match(ok.out, /GUARD-PASSED/);
        const no = runGuard(guard(ctx), conn("10.213.0.210"));
        assert.equal(no.code, 1, no.out);
        assert.match(no.out, /refusing to load the firewall on pg1: it admits SSH \(port 22\) only from 10\.213\.0\.1\/32 \(pgcluster:network\.adminCidrs\), not from 10\.213\.0\.210.*Add 10\.213\.0\.210 \(or its range\) to pgcluster:network\.adminCidrs\. Nothing was loaded\./);
        assert.doesNotMatch(no.out, /GUARD-PASSED/);
      });

      it("admits a session that reaches sshd over loopback (a bastion hop ending on the host itself): the table always accepts lo", () => {
        const r = runGuard(guard(ctx), conn("127.0.0.1"));
        assert.equal(r.code, 0, r.out);
        assert.match(r.out, /SSH from 127\.0\.0\.1 \(loopback\) stays admitted/);
      });

      it("matches CIDR edges exactly, IPv4-mapped clients too; refuses IPv6 clients, another port, and an empty admin list", async () => {
        const spec = stackSpec("local");
        const wide: RoleContext = { ...ctx, spec: { ...spec, network: { ...spec.network, adminCidrs: ["10.213.0.200/30", "192.168.0.0/16"] } } };
        for (const [client, pass] of [["10.213.0.200", true], ["10.213.0.203", true], ["10.213.0.204", false], ["10.213.0.199", false], ["192.168.255.255", true], ["192.169.0.0", false], ["::ffff:10.213.0.201", true], ["10.213.0.1", false]] as const) {
          const r = runGuard(guard(wide), conn(client));
          assert.equal(r.code, pass ? 0 : 1, `${client}: ${r.out}`);
        }
        const v6 = runGuard(guard(ctx), { SSH_CONNECTION: "fd00::5 40000 fd00::11 22" });
        assert.equal(v6.code, 1);
        assert.match(v6.out, /not IPv4/);
        const port = runGuard(guard(ctx), conn("10.213.0.1", 2222));
        assert.equal(port.code, 1);
        assert.match(port.out, /came in on port 2222, but the rules open SSH on port 22 only/);
        const none: RoleContext = { ...ctx, spec: { ...spec, network: { ...spec.network, adminCidrs: [] } } };
        const empty = runGuard(guard(none), conn("10.213.0.1"));
        assert.equal(empty.code, 1);
        assert.match(empty.out, /only from nobody \(pgcluster:network\.adminCidrs\)/);
      });

      it("finds the session under sudo (SSH_CONNECTION only in a parent's environment); without SSH it skips the check", () => {
        // bash -c '…; exit' keeps the parent (it does not exec the child), as sudo's parent stays.
        const sudoLike = runGuard(guard(ctx), conn("10.213.0.210"), ["bash", "-c", 'env -u SSH_CONNECTION "$@"; exit $?', "parent"]);
        assert.equal(sudoLike.code, 1, sudoLike.out);
        assert.match(sudoLike.out, /not from 10\.213\.0\.210/);
        // A new PID namespace: no ancestor at all carries SSH_CONNECTION (a console).
        if (process.getuid?.() !== 0) return;
        const consoleRun = runGuard(guard(ctx), {}, ["unshare", "-p", "-f", "--mount-proc"]);
        assert.equal(consoleRun.code, 0, consoleRun.out);
        assert.match(consoleRun.out, /no SSH_CONNECTION\): the SSH lock-out check is skipped/);
      });
    });

    it("firewall.enabled false: removes our table (drift only where it is), keeps every other table", () => {
      const off: RoleContext = { ...ctx, spec: { ...ctx.spec, firewall: { enabled: false } } };
      const s = stepScript(step(off, "pg1/firewall"));
      assert.doesNotMatch(s, /pgc_fw_guard|firewall\.nft' 'root'/);
      const table = (name: string, policy: string) => `table inet ${name} {\n\tchain input {\n\t\ttype filter hook input priority filter; policy ${policy};\n\t}\n}`;
      // In a scratch namespace (and directory): check mode with our table, apply, check mode again.
      const r = inScratchNetns(`
        cd "$(mktemp -d)" || exit 9
        printf '%s\\n' "$1" "$2" | nft -f - || exit 9
        PGCLUSTER_CHECK=1 bash -c "$3" > check1.out 2>&1; echo "check1 $?"; tail -n 1 check1.out
        bash -c "$3" > apply.out 2>&1; echo "apply $?"; tail -n 1 apply.out
        PGCLUSTER_CHECK=1 bash -c "$3" > check2.out 2>&1; echo "check2 $?"; tail -n 1 check2.out
        nft list tables; rm -rf "$PWD"`, [table("other", "accept"), table("pgcluster", "drop"), s]);
      assert.equal(r.code, 0, r.stderr + r.out);
      const lines = r.out.trim().split("\n");
      assert.equal(lines[0], "check1 0");
      assert.match(lines[1], /"mode":"check","changed":\["firewall:table inet pgcluster removed \(pgcluster:firewall.enabled is false\)"\]/);
      assert.equal(lines[2], "apply 0");
      assert.match(lines[3], /"mode":"apply","changed":\["firewall:table inet pgcluster removed/);
      assert.equal(lines[4], "check2 0");
      assert.match(lines[5], /"mode":"check","changed":\[\]/);
      assert.deepEqual(lines.slice(6), ["table inet other"]);
    });
  });
});
