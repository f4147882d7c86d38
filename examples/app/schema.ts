// The example's one table. Ids are chosen by the client (a UUID), so a write retried after a
// lost acknowledgement (the connection dropped after COMMIT was sent) can never insert twice:
// the retry is an idempotent `insert ... on conflict do nothing`.
import { pgTable, text, timestamp, uuid } from "drizzle-orm/pg-core";

export const notes = pgTable("example_notes", {
  id: uuid("id").primaryKey(),
  body: text("body").notNull(),
  batch: text("batch").notNull(),
  createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
});

export const CREATE_NOTES = `create table if not exists example_notes (
  id uuid primary key,
  body text not null,
  batch text not null,
  created_at timestamptz not null default now()
)`;
