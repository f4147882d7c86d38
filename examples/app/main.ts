// The example application, end to end: `source .pgcluster/local/env && npx tsx examples/app/main.ts`
// (or with the URLs of a Pulumi stack's outputs). Writes a note, reads it back on the primary,
// waits until a replica has it, then writes two notes in one transaction.
import { connect } from "./db";
import { addNote, addNotesAtomically, countBatch, ensureSchema, newNote, noteOnPrimary, noteOnReplica } from "./notes";
import { withRetry } from "./retry";

async function main(): Promise<void> {
  const d = connect();
  try {
    await ensureSchema(d);
    const batch = `demo-${Date.now()}`;
    const n = newNote("hello from the example app", batch);
    await withRetry(() => addNote(d, n), undefined, (a) => console.error(`retrying after: ${a.error}`));
    console.log("on the primary:", await noteOnPrimary(d, n.id));
    const start = Date.now();
    while (!(await noteOnReplica(d, n.id))) {
      if (Date.now() - start > 10_000) throw new Error("no replica had the note after 10 s");
      await new Promise((r) => setTimeout(r, 50));
    }
    console.log(`on a replica after ${Date.now() - start} ms`);
    await withRetry(() => addNotesAtomically(d, [newNote("one", batch), newNote("two", batch)]));
    console.log(`notes in ${batch}: ${await countBatch(d, batch)}`);
  } finally {
    await d.close();
  }
}

main().catch((e) => {
  console.error(`error: ${(e as Error).message}`);
  process.exit(1);
});
