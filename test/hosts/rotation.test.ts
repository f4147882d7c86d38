// Secrets and certificate rotation on the real local cluster, under client load through :5000
// and :5001: existing pooled connections keep working, new ones use the new secret, the old
// secret is refused afterwards, no failover happens, new certificates are served.
import { strict as assert } from "assert";
import * as tls from "tls";
import { Client } from "pg";
import { requireHosts, localCluster } from "../support/hostsLayer";
import { connectError, query } from "../support/pg";
import { loadCluster, patroniCluster, type LocalCluster } from "../../local/cluster";
import { apply } from "../../local/up";
import { healthy, leader } from "../../local/chaos";
import { sh } from "../../local/exec";

const LB = "10.213.0.10";

/** Clients that keep one connection each and run a transaction every 50 ms. */
class SteadyClients {
  ok = 0;
  failed = 0;
  readonly errors: string[] = [];
  private stop = false;
  private loops: Promise<void>[] = [];
  constructor(private readonly password: string, private readonly ca: string) {}
  async start(): Promise<this> {
    for (const port of [5000, 5001]) {
      const cl = new Client({ host: LB, port, user: "app", password: this.password, database: "app", ssl: { ca: this.ca }, query_timeout: 5000 });
      cl.on("error", () => {});
      await cl.connect();
      this.loops.push((async () => {
        while (!this.stop) {
          try { await cl.query(port === 5000 ? "select txid_current()" : "select 1"); this.ok++; } catch (e) {
            this.failed++;
            if (this.errors.length < 5) this.errors.push(`:${port} ${new Date().toISOString().slice(11, 23)} ${(e as Error).message}`);
          }
          await new Promise((r) => setTimeout(r, 50));
        }
        await cl.end().catch(() => {});
      })());
    }
    return this;
  }
  async finish(): Promise<void> { this.stop = true; await Promise.all(this.loops); }
}

/** New connections with the given password, one per transaction, for `ms`: failures counted. */
async function freshClients(c: LocalCluster, password: string, ms: number): Promise<{ ok: number; failed: number }> {
  let ok = 0, failed = 0;
  const end = Date.now() + ms;
  while (Date.now() < end) {
    for (const port of [5000, 5001]) {
      (await connectError(c, { host: LB, port, password })) === undefined ? ok++ : failed++;
    }
  }
  return { ok, failed };
}

function served(host: string, port: number, ca: string): Promise<{ serial: string; issuer: string }> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host, port, ca, timeout: 3000 }, () => {
      const c = s.getPeerCertificate();
      resolve({ serial: c.serialNumber, issuer: String(c.issuer.CN) });
      s.end();
    });
    s.on("error", reject);
  });
}

/** Serial of the certificate PostgreSQL/pgBouncer present after STARTTLS. */
function pgServed(host: string, port: number): string {
  const r = sh("bash", ["-c", `openssl s_client -starttls postgres -connect ${host}:${port} </dev/null 2>/dev/null | openssl x509 -noout -serial`], { allowFail: true });
  return r.stdout.trim().replace(/^serial=/, "").toUpperCase();
}

