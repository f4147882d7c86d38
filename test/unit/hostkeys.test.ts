// SSH host keys and ssh argv, without hosts: the key grammar, known_hosts files, the local
// driver's trust modes, HostDrift's ssh command line (both hops strict, no value can become an
// option or a shell word of its own), and the dynamic providers as Pulumi serializes them.
import { strict as assert } from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { parseHostKey, knownHostsText } from "../../model/sshHostKey";
import { sshArgs, ssh, explainSshFailure, mergeKnownHosts, type SshConfig, type SshTarget } from "../../local/ssh";
import { hostKeyTrust } from "../../local/cluster";
import { parseClusterSpec, ConfigError } from "../../model/config";
import { driftSshArgs, driftKnownHosts, checkHost, hostDriftProvider, type HostDriftProps } from "../../infra/hostDrift";
import { hostKeyScanProvider, scanHostKey, pollHostKey } from "../../infra/hostKeys";

const HOSTILE_USER = "-oProxyCommand=touch /tmp/x";

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), "pgc-hostkeys-"));
}

/** A real ed25519 public key line, made by ssh-keygen (no comment). */
function realKey(): string {
  const d = tmpDir();
  try {
    const r = spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "", "-f", path.join(d, "k")], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    return fs.readFileSync(path.join(d, "k.pub"), "utf8").trim().split(" ").slice(0, 2).join(" ");
  } finally {
    fs.rmSync(d, { recursive: true, force: true });
  }
}

/** Evaluates a provider as Pulumi ships it to its provider process: serialized, on its own. */
async function serialized<T extends object>(provider: T): Promise<T> {
  const p = provider;
  const s = await pulumi.runtime.serializeFunction(() => p, { allowSecrets: false } as any);
  const mod = { exports: {} as Record<string, () => T> };
  new Function("exports", "require", "module", s.text)(mod.exports, require, mod);
  return mod.exports[s.exportName]();
}

