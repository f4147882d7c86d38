// The retry policy pgcluster recommends for applications (README "Connecting applications").
// A switchover or failover ends every session on the old primary and, for a few seconds, the
// writer port has no primary to send new connections to; a retry that waits a little, with a
// deadline longer than a failover, rides through it. Only errors that mean "the session or the
// server went away, try again" are retried: a constraint violation or a syntax error is not.
//
// Retrying is only safe for idempotent operations: when a connection drops after COMMIT was sent,
// the client cannot know whether it committed. Make writes idempotent (client-chosen keys and
// `on conflict do nothing`, or a check inside the transaction) and retry the whole transaction.

export interface RetryPolicy {
  /** Give up after this long (ms). Above a failover (ttl 10 s + promotion): 30 s. */
  deadlineMs: number;
  /** First wait (ms), doubled after each failure up to maxDelayMs, with jitter. */
  initialDelayMs: number;
  maxDelayMs: number;
}

export const RECOMMENDED_POLICY: RetryPolicy = { deadlineMs: 30_000, initialDelayMs: 100, maxDelayMs: 2_000 };

/** What a retried operation went through: every failed attempt, and whether it finally succeeded. */
export interface Attempt { at: number; error: string; code?: string }
export interface RetryReport { attempts: number; failures: Attempt[]; ok: boolean }

// SQLSTATEs that mean: this session (or this server's role) is gone, the same work may succeed on a
// new connection. 08: connection exceptions; 57P01-57P03: admin/crash shutdown, cannot connect
// now (a starting or stopping server); 25006: read-only transaction (a demoted primary still
// reached through an old connection); 40001/40P01: serialization failure, deadlock.
const RETRY_SQLSTATES = /^(08...|57P01|57P02|57P03|25006|40001|40P01)$/;
// Errors without a SQLSTATE: the socket, not the server, said no.
const RETRY_NODE_CODES = new Set(["ECONNRESET", "ECONNREFUSED", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "ECONNABORTED"]);
// pgBouncer and node-postgres messages for the same (pgBouncer reports some with SQLSTATE 08P01,
// node-postgres some with no code at all).
const RETRY_MESSAGES = /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|server conn crashed|server closed the connection unexpectedly|no more connections allowed|pgbouncer cannot connect to server|terminating connection|the database system is (starting up|shutting down|in recovery mode)|Query read timeout/i;

/**
 * Whether `e` is worth retrying on a new connection. Looks through `cause`: drizzle-orm (0.45)
 * wraps the driver's error in its own ("Failed query: …"), with the pg error, and its SQLSTATE,
 * as the cause.
 */
export function isTransient(e: unknown): boolean {
  for (let x: unknown = e, depth = 0; x instanceof Error && depth < 5; x = (x as { cause?: unknown }).cause, depth++) {
    const code = (x as { code?: unknown }).code;
    if (typeof code === "string" && (RETRY_SQLSTATES.test(code) || RETRY_NODE_CODES.has(code))) return true;
    if (RETRY_MESSAGES.test(x.message)) return true;
  }
  return false;
}

/** The innermost error's message and code (drizzle's wrapper says only which query failed). */
export function rootCause(e: unknown): { message: string; code?: string } {
  let x: unknown = e;
  for (let depth = 0; x instanceof Error && (x as { cause?: unknown }).cause instanceof Error && depth < 5; depth++) x = (x as { cause?: unknown }).cause;
  return x instanceof Error ? { message: x.message, code: (x as { code?: string }).code } : { message: String(x) };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Runs `op` until it succeeds, retrying transient errors with exponential backoff until the
 * deadline. Throws the last error when it gives up (a non-transient one at once). `onRetry`
 * sees every failed attempt (log it: "failed operations" are part of what a switchover costs).
 */
export async function withRetry<T>(op: () => Promise<T>, policy: RetryPolicy = RECOMMENDED_POLICY, onRetry?: (a: Attempt) => void): Promise<T> {
  const end = Date.now() + policy.deadlineMs;
  let delay = policy.initialDelayMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await op();
    } catch (e) {
      if (!isTransient(e) || Date.now() + delay > end) throw e;
      const root = rootCause(e);
      onRetry?.({ at: Date.now(), error: root.message, code: root.code });
      // Full jitter: clients that lost their sessions together do not come back together.
      await sleep(delay / 2 + Math.random() * (delay / 2));
      delay = Math.min(policy.maxDelayMs, delay * 2);
    }
  }
}

/** Runs many operations through withRetry and reports each: what a test or a batch job asserts on. */
export class RetryLedger {
  readonly reports: RetryReport[] = [];

  async run<T>(op: () => Promise<T>, policy: RetryPolicy = RECOMMENDED_POLICY): Promise<T | undefined> {
    const failures: Attempt[] = [];
    try {
      const v = await withRetry(op, policy, (a) => failures.push(a));
      this.reports.push({ attempts: failures.length + 1, failures, ok: true });
      return v;
    } catch (e) {
      const root = rootCause(e);
      failures.push({ at: Date.now(), error: root.message, code: root.code });
      this.reports.push({ attempts: failures.length, failures, ok: false });
      return undefined;
    }
  }

  /** Operations that failed even after retrying. */
  get failed(): number { return this.reports.filter((r) => !r.ok).length; }
  /** Operations that needed at least one retry. */
  get retried(): number { return this.reports.filter((r) => r.ok && r.attempts > 1).length; }
  /** Failed attempts in all (each retried one counts). */
  get failedAttempts(): number { return this.reports.reduce((n, r) => n + r.failures.length, 0); }
}
