// bench/converge: seconds from bare local hosts (fresh Debian 12 roots, nothing installed) to a
// healthy cluster, and for the no-op re-apply. Targets: <= 240 s and <= 20 s on 2 cores.
// Usage: npm run bench:converge   (destroys and rebuilds the local hosts; keeps the base root
// and the apt proxy's cache, which it reports, since a cold cache adds the downloads)
import * as fs from "fs";
import * as path from "path";
import { loadCluster, patroniCluster } from "../local/cluster";
import { hostsDown, ROOT } from "../local/hosts";
import { bringUpHosts, apply } from "../local/up";

async function main() {
  const quiet = () => {};
  const cacheMb = (() => {
    try { return Number(require("child_process").execFileSync("du", ["-sm", path.join(ROOT, "apt-cache")]).toString().split("\t")[0]); } catch { return 0; }
  })();
  const baseCached = fs.existsSync(path.join(ROOT, "base", ".pgcluster-base"));
  await hostsDown(quiet);
  const c = await loadCluster("local");
  const t0 = Date.now();
  await bringUpHosts(c, quiet);
  const tHosts = (Date.now() - t0) / 1000;
  const first = await apply(c, quiet);
  if (first.code !== 0) throw new Error(`apply failed (exit ${first.code})`);
  const members = await patroniCluster(c);
  const tTotal = (Date.now() - t0) / 1000;
  const again = await apply(c, quiet);
  const rows = [
    ["bare hosts -> healthy cluster", `${tTotal.toFixed(1)} s`, "<= 240 s", tTotal <= 240 ? "met" : "MISSED"],
    ["  of which: boot hosts", `${tHosts.toFixed(1)} s`, "", ""],
    ["  of which: apply plan", `${first.seconds.toFixed(1)} s`, "", `${first.changed} steps changed`],
    ["no-op re-apply", `${again.seconds.toFixed(1)} s`, "<= 20 s", again.seconds <= 20 && again.changed === 0 ? "met" : "MISSED"],
    ["  steps changed on re-apply", String(again.changed), "0", again.changed === 0 ? "met" : "MISSED"],
  ];
  console.log(`converge benchmark (${new Date().toISOString()}; base root ${baseCached ? "cached" : "built in this run"}; apt cache ${cacheMb} MB before the run)`);
  console.log(`members: ${members.map((m) => `${m.name}=${m.role}`).join(" ")}`);
  for (const r of rows) console.log(`${r[0].padEnd(32)} ${r[1].padStart(9)}  target ${r[2].padEnd(9)} ${r[3]}`);
}

main().catch((e) => { console.error(e); process.exit(1); });
