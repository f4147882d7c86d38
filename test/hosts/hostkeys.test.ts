// SSH host keys on the real local hosts: both drivers connect only to a host presenting the key
// they pinned (or recorded on first use), and refuse a changed one with an error naming the host
// and what to do. Nothing here changes a host: wrong keys live in temporary known_hosts copies.
import { strict as assert } from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { requireHosts, settledCluster } from "../support/hostsLayer";
import { stepScript } from "../../roles/script";
import { preflight } from "../../local/driver";
import { apply } from "../../local/up";
import { hostKey } from "../../local/hosts";
import type { SshConfig } from "../../local/ssh";
import type { LocalCluster } from "../../local/cluster";
import { checkHost, type HostDriftProps } from "../../infra/hostDrift";
import { hostKeyScanProvider } from "../../infra/hostKeys";

describe("hosts layer: SSH host keys", function () {
  this.timeout(10 * 60_000);
  let c: LocalCluster;
  let dir: string;
  let wrongKey: string;

  before(async function () {
    requireHosts(this);
    // Settled first: what an earlier suite left (a firewall switched off) is not this suite's failure.
    c = await settledCluster("SSH host keys");
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgc-hostkeys-"));
    const r = spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "", "-f", path.join(dir, "impostor")], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    wrongKey = fs.readFileSync(path.join(dir, "impostor.pub"), "utf8").trim();
  });
  after(() => { if (dir) fs.rmSync(dir, { recursive: true, force: true }); });

  const addr = (n: string) => c.targets[n].address;

  it("local driver: known_hosts holds exactly the keys generated for the local hosts, checked strictly", async () => {
    assert.equal(c.ssh.hostKeys, "generated");
    const lines = fs.readFileSync(c.ssh.knownHostsFile, "utf8").trim().split("\n").sort();
    assert.deepEqual(lines, c.hosts.map((h) => `${h.address} ${hostKey(h.name)}`).sort());
    assert.deepEqual(await preflight(c.ssh, Object.values(c.targets)), []);
  });

  it("local driver: a host whose key changed is refused before anything runs, naming the host and the file", async () => {
    const file = path.join(dir, "known_hosts.changed");
    fs.writeFileSync(file, fs.readFileSync(c.ssh.knownHostsFile, "utf8").replace(`${addr("pg1")} ${hostKey("pg1")}`, `${addr("pg1")} ${wrongKey}`));
    const cfg: SshConfig = { ...c.ssh, knownHostsFile: file };
    const problems = await preflight(cfg, Object.values(c.targets));
    assert.equal(problems.length, 1, problems.join("\n"));
    assert.match(problems[0], new RegExp(`^pg1 \\(root@${addr("pg1").replace(/\./g, "\\.")}:22\\): its SSH host key has changed: it does not match the one in ${file}\\. Nothing was run on it\\. .*npm run local`));
    const log: string[] = [];
    const r = await apply({ ...c, ssh: cfg }, (l) => log.push(l), true);
    assert.equal(r.code, 2);
    assert.equal(r.outcomes.length, 0);
    assert.ok(log.includes("nothing was changed on any host."), log.join("\n"));
  });

  it("local driver, trust on first use: the first key is recorded, kept, and a changed one is refused (never replaced)", async () => {
    const file = path.join(dir, "known_hosts.tofu");
    const cfg: SshConfig = { ...c.ssh, knownHostsFile: file, hostKeys: "trust-on-first-use" };
    assert.deepEqual(await preflight(cfg, [c.targets.pg2]), []);
    const recorded = fs.readFileSync(file, "utf8");
    assert.match(recorded, new RegExp(`^${addr("pg2").replace(/\./g, "\\.")} ${hostKey("pg2").replace(/[+/]/g, "\\$&")}\\n`, "m"));
    assert.deepEqual(await preflight(cfg, [c.targets.pg2]), []);
    assert.equal(fs.readFileSync(file, "utf8"), recorded, "a second contact changes nothing");

    fs.writeFileSync(file, `${addr("pg2")} ${wrongKey}\n`);
    const problems = await preflight(cfg, [c.targets.pg2]);
    assert.equal(problems.length, 1);
    assert.match(problems[0], /^pg2 .*its SSH host key has changed/);
    assert.ok(problems[0].includes(`ssh-keygen -R '${addr("pg2")}' -f ${file}`), problems[0]);
    assert.equal(fs.readFileSync(file, "utf8"), `${addr("pg2")} ${wrongKey}\n`, "the recorded key must not be replaced");
  });

  const driftProps = (host: string, over: Partial<HostDriftProps> = {}): HostDriftProps => ({
    host, address: addr(host), user: "root", port: 22, privateKey: fs.readFileSync(c.ssh.privateKeyFile, "utf8"), hostKey: hostKey(host),
    steps: c.plan.steps.filter((s) => s.host === host).map((s) => ({ id: s.id, script: stepScript(s) })), ...over,
  });

  it("HostDrift: checks the host against its pinned key, and refuses a wrong one naming the host", async () => {
    assert.deepEqual(await checkHost(driftProps("pg1")), []);
    await assert.rejects(checkHost(driftProps("pg1", { hostKey: wrongKey, retrust: "set it again" })),
      new RegExp(`^Error: drift check of pg1 \\(${addr("pg1").replace(/\./g, "\\.")}\\) refused: the SSH host key it presents does not match the pinned one; nothing was run\\. set it again;`));
  });

  it("HostDrift through a bastion hop: both keys pinned, a wrong bastion key refused", async () => {
    // pg1 is its own bastion here (target 127.0.0.1 seen from pg1): the hop is real, and no
    // host firewall stands between them.
    const viaBastion = (bastionKey: string) => driftProps("pg1", {
      address: "127.0.0.1",
      proxy: { host: addr("pg1"), user: "root", privateKey: fs.readFileSync(c.ssh.privateKeyFile, "utf8"), hostKey: bastionKey },
    });
    assert.deepEqual(await checkHost(viaBastion(hostKey("pg1"))), []);
    await assert.rejects(checkHost(viaBastion(wrongKey)), /^Error: drift check of pg1 \(127\.0\.0\.1\) refused: the SSH host key it presents \(or the bastion 10\.213\.0\.11\) does not match the pinned one/);
  });

  it("HostKeyScan (Pulumi, trust on first use), as Pulumi ships it: records exactly the host's key", async () => {
    const provider = hostKeyScanProvider;
    const s = await pulumi.runtime.serializeFunction(() => provider, { allowSecrets: false } as any);
    const mod = { exports: {} as Record<string, () => typeof provider> };
    new Function("exports", "require", "module", s.text)(mod.exports, require, mod);
    const created = await mod.exports[s.exportName]().create({ host: "lb1", address: addr("lb1"), port: 22 });
    assert.equal(created.outs.hostKey, hostKey("lb1"));
    assert.equal(created.id, "lb1-hostkey");
  });
});
