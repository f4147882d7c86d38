// Drift on the real local cluster: check mode finds each kind of hand change on the host it
// happened on (and nothing on a clean cluster, also after failovers), `npm run drift` exits 3
// with a readable report, and a re-apply repairs it.
import { strict as assert } from "assert";
import { spawnSync } from "child_process";
import * as path from "path";
import { onlyRole, requireHosts, settledCluster } from "../support/hostsLayer";
import { stepScript } from "../../roles/script";
import { apply } from "../../local/up";
import { ssh } from "../../local/ssh";
import { healthy } from "../../local/chaos";
import { hostKey } from "../../local/hosts";
import { loadSpec, type LocalCluster } from "../../local/cluster";
import { compile } from "../../roles/compile";
import { PROJECT_ROOT } from "../../model/stackFile";
import { hostDriftProvider, type HostDriftProps } from "../../infra/hostDrift";
import * as fs from "fs";

describe("hosts layer: drift", function () {
  this.timeout(10 * 60_000);
  let c: LocalCluster;
  const on = async (node: string, cmd: string) => {
    const r = await ssh(c.ssh, c.targets[node], cmd, "", 120_000);
    assert.equal(r.code, 0, `${node}: ${cmd}: ${r.out}`);
  };
  const drift = async () => {
    const r = await apply(c, () => {}, true);
    return { code: r.code, steps: r.outcomes.filter((o) => o.outcome === "drift").map((o) => `${o.step.id}: ${o.result!.changed.join(", ")}`) };
  };

  before(async function () {
    requireHosts(this);
    c = await settledCluster("drift");
  });

  it("reports nothing on a clean cluster, whichever node leads now", async () => {
    assert.deepEqual(await drift(), { code: 0, steps: [] });
  });

  it("finds a hand-edited file, a stopped service, a changed file mode and a removed package, each on its host", async () => {
    await on("pg3", "sed -i 's/^default_pool_size = .*/default_pool_size = 7/' /etc/pgbouncer/pgbouncer.ini");
    await on("pg2", "systemctl stop pgbouncer");
    await on("pg1", "chmod 0644 /etc/patroni/pki/node.key");
    await on("pg3", "dpkg --remove etcd-client >/dev/null");
    const d = await drift();
    assert.equal(d.code, 3);
    const find = (prefix: string) => d.steps.find((s) => s.startsWith(prefix)) ?? "";
    assert.match(find("pg3/pgbouncer:"), /file:\/etc\/pgbouncer\/pgbouncer\.ini \(content\)/);
    assert.match(find("pg2/pgbouncer:"), /service:pgbouncer started/);
    assert.match(find("pg1/patroni:"), /file:\/etc\/patroni\/pki\/node\.key \(owner\/mode\)/);
    assert.match(find("pg3/etcd:"), /package:etcd-client/);
    assert.ok(!d.steps.some((s) => s.startsWith("lb1/")), d.steps.join("\n"));
  });

  it("npm run drift exits 3 and shows host, step and diff, without secrets", () => {
    const r = spawnSync("npx", ["tsx", path.join(PROJECT_ROOT, "local/cli.ts"), "drift", "--stack", "local"], { encoding: "utf8", cwd: PROJECT_ROOT });
    const out = r.stdout + r.stderr;
    assert.equal(r.status, 3, out);
    assert.match(out, /pg3 +pgbouncer +drift/);
    assert.match(out, /-default_pool_size = 7|\+default_pool_size = 20/);
    for (const s of Object.values(c.secrets)) assert.ok(!out.includes(s), "a secret in the drift report");
  });

  it("the Pulumi HostDrift provider's read() sees the same drift on its host, and diff() turns it into a change", async () => {
    const props = (host: string): HostDriftProps => ({
      host, address: c.targets[host].address, user: "root", port: 22, privateKey: fs.readFileSync(c.ssh.privateKeyFile, "utf8"), hostKey: hostKey(host),
      steps: c.plan.steps.filter((s) => s.host === host).map((s) => ({ id: s.id, script: stepScript(s) })),
    });
    const read = await hostDriftProvider.read!("pg3", props("pg3"));
    const drift: string[] = read.props!.drift;
    assert.ok(drift.some((d) => d.startsWith("pg3/pgbouncer: file:/etc/pgbouncer/pgbouncer.ini")), drift.join("\n"));
    const diff = await hostDriftProvider.diff!("pg3", read.props, props("pg3"));
    assert.equal(diff.changes, true);
    const clean = await hostDriftProvider.read!("lb1", props("lb1"));
    assert.deepEqual(clean.props!.drift, []);
    assert.equal((await hostDriftProvider.diff!("lb1", clean.props, props("lb1"))).changes, false);
  });

  it("a re-apply repairs all of it, and the cluster is clean again", async () => {
    const r = await apply(c, () => {});
    assert.equal(r.code, 0);
    assert.deepEqual(await drift(), { code: 0, steps: [] });
    await healthy(c);
  });

  it("Patroni's live settings follow the stack: a parameter added reaches every node; removed from the stack, it leaves the DCS and the nodes", async () => {
    const out = async (node: string, cmd: string) => {
      const r = await ssh(c.ssh, c.targets[node], cmd, "", 120_000);
      assert.equal(r.code, 0, `${node}: ${cmd}: ${r.out}`);
      return r.out.trim();
    };
    const nodes = c.hosts.filter((h) => h.roles.includes("postgres")).map((h) => h.name);
    const workMem = (node: string) => out(node, "cd / && runuser -u postgres -- psql -XAtqc 'show work_mem'");
    const dcs = () => out("pg1", "cd / && runuser -u postgres -- patronictl -c /etc/patroni/config.yml show-config");
    const everyNode = async (want: string) => {
      let seen: string[] = [];
      for (const deadline = Date.now() + 30_000; ; await new Promise((r) => setTimeout(r, 500))) {
        seen = await Promise.all(nodes.map(workMem));
        if (seen.every((v) => v === want)) return;
        if (Date.now() > deadline) assert.fail(`work_mem on ${nodes.join(", ")} after 30 s: ${seen.join(", ")} (want ${want} everywhere)`);
      }
    };
    // Only the patroni steps (they own the DCS and patroni.yml): four whole-plan runs took 4 minutes of CI.
    const patroniOnly = (cluster: LocalCluster): LocalCluster => onlyRole(cluster, "patroni");
    const dcsDrift = async (cluster: LocalCluster) =>
      (await apply(patroniOnly(cluster), () => {}, true)).outcomes.flatMap((o) => (o.result?.changed ?? []).filter((x) => x.startsWith("patroni-dcs:")).map((x) => `${o.step.id} ${x}`));
    assert.equal(await workMem("pg1"), "4MB", "the default before the test");

    const spec = loadSpec("local", { postgresql: { parameters: { ...c.spec.postgresql.parameters, work_mem: "8MB" } } });
    const withParam: LocalCluster = { ...c, spec, plan: compile(spec, c.hosts, c.pki, c.secrets) };
    assert.deepEqual(await dcsDrift(withParam), nodes.map((n) => `${n}/patroni patroni-dcs:postgresql.parameters.work_mem="8MB"`));
    assert.equal((await apply(patroniOnly(withParam), () => {})).code, 0);
    assert.match(await dcs(), /work_mem: 8MB/);
    await everyNode("8MB");

    // The stack without it again: removed from the DCS, every node back to the default.
    assert.deepEqual(await dcsDrift(c), nodes.map((n) => `${n}/patroni patroni-dcs:postgresql.parameters.work_mem="8MB" (removed)`));
    assert.equal((await apply(patroniOnly(c), () => {})).code, 0);
    assert.doesNotMatch(await dcs(), /work_mem/);
    await everyNode("4MB");
    assert.deepEqual(await dcsDrift(c), []);
  });
});
