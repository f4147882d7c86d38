import { Client } from "pg";
import { loadCluster } from "../local/cluster";
import { apply } from "../local/up";
const LB = "10.213.0.10";
const kind = process.argv[2] ?? "secrets";
(async () => {
  const c = await loadCluster("local", {});
  let stop = false;
  const t0 = Date.now();
  const ts = () => ((Date.now() - t0) / 1000).toFixed(2);
  // event loop lag
  let last = Date.now();
  const lagT = setInterval(() => { const d = Date.now() - last - 100; if (d > 300) console.log(`${ts()} loop lag ${d} ms`); last = Date.now(); }, 100);
  const loops: Promise<void>[] = [];
  for (const port of [5000, 5001]) {
    const cl = new Client({ host: LB, port, user: "app", password: c.secrets.appPassword, database: "app", ssl: { ca: c.pki.caBundle }, query_timeout: 5000 });
    cl.on("error", (e) => console.log(`${ts()} :${port} client error ${e.message}`));
    await cl.connect();
    loops.push((async () => {
      while (!stop) {
        const s = Date.now();
        try { const r = await cl.query("select inet_server_addr()::text a, pg_backend_pid() p"); const d = Date.now() - s; if (d > 500) console.log(`${ts()} :${port} slow ${d} ms ${r.rows[0].a} ${r.rows[0].p}`); }
        catch (e) { console.log(`${ts()} :${port} FAIL after ${Date.now() - s} ms ${(e as Error).message}`); }
        await new Promise((r) => setTimeout(r, 50));
      }
      await cl.end().catch(() => {});
    })());
  }
  const over = kind === "secrets" ? { secrets: { rotation: `diag-${Date.now()}` } } : { tls: { rotation: `diag-${Date.now()}` } };
  const next = await loadCluster("local", over);
  console.log(`${ts()} apply start`);
  const r = await apply(next, (l: string) => console.log(`${ts()} ${l}`));
  console.log(`${ts()} apply done code ${r.code}`);
  await new Promise((res) => setTimeout(res, 8000));
  stop = true; await Promise.all(loops); clearInterval(lagT);
})();
