// Secrets and certificate rotation on the real local cluster, under client load through :5000
// and :5001: existing pooled connections keep working, new ones use the new secret, the old
// secret is refused afterwards, no failover happens, new certificates are served.
import { strict as assert } from "assert";
import * as tls from "tls";
import * as https from "https";
import { Client } from "pg";
import { requireHosts, localCluster } from "../support/hostsLayer";
import { connectError, query } from "../support/pg";
import { loadCluster, patroniCluster, type LocalCluster } from "../../local/cluster";
import { apply } from "../../local/up";
import { healthy, leader } from "../../local/chaos";
import { sh } from "../../local/exec";
import { users } from "../../roles/paths";

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

/**
 * New connections during the apply from a client that holds both secrets (as an application
 * being rolled over does): it tries the new one first and falls back to the old. Counts which
 * secret got in, and the attempts where neither did. While replicas replay the change, :5001's
 * round robin may meet one that has it and one that has not yet, so after both fail the new
 * secret is tried once more (counted as `retried`).
 */
class RollingClients {
  readonly count = { next: 0, previous: 0, retried: 0, failed: 0 };
  readonly errors: string[] = [];
  private stop = false;
  private loop?: Promise<void>;
  constructor(private readonly previous: string, private readonly next: string, private readonly ca: string) {}
  private async attempt(port: number, password: string): Promise<string | undefined> {
    const cl = new Client({ host: LB, port, user: "app", password, database: "app", ssl: { ca: this.ca }, connectionTimeoutMillis: 5000, query_timeout: 5000 });
    cl.on("error", () => {});
    try { await cl.connect(); await cl.query("select 1"); return undefined; } catch (e) { return (e as Error).message; } finally { await cl.end().catch(() => {}); }
  }
  start(): this {
    this.loop = (async () => {
      while (!this.stop) {
        for (const port of [5000, 5001]) {
          const withNext = await this.attempt(port, this.next);
          if (withNext === undefined) { this.count.next++; continue; }
          const withPrevious = await this.attempt(port, this.previous);
          if (withPrevious === undefined) { this.count.previous++; continue; }
          await new Promise((r) => setTimeout(r, 200));
          if ((await this.attempt(port, this.next)) === undefined) { this.count.retried++; continue; }
          this.count.failed++;
          if (this.errors.length < 5) this.errors.push(`:${port} ${new Date().toISOString().slice(11, 23)} ${withNext} / ${withPrevious}`);
        }
      }
    })();
    return this;
  }
  async finish(): Promise<void> { this.stop = true; await this.loop; }
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

/**
 * Polls every etcd member's /health (with a client certificate) during an apply: the samples in
 * which fewer than a majority answered healthy are moments the DCS had no quorum.
 */
class EtcdWatch {
  samples = 0;
  withoutQuorum = 0;
  private stop = false;
  private loop?: Promise<void>;
  constructor(private readonly members: string[], private readonly tlsOpts: { ca: string; cert: string; key: string }) {}
  private healthy(host: string): Promise<boolean> {
    return new Promise((resolve) => {
      const req = https.get({ host, port: 2379, path: "/health", ...this.tlsOpts, timeout: 1000 }, (res) => {
        let text = "";
        res.on("data", (d) => (text += d));
        res.on("end", () => resolve(res.statusCode === 200 && /"health":\s*"true"/.test(text)));
      });
      req.on("timeout", () => req.destroy());
      req.on("error", () => resolve(false));
    });
  }
  start(): this {
    this.loop = (async () => {
      while (!this.stop) {
        const up = (await Promise.all(this.members.map((m) => this.healthy(m)))).filter(Boolean).length;
        this.samples++;
        if (up <= this.members.length / 2) this.withoutQuorum++;
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    return this;
  }
  async finish(): Promise<void> { this.stop = true; await this.loop; }
}

/** Status and body of a request to Patroni's REST API (auth: user:password, or none). */
function rest(host: string, ca: string, method: string, body?: string, auth?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host, port: 8008, path: "/config", method, ca, auth, headers: { "Content-Type": "application/json" }, timeout: 5000 }, (res) => {
      let text = "";
      res.on("data", (d) => (text += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** Status of a PATCH /config that sets ttl to what it is (a change of nothing that needs the REST credentials). */
async function restPatch(host: string, ca: string, auth: string): Promise<number> {
  const { ttl } = JSON.parse((await rest(host, ca, "GET")).body);
  return (await rest(host, ca, "PATCH", JSON.stringify({ ttl }), auth)).status;
}

/** Serial of the certificate PostgreSQL/pgBouncer present after STARTTLS. */
function pgServed(host: string, port: number): string {
  const r = sh("bash", ["-c", `openssl s_client -starttls postgres -connect ${host}:${port} </dev/null 2>/dev/null | openssl x509 -noout -serial`], { allowFail: true });
  return r.stdout.trim().replace(/^serial=/, "").toUpperCase();
}

describe("hosts layer: rotation", function () {
  this.timeout(20 * 60_000);
  let c: LocalCluster;
  let baseCa = "1";
  let applied: Record<string, Record<string, unknown>> = {}; // config changes so far, cumulative

  before(async function () {
    requireHosts(this);
    c = await localCluster();
    baseCa = c.spec.tls.caGenerations[0];
    await healthy(c);
  });

  // Leave the hosts on the stack's own CA generation (a new key of that name), rotated back the
  // safe way: the next run's plain apply would otherwise be a one-step CA switch, which is refused.
  after(async function () {
    this.timeout(5 * 60_000);
    const now = (applied.tls?.caGenerations as string[] | undefined) ?? [baseCa];
    if (now.length === 1 && now[0] === baseCa) return;
    const back = [...(now.includes(baseCa) ? [] : [[now[0], baseCa]]), [baseCa, now.find((g) => g !== baseCa)!], [baseCa]];
    for (const gens of back) {
      applied = { ...applied, tls: { ...applied.tls, caGenerations: gens } };
      const next = await loadCluster("local", applied);
      const r = await apply(next, () => {});
      if (r.code !== 0) { console.log(`      could not rotate the CA back to ${baseCa} (at ${gens}): exit ${r.code}`); return; }
      Object.assign(c, next);
    }
  });

  /**
   * Re-load the cluster with config overrides and apply it under load: connections opened
   * before with the old secret keep running transactions, and new connections keep being
   * opened throughout. Then make it the suite's cluster.
   */
  async function rotate(overrides: Record<string, Record<string, unknown>>) {
    const before = { secrets: { ...c.secrets }, leader: await leader(c) };
    for (const [k, v] of Object.entries(overrides)) applied = { ...applied, [k]: { ...applied[k], ...v } };
    const next = await loadCluster("local", applied);
    const trust = c.pki.caBundle + next.pki.caBundle; // a client that trusts old and new CAs
    const load = await new SteadyClients(c.secrets.appPassword, trust).start();
    const rolling = new RollingClients(c.secrets.appPassword, next.secrets.appPassword, trust).start();
    const etcd = new EtcdWatch(c.hosts.filter((h) => h.roles.includes("etcd")).map((h) => h.address), { ca: trust, ...next.pki.nodes.pg1 }).start();
    const r = await apply(next, () => {});
    await new Promise((res) => setTimeout(res, 2000));
    await Promise.all([load.finish(), rolling.finish(), etcd.finish()]);
    assert.equal(r.code, 0, `apply failed: ${r.outcomes.filter((o) => o.outcome === "failed").map((o) => `${o.step.id}: ${o.tail?.join(" | ")}`).join("\n")}`);
    Object.assign(c, next); // later tests use the rotated secrets
    // Clients on the (new) current secret: every new connection and transaction works.
    const fresh = await freshClients(c, c.secrets.appPassword, 3000);
    console.log(`      new connections with the current secret after the apply: ${fresh.ok} ok, ${fresh.failed} failed`);
    const members = await healthy(c);
    console.log(`      connections opened before the apply (old secret): ${load.ok} transactions ok, ${load.failed} failed; leader ${before.leader} -> ${members.find((m) => m.role === "leader")!.name}`);
    for (const e of load.errors) console.log(`        ${e}`);
    console.log(`      new connections during the apply: ${rolling.count.next} in with the new secret, ${rolling.count.previous} with the old, ${rolling.count.retried} with the new on a second try, ${rolling.count.failed} not at all`);
    for (const e of rolling.errors) console.log(`        ${e}`);
    console.log(`      etcd: ${etcd.withoutQuorum} of ${etcd.samples} samples without quorum`);
    assert.equal(fresh.failed, 0, "new connections with the current secret failed");
    assert.ok(load.ok > 20, "the steady clients ran");
    assert.equal(load.failed, 0, "transactions on connections opened before the apply failed");
    assert.equal(rolling.count.failed, 0, "a client holding both secrets could not connect during the apply");
    assert.ok(etcd.samples > 5, "etcd was watched");
    assert.equal(etcd.withoutQuorum, 0, "etcd restarts one member at a time: never without quorum");
    return { before, load, rolling, r };
  }

  it("rotates every password without a failover; new connections need the new secret, the old is refused, sessions opened with the old secret keep working", async () => {
    // Sessions already open keep working (as in PostgreSQL itself: a password is checked at
    // login); pgBouncer logs its server connections in with the password it is given, never
    // with keys replayed from an old-password login.
    const { before, rolling } = await rotate({ secrets: { rotation: `test-${Date.now()}` } });
    assert.ok(rolling.count.next > 0, "the new secret was accepted during the apply");
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
    const { before } = await rotate({ tls: { rotation: `test-${Date.now()}` } });
    assert.equal(await leader(c), before.leader, "no leader change");
    assert.deepEqual(c.secrets, before.secrets, "a certificate rotation leaves the passwords alone");
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
    // pgBouncer's server connections log in with its new client certificate
    const pooler = BigInt("0x" + new (require("crypto").X509Certificate)(c.pki.pooler.cert).serialNumber).toString();
    await query(c, { host: LB, port: 5000 }, "select 1"); // one pooled server connection at least
    const sessions = await query(c, { host: LB, port: 5002, user: "postgres", password: c.secrets.superuserPassword, database: "postgres" },
      "select s.client_serial::text as serial from pg_stat_ssl s join pg_stat_activity a using (pid) where a.usename = 'app' and a.client_addr = '127.0.0.1'");
    assert.ok(sessions.length > 0, "pooled server connections on the primary");
    assert.deepEqual([...new Set(sessions.map((x) => x.serial))], [pooler], "every pooled server connection uses the new pooler certificate");
  });

  it("rotates one secret alone (secrets.rotate.restApiPassword): the others stay, Patroni's REST API takes only the new one", async () => {
    const { before } = await rotate({ secrets: { rotate: { restApiPassword: `test-${Date.now()}` } } });
    for (const k of Object.keys(before.secrets) as (keyof typeof before.secrets)[]) {
      if (k === "restApiPassword") assert.notEqual(c.secrets[k], before.secrets[k], k);
      else assert.equal(c.secrets[k], before.secrets[k], `${k} unchanged`);
    }
    const leaderAddress = c.hosts.find((h) => h.name === before.leader)!.address;
    assert.equal(await restPatch(leaderAddress, c.pki.caBundle, `${users.restApi}:${c.secrets.restApiPassword}`), 200);
    assert.equal(await restPatch(leaderAddress, c.pki.caBundle, `${users.restApi}:${before.secrets.restApiPassword}`), 401);
  });

  it("rotates the CA in three applies ([1] -> [1,2] -> [2,1] -> [2]) with the cluster up throughout", async () => {
    const start = await leader(c);
    const phases: string[][] = [["1", "2"], ["2", "1"], ["2"]];
    for (const gens of phases) {
      await rotate({ tls: { caGenerations: gens } });
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
