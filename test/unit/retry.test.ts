// The example application's retry policy (examples/app/retry.ts): what it retries, what it does not,
// and that it gives up at its deadline with the last error.
import { strict as assert } from "assert";
import { isTransient, withRetry, RetryLedger } from "../../examples/app/retry";

const err = (message: string, code?: string) => Object.assign(new Error(message), code ? { code } : {});
const fast = { deadlineMs: 300, initialDelayMs: 5, maxDelayMs: 20 };

describe("example application: retry policy", () => {
  it("retries what means the session or server went away, and nothing else", () => {
    for (const e of [err("terminating connection due to administrator command", "57P01"), err("x", "08006"), err("x", "57P03"),
      err("cannot execute INSERT in a read-only transaction", "25006"), err("x", "40001"), err("x", "40P01"),
      err("read ECONNRESET", "ECONNRESET"), err("connect ECONNREFUSED 10.213.0.10:5000", "ECONNREFUSED"),
      err("Connection terminated unexpectedly"), err("timeout exceeded when trying to connect"), err("Query read timeout"),
      // drizzle-orm wraps the driver's error: the SQLSTATE is on the cause.
      Object.assign(new Error('Failed query: insert into "example_notes" ...'), { cause: err("terminating connection due to administrator command", "57P01") })])
      assert.equal(isTransient(e), true, `${(e as { code?: string }).code} ${e.message}`);
    for (const e of [err("duplicate key value violates unique constraint", "23505"), err("syntax error at or near", "42601"),
      err('prepared statement "one" already exists', "42P05"), err("permission denied", "42501"), "not an error",
      Object.assign(new Error("Failed query: insert ..."), { cause: err("duplicate key value", "23505") })])
      assert.equal(isTransient(e), false, String(e));
  });

  it("withRetry: a transient failure is retried until success; each failed attempt is reported", async () => {
    let n = 0;
    const seen: string[] = [];
    const v = await withRetry(async () => { if (++n < 3) throw err("x", "08006"); return "ok"; }, fast, (a) => seen.push(a.code!));
    assert.equal(v, "ok");
    assert.deepEqual(seen, ["08006", "08006"]);
  });

  it("withRetry: a non-transient error is thrown at once; a transient one at the deadline, as the last error", async () => {
    let n = 0;
    await assert.rejects(withRetry(async () => { n++; throw err("dup", "23505"); }, fast), /dup/);
    assert.equal(n, 1);
    const t0 = Date.now();
    await assert.rejects(withRetry(async () => { throw err("gone", "57P01"); }, fast), /gone/);
    assert.ok(Date.now() - t0 <= fast.deadlineMs + 100, `gave up in ${Date.now() - t0} ms`);
  });

  it("RetryLedger counts operations that needed a retry and those that failed after retrying", async () => {
    const l = new RetryLedger();
    let n = 0;
    await l.run(async () => 1);
    await l.run(async () => { if (++n < 2) throw err("x", "08006"); return 2; }, fast);
    assert.equal(await l.run(async () => { throw err("dup", "23505"); }, fast), undefined);
    assert.deepEqual([l.reports.length, l.retried, l.failed, l.failedAttempts], [3, 1, 1, 2]);
  });
});