describe("hosts layer: rotation", function () {
  this.timeout(20 * 60_000);
  let c: LocalCluster;

  before(async function () {
    requireHosts(this);
    c = await localCluster();
    await healthy(c);
  });

  /** Re-load the cluster with config overrides, apply under load, and make it the suite's cluster. */
  async function rotate(overrides: Record<string, unknown>) {
    const before = { secrets: { ...c.secrets }, leader: await leader(c) };
    const load = await new SteadyClients(c.secrets.appPassword, c.pki.caBundle).start();
    const next = await loadCluster("local", overrides);
    const r = await apply(next, () => {});
    await new Promise((res) => setTimeout(res, 2000));
    await load.finish();
    assert.equal(r.code, 0, `apply failed: ${r.outcomes.filter((o) => o.outcome === "failed").map((o) => `${o.step.id}: ${o.tail?.join(" | ")}`).join("\n")}`);
    Object.assign(c, next); // later tests use the rotated secrets
    // Clients on the (new) current secret: every new connection and transaction works.
    const fresh = await freshClients(c, c.secrets.appPassword, 3000);
    console.log(`      new connections with the current secret after the apply: ${fresh.ok} ok, ${fresh.failed} failed`);
    assert.equal(fresh.failed, 0, "new connections with the current secret failed");
    const members = await healthy(c);
    console.log(`      existing connections: ${load.ok} ok, ${load.failed} failed; leader ${before.leader} -> ${members.find((m) => m.role === "leader")!.name}`);
    for (const e of load.errors) console.log(`        ${e}`);
    return { before, load, r };
  }

  it("rotates every password without a failover; new connections need the new secret, the old is refused, old-secret clients are counted", async () => {
    // Connections opened with the old secret stall once pgBouncer reloads (it logs server
    // connections in with the old SCRAM keys): reported, not hidden; bounded by the short window.
    const { before, load } = await rotate({ secrets: { rotation: `test-${Date.now()}` } });
    assert.ok(load.ok > 20);
    assert.ok(load.failed <= 5, `${load.failed} transactions on old-secret connections failed`);
    assert.equal(await leader(c), before.leader, "no leader change");
    for (const k of Object.keys(before.secrets) as (keyof typeof before.secrets)[]) assert.notEqual(c.secrets[k], before.secrets[k], k);
    // new secret works through both pooled ports and direct; the old one is refused
    assert.deepEqual(await query(c, { host: LB, port: 5000 }, "select 1 as x"), [{ x: 1 }]);
    assert.deepEqual(await query(c, { host: LB, port: 5001 }, "select 1 as x"), [{ x: 1 }]);
    assert.match((await connectError(c, { host: LB, port: 5000, password: before.secrets.appPassword }))!, /authentication failed/);
    assert.match((await connectError(c, { host: LB, port: 5002, user: "postgres", password: before.secrets.superuserPassword, database: "postgres" }))!, /authentication failed/);
    assert.deepEqual(await query(c, { host: LB, port: 5002, user: "postgres", password: c.secrets.superuserPassword, database: "postgres" }, "select 1 as x"), [{ x: 1 }]);
    // replication (by certificate) unaffected
    const repl = await query(c, { host: LB, port: 5002, user: "postgres", password: c.secrets.superuserPassword, database: "postgres" }, "select state from pg_stat_replication");
    assert.deepEqual(repl.map((x) => x.state), ["streaming", "streaming"]);
  });

  it("re-issues every node certificate (tls.rotation): new serials on every TLS port, no failover", async () => {
    const node = c.hosts.find((h) => h.name === "pg1")!.address;
    const old = { rest: await served(node, 8008, c.pki.caBundle), pg: pgServed(node, 5432), bouncer: pgServed(node, 6432) };
    const { before, load } = await rotate({ tls: { rotation: `test-${Date.now()}` } });
    assert.ok(load.failed <= 5, `${load.failed} transactions on existing connections failed`);
    assert.equal(await leader(c), before.leader, "no leader change");
    const want = new (require("crypto").X509Certificate)(c.pki.nodes.pg1.cert).serialNumber.toUpperCase();
    // Patroni applies a SIGHUP in its next loop (up to loop_wait later): allow a few seconds.
    let now = { rest: await served(node, 8008, c.pki.caBundle), pg: pgServed(node, 5432), bouncer: pgServed(node, 6432) };
    for (let i = 0; i < 20 && now.rest.serial.toUpperCase() !== want; i++) {
      await new Promise((r) => setTimeout(r, 500));
      now = { ...now, rest: await served(node, 8008, c.pki.caBundle) };
    }
    assert.notEqual(now.rest.serial, old.rest.serial);
    assert.equal(now.rest.serial.toUpperCase(), want, "Patroni REST serves the new certificate");
    assert.equal(now.pg, want, "PostgreSQL serves the new certificate");
    assert.equal(now.bouncer, want, "pgBouncer serves the new certificate");
    for (const port of [2379, 2380]) {
      let etcd = await served(node, port, c.pki.caBundle);
      for (let i = 0; i < 20 && etcd.serial.toUpperCase() !== want; i++) {
        await new Promise((r) => setTimeout(r, 500)); // etcd restarts without blocking the step
        etcd = await served(node, port, c.pki.caBundle);
      }
      assert.equal(etcd.serial.toUpperCase(), want, `etcd :${port} serves the new certificate`);
    }
    assert.ok(old.pg && old.pg !== want);
  });

  it("rotates the CA in three applies ([1] -> [1,2] -> [2,1] -> [2]) with the cluster up throughout", async () => {
    const start = await leader(c);
    const phases: string[][] = [["1", "2"], ["2", "1"], ["2"]];
    for (const gens of phases) {
      const { load } = await rotate({ tls: { caGenerations: gens } });
      assert.equal(load.failed, 0, `phase ${gens}: transactions on existing connections failed`);
      const members = await patroniCluster(c);
      assert.equal(members.filter((m) => m.role === "leader").length, 1);
    }
    assert.equal(await leader(c), start, "no failover during the CA rotation");
    const issuer = (await served("10.213.0.12", 8008, c.pki.caBundle)).issuer;
    assert.match(issuer, /cluster CA 2$/);
    // A client that trusts only the new CA connects (query() verifies against the signing CA).
    assert.equal(await connectError(c, { host: LB, port: 5000 }), undefined);
  });
});
