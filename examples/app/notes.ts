// What the example application does with its data, written once for the demo (main.ts) and the
// hosts tests: every write is idempotent (client-chosen id, on conflict do nothing), so the
// retry policy (retry.ts) may run it again after an unknown outcome.
import { randomUUID } from "crypto";
import { and, count, eq, sql } from "drizzle-orm";
import type { Database } from "./db";
import { CREATE_NOTES, notes } from "./schema";
import { withRetry, type RetryPolicy, RECOMMENDED_POLICY } from "./retry";

export async function ensureSchema(d: Database, policy: RetryPolicy = RECOMMENDED_POLICY): Promise<void> {
  await withRetry(() => d.db.execute(sql.raw(CREATE_NOTES)), policy);
}

export interface Note { id: string; body: string; batch: string }

export function newNote(body: string, batch: string): Note {
  return { id: randomUUID(), body, batch };
}

/** Writes a note on the primary; safe to run again (the id decides). */
export async function addNote(d: Database, n: Note): Promise<void> {
  await d.db.insert(notes).values(n).onConflictDoNothing({ target: notes.id });
}

/** Reads a note on the primary: read-your-write. */
export async function noteOnPrimary(d: Database, id: string): Promise<Note | undefined> {
  const [r] = await d.db.$primary.select({ id: notes.id, body: notes.body, batch: notes.batch }).from(notes).where(eq(notes.id, id));
  return r;
}

/** Reads a note on a replica (drizzle's withReplicas: select goes to the replica pool). */
export async function noteOnReplica(d: Database, id: string): Promise<Note | undefined> {
  const [r] = await d.db.select({ id: notes.id, body: notes.body, batch: notes.batch }).from(notes).where(eq(notes.id, id));
  return r;
}

/** Several statements, one transaction (all on the primary): all of them, or none. */
export async function addNotesAtomically(d: Database, ns: Note[], failAfter?: number): Promise<void> {
  await d.db.transaction(async (tx) => {
    for (const [i, n] of ns.entries()) {
      if (failAfter !== undefined && i === failAfter) throw new Error("rolled back on purpose");
      await tx.insert(notes).values(n).onConflictDoNothing({ target: notes.id });
    }
  });
}

export async function countBatch(d: Database, batch: string, on: "primary" | "replica" = "primary"): Promise<number> {
  const q = on === "primary" ? d.db.$primary : d.db;
  const [r] = await q.select({ n: count() }).from(notes).where(and(eq(notes.batch, batch)));
  return Number(r.n);
}
