// Secrets and certificate rotation on the real local cluster, under client load through :5000
// and :5001: existing pooled connections keep working, new ones use the new secret, the old
// secret is refused afterwards, no failover happens, new certificates are served.
import { strict as assert } from "assert";
import * as tls from "tls";
import * as https from "https";
import { Client } from "pg";
import { requireHosts, settledCluster } from "../support/hostsLayer";
import { BACKUP_PASSPHRASE } from "../../model/config";
import { EtcdWatch } from "../support/etcdWatch";
import { connectError, query } from "../support/pg";
import { loadCluster, patroniCluster, type LocalCluster } from "../../local/cluster";
import { apply } from "../../local/up";
import { healthy, leader } from "../../local/chaos";
import { sh } from "../../local/exec";
import { users } from "../../model/identities";

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
 * being rolled over does). It tries the old secret first, then the new: every node switches once,
 * from old to new, so on one node one of the two always works. (Tried the other way round, the
 * two attempts can straddle the switch: the new one refused just before it, the old one just
 * after; seen once in each of 3 rotations through :5000.) Through :5001 two replicas may replay
 * the change a few milliseconds apart, so after both fail the new secret is tried once more
 * (counted as `retried`, per port, with when and what was answered: for the client that was a
 * refusal).
 */
class RollingClients {
  readonly count = { next: 0, previous: 0, retried: 0, failed: 0 };
  readonly retriedOn: Record<number, number> = { 5000: 0, 5001: 0 };
  readonly retries: string[] = [];
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
          const withPrevious = await this.attempt(port, this.previous);
          if (withPrevious === undefined) { this.count.previous++; continue; }
          const withNext = await this.attempt(port, this.next);
          if (withNext === undefined) { this.count.next++; continue; }
          const refusedAt = new Date().toISOString().slice(11, 23);
          await new Promise((r) => setTimeout(r, 200));
          if ((await this.attempt(port, this.next)) === undefined) {
            this.count.retried++;
            this.retriedOn[port]++;
            if (this.retries.length < 5) this.retries.push(`:${port} ${refusedAt} old: ${withPrevious} / new: ${withNext}; the new one worked 200 ms later`);
            continue;
          }
          this.count.failed++;
          if (this.errors.length < 5) this.errors.push(`:${port} ${new Date().toISOString().slice(11, 23)} old: ${withPrevious} / new: ${withNext}`);
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

// Secrets are compared by name: an assertion diff must never print one.
type SecretMap = Record<string, string>;
function changedSecrets(before: SecretMap, after: SecretMap): string[] {
  return Object.keys({ ...before, ...after }).filter((k) => before[k] !== after[k]).sort();
}
function unchangedSecrets(before: SecretMap, after: SecretMap): string[] {
  return Object.keys({ ...before, ...after }).filter((k) => before[k] === after[k]).sort();
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
    c = await settledCluster("rotation");
    baseCa = c.spec.tls.caGenerations[0];
  });

  // Leave the hosts on the stack's own CA generation (a new key of that name), rotated back the
  // safe way: the next run's plain apply would otherwise be a one-step CA switch, which is refused.
  // Then the stack's own secrets and certificates again (an apply of the stack file as it is):
  // later suites, and whoever applies the stack next, find the hosts as the stack file says.
  after(async function () {
    this.timeout(8 * 60_000);
    const now = (applied.tls?.caGenerations as string[] | undefined) ?? [baseCa];
    const back = now.length === 1 && now[0] === baseCa ? [] : [...(now.includes(baseCa) ? [] : [[now[0], baseCa]]), [baseCa, now.find((g) => g !== baseCa)!], [baseCa]];
    for (const gens of back) {
      applied = { ...applied, tls: { ...applied.tls, caGenerations: gens } };
      const next = await loadCluster("local", applied);
      const r = await apply(next, () => {});
      // Loudly: the next run would otherwise start from a CA the stack file does not name.
      if (r.code !== 0) throw new Error(`could not rotate the CA back to ${baseCa} (at ${gens}): ${r.outcomes.filter((o) => o.outcome === "failed").map((o) => `${o.step.id}: ${o.tail?.join(" | ")}`).join("; ") || `exit ${r.code}`}`);
      Object.assign(c, next);
    }
    if (Object.keys(applied).length === 0) return;
    const own = await loadCluster("local");
    const r = await apply(own, () => {});
    if (r.code !== 0) throw new Error(`could not return to the stack's own secrets and certificates: ${r.outcomes.filter((o) => o.outcome === "failed").map((o) => `${o.step.id}: ${o.tail?.join(" | ")}`).join("; ") || `exit ${r.code}`}`);
    Object.assign(c, own);
    applied = {};
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
    console.log(`      new connections during the apply (old secret first, then new): ${rolling.count.previous} in with the old secret, ${rolling.count.next} with the new, ${rolling.count.retried} with the new on a second try (:5000 ${rolling.retriedOn[5000]}, :5001 ${rolling.retriedOn[5001]}), ${rolling.count.failed} not at all`);
    for (const e of [...rolling.errors, ...rolling.retries]) console.log(`        ${e}`);
    const windows = etcd.windows();
    console.log(`      etcd: ${etcd.samples} rounds (every ${etcd.intervalMs} ms, longest ${etcd.maxIntervalMs} ms apart): ${etcd.withoutMajority} without a healthy majority (${etcd.undetermined} of them undetermined), in ${windows.length} windows, the longest ${Math.max(0, ...windows.map((w) => w.ms))} ms`);
    for (const e of etcd.describe()) console.log(`        ${e}`);
    assert.equal(fresh.failed, 0, "new connections with the current secret failed");
    assert.ok(load.ok > 20, "the steady clients ran");
    assert.equal(load.failed, 0, "transactions on connections opened before the apply failed");
    assert.equal(rolling.count.failed, 0, "a client holding both secrets could not connect during the apply");
    // README: 0 refused connections. A client that needed a second try was refused once.
    assert.equal(rolling.count.retried, 0, "a client holding both secrets needed a second try with the new secret");
    assert.ok(etcd.samples > 5, "etcd was watched");
    assert.ok(etcd.maxIntervalMs <= etcd.windowLimitMs, `etcd watched every ${etcd.intervalMs} ms (longest ${etcd.maxIntervalMs} ms apart)`);
    const long = windows.filter((w) => w.rounds > 1).map((w) => `${w.rounds} rounds from ${new Date(w.from).toISOString().slice(11, 23)} (${w.ms} ms)`);
    assert.deepEqual(long, [], `etcd restarts one member at a time: never without a healthy majority for more than one round (under ${etcd.windowLimitMs} ms: a leader change)`);
    return { before, load, rolling, r };
  }

  it("rotates every password without a failover; new connections need the new secret, the old is refused, sessions opened with the old secret keep working", async () => {
    // Sessions already open keep working (as in PostgreSQL itself: a password is checked at
    // login); pgBouncer logs its server connections in with the password it is given, never
    // with keys replayed from an old-password login.
    const { before, rolling } = await rotate({ secrets: { rotation: `test-${Date.now()}` } });
    assert.ok(rolling.count.next > 0, "the new secret was accepted during the apply");
    assert.equal(await leader(c), before.leader, "no leader change");
    // All but the backup repository's cipher passphrase: the repository is encrypted with it, so
    // pgcluster never rotates it (a new one would make every backup unreadable).
    assert.deepEqual(unchangedSecrets(before.secrets, c.secrets), c.spec.backup.enabled ? [BACKUP_PASSPHRASE] : [], "every secret rotated");
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
    assert.deepEqual(changedSecrets(before.secrets, c.secrets), [], "a certificate rotation leaves the passwords alone");
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
    assert.deepEqual(changedSecrets(before.secrets, c.secrets), ["restApiPassword"], "only restApiPassword rotated");
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