describe("SSH host keys", function () {
  this.timeout(30000);
  const key = realKey();
  const other = realKey();

  describe("the host key grammar", () => {
    it("accepts one ed25519 key line and nothing else", () => {
      assert.equal(parseHostKey(key), key);
      const blobOf = (k: string) => Buffer.from(k.split(" ")[1], "base64");
      const withBlob = (b: Buffer) => `ssh-ed25519 ${b.toString("base64")}`;
      const wrongType = blobOf(key); wrongType.write("ssh-ed25518", 4, "latin1");
      const wrongLen = blobOf(key); wrongLen.writeUInt32BE(31, 15);
      for (const bad of [`${key} root@pg1`, `${key}\n`, `${key}\n@cert-authority * ${other}`, ` ${key}`, "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ", key.replace("ssh-ed25519", "ssh-dss"),
        withBlob(wrongType), withBlob(wrongLen), key.slice(0, -1), "", undefined, 42])
        assert.equal(parseHostKey(bad), undefined, JSON.stringify(bad));
    });

    it("known_hosts lines: [address]:port for a port other than 22, and no line without a valid key and an IPv4 address", () => {
      assert.equal(knownHostsText([{ address: "10.1.0.11", port: 22, key }, { address: "10.1.0.12", port: 2222, key: other }]), `10.1.0.11 ${key}\n[10.1.0.12]:2222 ${other}\n`);
      assert.throws(() => knownHostsText([{ address: "10.1.0.11", port: 22, key: `${key}\n* ${other}` }]), /known_hosts entry for 10\.1\.0\.11: is not an ed25519 SSH host key/);
      assert.throws(() => knownHostsText([{ address: "* ", port: 22, key }]), /is not an IPv4 address/);
    });
  });

  describe("local driver: ssh argv", () => {
    const cfg: SshConfig = { privateKeyFile: "/nonexistent/key", knownHostsFile: "/nonexistent/known_hosts", hostKeys: "pinned" };

    it("passes the user with -l, the port with -p and the address after --: a hostile user name stays a user name", () => {
      const t: SshTarget = { name: "pg1", address: "127.0.0.1", user: HOSTILE_USER, port: 1 };
      const args = sshArgs(cfg, t);
      assert.deepEqual(args.slice(-6), ["-l", HOSTILE_USER, "-p", "1", "--", "127.0.0.1"]);
      assert.equal(args.filter((a) => a.includes("ProxyCommand")).length, 1, "only as -l's value");
      assert.ok(!args.some((a) => a.includes("@")), "no user@host word");
    });

    it("running it: the hostile user reaches ssh as a user name, never as an option (no command runs on this machine)", async () => {
      const d = tmpDir();
      try {
        const marker = path.join(d, "marker");
        const t: SshTarget = { name: "x", address: "127.0.0.1", user: `-oProxyCommand=touch ${marker}`, port: 1 };
        const r = await ssh({ ...cfg, knownHostsFile: path.join(d, "known_hosts") }, t, "true", "", 20_000, 3);
        assert.equal(r.code, 255);
        // OpenSSH 9 refuses such a name itself; an older one would try the port and be refused.
        assert.match(r.out, /remote username contains invalid characters|Connection refused/);
        assert.deepEqual(fs.readdirSync(d).filter((f) => f.startsWith("marker")), [], "the ProxyCommand ran");
        // Control: the same value spliced as user@address (the old argv) does run on this machine.
        spawnSync("ssh", ["-o", "BatchMode=yes", "-o", "ConnectTimeout=3", `${t.user}@${t.address}`, "true"], { encoding: "utf8", timeout: 20_000 });
        assert.deepEqual(fs.readdirSync(d).filter((f) => f.startsWith("marker")), ["marker@127.0.0.1"], "control: the old form should have run it");
      } finally {
        fs.rmSync(d, { recursive: true, force: true });
      }
    });

    it("strict host keys for generated and pinned keys, accept-new only for trust on first use; only the stack's known_hosts counts", () => {
      const t: SshTarget = { name: "pg1", address: "10.1.0.11", user: "root", port: 22 };
      const opt = (c: SshConfig, name: string) => sshArgs(c, t).find((a) => a.startsWith(`${name}=`));
      assert.equal(opt({ ...cfg, hostKeys: "generated" }, "StrictHostKeyChecking"), "StrictHostKeyChecking=yes");
      assert.equal(opt(cfg, "StrictHostKeyChecking"), "StrictHostKeyChecking=yes");
      assert.equal(opt({ ...cfg, hostKeys: "trust-on-first-use" }, "StrictHostKeyChecking"), "StrictHostKeyChecking=accept-new");
      assert.equal(opt(cfg, "GlobalKnownHostsFile"), "GlobalKnownHostsFile=/dev/null");
      assert.equal(opt(cfg, "UpdateHostKeys"), "UpdateHostKeys=no");
      assert.equal(opt(cfg, "HashKnownHosts"), "HashKnownHosts=no");
    });

    it("a changed key is an error naming the host, the file and what to do, per trust mode", () => {
      const t: SshTarget = { name: "pg2", address: "10.1.0.12", user: "root", port: 2222 };
      const changed = "@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\nHost key for [10.1.0.12]:2222 has changed and you have requested strict checking.\nHost key verification failed.";
      const tofu = explainSshFailure(t, changed, { ...cfg, knownHostsFile: "/s/known_hosts", hostKeys: "trust-on-first-use" });
      assert.match(tofu, /^pg2 \(root@10\.1\.0\.12:2222\): its SSH host key has changed: it does not match the one in \/s\/known_hosts\. Nothing was run on it\./);
      assert.match(tofu, /ssh-keygen -R '\[10\.1\.0\.12\]:2222' -f \/s\/known_hosts/);
      assert.match(explainSshFailure(t, changed, cfg), /host key has changed.*set it as its hosts\[\]\.hostKey/);
      assert.match(explainSshFailure(t, changed, { ...cfg, hostKeys: "generated" }), /npm run local/);
      assert.match(explainSshFailure(t, "No ED25519 host key is known for [10.1.0.12]:2222 and you have requested strict checking.\nHost key verification failed.", cfg),
        /pg2 .*host key could not be verified: \/nonexistent\/known_hosts holds no pinned key for it/);
    });
  });

  describe("local driver: where host keys come from (hostKeyTrust)", () => {
    const raw = (ssh: Record<string, unknown>, keys: Record<string, string> = {}) => ({
      clusterName: "pgtest", provider: "static",
      hosts: ["lb1", "pg1", "pg2", "pg3"].map((n, i) => ({ name: n, address: `10.1.0.${10 + i}`, roles: n === "lb1" ? ["balancer"] : ["etcd", "postgres"], ...(keys[n] ? { hostKey: keys[n] } : {}) })),
      network: { cidr: "10.1.0.0/24", clientCidrs: ["10.0.0.0/8"], adminCidrs: ["10.1.0.5/32"] },
      ssh: { privateKeyFile: "k", ...ssh },
    });
    const spec = (stack: string, ssh: Record<string, unknown>, keys: Record<string, string> = {}) =>
      parseClusterSpec(raw(ssh, keys), { stack, secretKeys: new Set(), source: "test" });
    let d: string;
    beforeEach(() => { d = tmpDir(); });
    afterEach(() => fs.rmSync(d, { recursive: true, force: true }));

    it("pinned without a key for every host: refused before any connection, naming each hosts[i].hostKey", () => {
      assert.throws(() => hostKeyTrust(spec("edge", { hostKeys: "pinned" }, { pg1: key }), d), (e: unknown) => e instanceof ConfigError
        && /pgcluster:hosts\[0\]\.hostKey: host "lb1" has no SSH host key/.test(e.message) && /hosts\[2\]\.hostKey: host "pg2"/.test(e.message)
        && /hosts\[3\]\.hostKey/.test(e.message) && !/hosts\[1\]/.test(e.message));
      assert.equal(fs.existsSync(path.join(d, "known_hosts")), false);
    });

    it("pinned: known_hosts is exactly the config's keys (rewritten each run), checked strictly", () => {
      fs.writeFileSync(path.join(d, "known_hosts"), `10.1.0.11 ${other}\n`);
      const keys = { lb1: key, pg1: key, pg2: other, pg3: key };
      const s = spec("edge", {}, keys);
      assert.equal(s.ssh.hostKeys, "pinned", "the default");
      assert.deepEqual(hostKeyTrust(s, d), { knownHostsFile: path.join(d, "known_hosts"), hostKeys: "pinned" });
      assert.equal(fs.readFileSync(path.join(d, "known_hosts"), "utf8"), `10.1.0.10 ${key}\n10.1.0.11 ${key}\n10.1.0.12 ${other}\n10.1.0.13 ${key}\n`);
    });

    it("trust on first use: recorded keys stay, a key pinned in the config replaces the recorded one for its host", () => {
      fs.writeFileSync(path.join(d, "known_hosts"), `10.1.0.11 ${other}\n10.1.0.12 ${other}\n`);
      const r = hostKeyTrust(spec("edge", { hostKeys: "trust-on-first-use" }, { pg2: key }), d);
      assert.equal(r.hostKeys, "trust-on-first-use");
      assert.equal(fs.readFileSync(path.join(d, "known_hosts"), "utf8"), `10.1.0.11 ${other}\n10.1.0.12 ${key}\n`);
      mergeKnownHosts(path.join(d, "fresh"), []);
      assert.equal(fs.readFileSync(path.join(d, "fresh"), "utf8"), "");
    });

    it("a hosts[].hostKey that is not one key line is refused, naming it", () => {
      assert.throws(() => hostKeyTrust(spec("edge", { hostKeys: "trust-on-first-use" }, { pg3: `${key}\n10.1.0.11 ${other}` }), d),
        /pgcluster:hosts\[3\]\.hostKey: is not an ed25519 SSH host key/);
    });

    it("the local stack pins the keys pgcluster generated for its hosts, whatever ssh.hostKeys says (that is for the Pulumi CLI)", () => {
      assert.deepEqual(hostKeyTrust(spec("local", { hostKeys: "trust-on-first-use" }), d), { knownHostsFile: path.join(d, "known_hosts"), hostKeys: "generated" });
    });
  });

  describe("HostDrift: ssh with pinned keys on both hops", () => {
    const props = (over: Partial<HostDriftProps> = {}): HostDriftProps => ({
      host: "pgdev-db-1", address: "10.9.0.11", user: "ops", port: 22, privateKey: "k", hostKey: key,
      proxy: { host: "198.51.100.7", user: "ops", privateKey: "pk", hostKey: other }, steps: [], ...over,
    });

    it("refuses a hostile user, address or key before running anything, naming it", async () => {
      const d = tmpDir();
      try {
        const marker = path.join(d, "marker");
        for (const [over, what] of [
          [{ user: `-oProxyCommand=touch ${marker}` }, "ssh user"],
          [{ proxy: { ...props().proxy!, user: `x$(touch ${marker})` } }, "bastion ssh user"],
          [{ proxy: { ...props().proxy!, host: `198.51.100.7 -oProxyCommand=touch ${marker}` } }, "bastion address"],
          [{ address: "-oProxyCommand=x" }, "address"],
          [{ hostKey: `${key}\n* ${other}` }, "host key"],
          [{ proxy: { ...props().proxy!, hostKey: "" } }, "no pinned SSH host key for the bastion"],
          [{ hostKey: undefined as unknown as string }, "no pinned SSH host key in this resource's state"],
        ] as const) {
          const p = props(over as Partial<HostDriftProps>);
          assert.throws(() => driftSshArgs(p, d), new RegExp(`drift check of pgdev-db-1: ${what.replace(/[()$]/g, "\\$&")}`), JSON.stringify(over));
          await assert.rejects(checkHost({ ...p, steps: [{ id: "pgdev-db-1/etcd", script: "true" }] }), /nothing was run|Nothing was run/i);
        }
        assert.equal(fs.existsSync(marker), false);
      } finally {
        fs.rmSync(d, { recursive: true, force: true });
      }
    });

    it("both hops check strictly against the pinned keys; the destination is -l/-p/--/address", () => {
      const args = driftSshArgs(props(), "/tmp/d");
      assert.deepEqual(args.slice(-7), ["-l", "ops", "-p", "22", "--", "10.9.0.11", "sudo -n env PGCLUSTER_CHECK=1 bash -s"]);
      assert.ok(!args.some((a) => /accept-new|StrictHostKeyChecking=no/.test(a)));
      assert.equal(args.filter((a) => a === "StrictHostKeyChecking=yes").length, 1);
      assert.match(args.find((a) => a.startsWith("ProxyCommand="))!, /'StrictHostKeyChecking=yes'/);
      assert.equal(driftKnownHosts(props()), `10.9.0.11 ${key}\n198.51.100.7 ${other}\n`);
      assert.equal(driftKnownHosts(props({ port: 2222, proxy: undefined })), `[10.9.0.11]:2222 ${key}\n`);
    });

    it("the bastion hop is a ProxyCommand of quoted words: the shell gets exactly those words, even from an odd temp path", () => {
      const dir = "/tmp/a'b %h $(touch x) `y`";
      const pc = driftSshArgs(props(), dir).find((a) => a.startsWith("ProxyCommand="))!.slice("ProxyCommand=".length);
      // What ssh does before handing the line to /bin/sh: %-expansion (%h, %p; %% is a literal %).
      const expanded = pc.replace(/%(%|h|p)/g, (_m, c) => (c === "%" ? "%" : c === "h" ? "10.9.0.11" : "22"));
      const words = spawnSync("/bin/sh", ["-c", `printf '%s\\n' ${expanded.replace(/^'ssh' /, "")}`], { encoding: "utf8" }).stdout.split("\n").slice(0, -1);
      assert.deepEqual(words, ["-i", `${dir}/proxy-key`, "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10", "-o", "StrictHostKeyChecking=yes",
        "-o", `UserKnownHostsFile=${dir}/known_hosts`, "-o", "GlobalKnownHostsFile=/dev/null", "-o", "UpdateHostKeys=no", "-o", "LogLevel=ERROR",
        "-l", "ops", "-p", "22", "-W", "10.9.0.11:22", "--", "198.51.100.7"]);
      assert.ok(pc.startsWith("'ssh' "));
    });

    it("diff: a re-pinned host key (or any connection value) reaches the stored props; drift alone too", async () => {
      const olds = { ...props(), drift: [] };
      assert.equal((await hostDriftProvider.diff!("x", olds, props())).changes, false);
      assert.equal((await hostDriftProvider.diff!("x", olds, props({ hostKey: other }))).changes, true);
      assert.equal((await hostDriftProvider.diff!("x", olds, props({ proxy: { ...props().proxy!, hostKey: key } }))).changes, true);
      assert.equal((await hostDriftProvider.diff!("x", { ...olds, drift: ["a: b"] }, props())).changes, true);
    });
  });

  describe("trust on first use in Pulumi: HostKeyScan", () => {
    it("keeps the recorded key: no read (a refresh keeps it), an address or port change replaces it (a deliberate re-trust)", async () => {
      const p = await serialized(hostKeyScanProvider);
      assert.equal(p.read, undefined);
      const olds = { host: "pg1", address: "10.1.0.11", port: 22, hostKey: key };
      assert.deepEqual(await p.diff!("pg1-hostkey", olds, { host: "pg1", address: "10.1.0.11", port: 22 }), { changes: false, replaces: [], deleteBeforeReplace: false });
      assert.deepEqual((await p.diff!("pg1-hostkey", olds, { host: "pg1", address: "10.1.0.21", port: 22 })).replaces, ["address"]);
      assert.deepEqual((await p.diff!("pg1-hostkey", olds, { host: "pg1", address: "10.1.0.11", port: 2222 })).replaces, ["port"]);
      assert.equal((await p.update!("pg1-hostkey", olds, { host: "db1", address: "10.1.0.11", port: 22 })).outs.hostKey, key);
    });

    it("a host that does not answer: an error naming it and what to check, within the bound", async () => {
      const t0 = Date.now();
      await assert.rejects(scanHostKey({ host: "pg9", address: "127.0.0.1", port: 1 }, 1),
        /^Error: pg9 \(127\.0\.0\.1:1\): could not record its SSH host key \(ssh\.hostKeys: trust-on-first-use\): ssh-keyscan -t ed25519 got none after 1 attempts/);
      assert.ok(Date.now() - t0 < 15_000);
      await assert.rejects(scanHostKey({ host: "pg9", address: "-oProxyCommand=x", port: 22 }, 1), /pg9: cannot scan/);
    });

    it("HostDrift's provider, serialized as Pulumi ships it, still refuses a hostile value before running ssh", async () => {
      const p = await serialized(hostDriftProvider);
      await assert.rejects(p.read!("x", { host: "pg1", address: "10.1.0.11", user: HOSTILE_USER, port: 22, privateKey: "k", hostKey: key, steps: [{ id: "pg1/etcd", script: "true" }] }),
        /drift check of pg1: ssh user "-oProxyCommand=touch \/tmp\/x" is not valid; nothing was run/);
    });
  });

  describe("GCP: waiting for the guest agent's key", () => {
    it("returns the key once published, refuses a malformed one at once, and gives up after the bound naming the instance", async () => {
      let n = 0;
      assert.equal(await pollHostKey(async () => (++n < 3 ? (n === 1 ? undefined : Promise.reject(new Error("404"))) : key), "vm a", { timeoutMs: 2000, intervalMs: 10 }), key);
      assert.equal(n, 3);
      await assert.rejects(pollHostKey(async () => `${key} comment`, "vm b", { timeoutMs: 2000, intervalMs: 10 }), /vm b: is not an ed25519 SSH host key/);
      const t0 = Date.now();
      await assert.rejects(pollHostKey(async () => { throw new Error("HTTP 404 guest attributes"); }, "GCP instance pg1 (pg1-abc, z)", { timeoutMs: 300, intervalMs: 50 }),
        /GCP instance pg1 \(pg1-abc, z\): no SSH host key published after 0 s \(HTTP 404 guest attributes\)\. .*enable-guest-attributes is TRUE/);
      assert.ok(Date.now() - t0 < 1000);
    });
  });
});
