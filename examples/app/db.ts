// Two pools, as pgcluster's URLs are meant to be used: writes (and reads that must see them) on
// DATABASE_URL_PRIMARY, other reads on DATABASE_URL_REPLICA, behind drizzle's read-replica
// helper (`withReplicas`: select on a replica, insert/update/delete/transaction/execute on the
// primary, `db.$primary` to read on the primary). The URLs carry sslmode=verify-full and
// sslrootcert=<the cluster's CA file>; node-postgres reads that file itself.
import { Pool, type PoolConfig } from "pg";
import { drizzle, type NodePgDatabase } from "drizzle-orm/node-postgres";
import { withReplicas } from "drizzle-orm/pg-core";

export interface Database {
  db: ReturnType<typeof withReplicas<any, any, any, NodePgDatabase>>;
  primary: Pool;
  replica: Pool;
  close(): Promise<void>;
}

/** The URL in `name`, or a clear error (never the value: it holds the password). */
function url(env: NodeJS.ProcessEnv, name: string): string {
  const v = env[name];
  if (!v) throw new Error(`${name} is not set (pgcluster prints it: npm run status, or pulumi stack output --show-secrets ${name})`);
  if (!/^postgres(ql)?:\/\//.test(v)) throw new Error(`${name} is not a postgresql:// URL`);
  return v;
}

export function pool(connectionString: string, extra: PoolConfig = {}): Pool {
  const p = new Pool({
    connectionString,
    max: 10,
    // Fail fast and retry (retry.ts) rather than hang while the writer port has no primary.
    connectionTimeoutMillis: 3_000,
    query_timeout: 10_000,
    idleTimeoutMillis: 30_000,
    ...extra,
  });
  // An idle client whose server went away (switchover, failover) emits 'error' on the pool;
  // unhandled, that would end the process. The pool drops that client; the next query gets a new one.
  p.on("error", () => {});
  return p;
}

/** Pools and the drizzle database from DATABASE_URL_PRIMARY / DATABASE_URL_REPLICA. */
export function connect(env: NodeJS.ProcessEnv = process.env, extra: PoolConfig = {}): Database {
  const primary = pool(url(env, "DATABASE_URL_PRIMARY"), extra);
  const replica = pool(url(env, "DATABASE_URL_REPLICA"), extra);
  const db = withReplicas(drizzle(primary), [drizzle(replica)]);
  return { db, primary, replica, close: async () => { await Promise.all([primary.end(), replica.end()]); } };
}
