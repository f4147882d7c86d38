// PostgreSQL connections from this machine to the local cluster, TLS verified against its CA.
import { Client } from "pg";
import type { LocalCluster } from "../../local/cluster";

export interface Conn { host: string; port: number; user?: string; password?: string; database?: string; ssl?: boolean }

export async function query<T = any>(c: LocalCluster, conn: Conn, sql: string, params: unknown[] = []): Promise<T[]> {
  const client = new Client({
    host: conn.host,
    port: conn.port,
    user: conn.user ?? c.spec.postgresql.appUser,
    password: conn.password ?? c.secrets.appPassword,
    database: conn.database ?? c.spec.postgresql.database,
    ssl: conn.ssl === false ? false : { ca: c.pki.ca, rejectUnauthorized: true },
    connectionTimeoutMillis: 5000,
    query_timeout: 10000,
  });
  client.on("error", () => {}); // a dropped connection fails the query below; no unhandled event
  await client.connect();
  try {
    return (await client.query(sql, params)).rows as T[];
  } finally {
    await client.end().catch(() => {});
  }
}

/** The error a connection attempt ends with (undefined when it succeeds). */
export async function connectError(c: LocalCluster, conn: Conn): Promise<string | undefined> {
  try {
    await query(c, conn, "select 1");
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}
