// pgcluster's command line for static inventories and the embedded local cluster:
//   up     build the local hosts if missing, apply the plan, print URLs and cluster state
//   apply  apply the plan to the stack's hosts        drift  check mode: what differs on the hosts
//   plan   list the steps and their order             status Patroni's view of the cluster
//   update the cluster's packages to the newest the mirror has, one host at a time
//   down   stop the local hosts and remove what up made
//   backup [--type full|diff|incr]  a backup now (on the backup host)   backups  what the repository holds
//   backup:verify  the restore drill now: the latest backup restored on the backup host, checked, removed
//   backup:dump  the logical dump now (pg_dump of the application database and the roles, encrypted, on the backup host)
//   restore --to <ISO 8601 time | latest> --yes-destroy-data  point-in-time restore of the whole cluster
import { loadCluster, LOCAL_STACKS, onLocalHosts, connectionUrls, floatingAddressHolders, writeEnvFile, patroniCluster, statsUrls, writeStatsCurlConfig, type LocalCluster } from "./cluster";
import * as path from "path";
import { hostsDown } from "./hosts";
import { activeAlerts, describeAlerts, prometheusUrl, writePrometheusCurlConfig } from "./monitoring";
import { overviewUrl, renderOverview } from "./overviewPage";
import { apply, bringUpHosts } from "./up";
import { topoOrder } from "../roles/compile";
import { ConfigError } from "../model/config";
import { CaSwitchError } from "./pki";
import { ScaleInRefused } from "./scaleIn";
import { restoreCluster, RestoreRefused, RestoreStopped } from "./restore";
import { parseRestoreTarget } from "../roles/restore";
import { BACKUP_TYPES, describeBackupStatus, describeDrill, describeDump, describeRepository, lastDrill, listDumps, repositoryInfo, runDrill, runDump, takeBackup, type BackupType } from "./backup";

const log = (l: string) => console.log(l);

function args(argv: string[]) {
  const cmd = argv[0] ?? "up";
  const i = argv.indexOf("--stack");
  const t = argv.indexOf("--type");
  const to = argv.indexOf("--to");
  const shot = argv.indexOf("--screenshot");
  return {
    screenshot: shot >= 0 ? argv[shot + 1] : undefined,
    cmd, stack: i >= 0 ? argv[i + 1] : "local", type: t >= 0 ? argv[t + 1] : "full",
    to: to >= 0 ? argv[to + 1] : undefined, yes: argv.includes("--yes-destroy-data"), loseUnarchived: argv.includes("--lose-unarchived"),
  };
}

async function printStatus(c: LocalCluster): Promise<void> {
  const members = await patroniCluster(c);
  log("cluster:");
  for (const m of members) log(`  ${m.name.padEnd(8)} ${m.host.padEnd(14)} ${m.role.padEnd(13)} ${String(m.state).padEnd(10)} timeline ${m.timeline ?? "-"} lag ${m.lag ?? 0}`);
  log(`HAProxy stats (network.adminCidrs only; the login is in ${writeStatsCurlConfig(c)}): curl -K <that file> <url>`);
  for (const u of statsUrls(c)) log(`  ${u}`);
  if (c.spec.network.floatingAddress) {
    const holders = await floatingAddressHolders(c);
    const on = Object.keys(holders).filter((b) => holders[b] === "holds");
    log(`floating address ${c.spec.network.floatingAddress}: ${Object.entries(holders).map(([b, s]) => `${b} ${s}`).join(", ")}${on.length === 1 ? "" : `  <- ${on.length ? "HELD BY MORE THAN ONE" : "HELD BY NONE"}`}`);
  }
  if (c.spec.backup.enabled) {
    // Unreadable is said as such, never as "fine".
    const lines = await Promise.all([repositoryInfo(c), lastDrill(c)])
      .then(([info, drill]) => describeBackupStatus(info, drill, new Date()))
      .catch((e) => [`backups: UNKNOWN (${(e as Error).message.split("\n")[0]})`]);
    for (const l of lines) log(l);
  }
  const prometheus = prometheusUrl(c);
  if (prometheus) {
    log(`Prometheus (network.adminCidrs only; the login is in ${writePrometheusCurlConfig(c)}, CA ${path.join(c.stateDir, "ca.crt")}): ${prometheus}/`);
    log(`  overview page: ${overviewUrl(c)} (npm run overview renders it here)`);
    // Unreadable is said as such: no answer is not "no alerts".
    const lines = await activeAlerts(c).then(describeAlerts).catch((e) => [`alerts: UNKNOWN (${(e as Error).message})`]);
    for (const l of lines) log(l);
  }
}

async function main(): Promise<number> {
  const { cmd, stack, type, to, yes, loseUnarchived, screenshot } = args(process.argv.slice(2));
  if (cmd === "down") { await hostsDown(log); return 0; }
  const c = await loadCluster(stack);
  switch (cmd) {
    case "plan":
      for (const s of topoOrder(c.plan.steps)) log(`${s.id.padEnd(22)} after: ${s.after.join(", ") || "-"}  digest ${s.digest.slice(0, 12)}`);
      return 0;
    case "status":
      await printStatus(c);
      return 0;
    case "overview": {
      // The page as a browser shows it (Debian's chromium, headless): its summary here, and a
      // PNG of it with --screenshot <file.png>.
      const o = await renderOverview(c, screenshot ? { screenshot } : {});
      if (o.status !== 200) throw new Error(`${overviewUrl(c)}: HTTP ${o.status}`);
      log(`overview of ${o.cluster} (${overviewUrl(c)}):`);
      for (const [k, v] of Object.entries(o.summary)) log(`  ${k.padEnd(14)} ${v}`);
      for (const m of o.members) log(`  ${m.name.padEnd(8)} ${m.role.padEnd(12)} PostgreSQL ${m.postgres}${m.role === "replica" ? `, replay lag ${m.lag}` : ""}`);
      if (screenshot) log(`screenshot: ${screenshot}`);
      return 0;
    }
    case "backup": {
      if (!(BACKUP_TYPES as readonly string[]).includes(type)) throw new Error(`--type ${type}: use ${BACKUP_TYPES.join(", ")}`);
      const t = Date.now();
      log(`taking a ${type} backup of ${c.spec.clusterName} on the backup host…`);
      await takeBackup(c, type as BackupType);
      log(`done in ${((Date.now() - t) / 1000).toFixed(1)} s`);
      for (const l of describeRepository(await repositoryInfo(c))) log(l);
      return 0;
    }
    case "backups":
      for (const l of describeRepository(await repositoryInfo(c))) log(l);
      for (const l of await listDumps(c)) log(l);
      return 0;
    case "backup:verify": {
      log(`restore drill of ${c.spec.clusterName} on the backup host: the latest backup restored into a scratch directory, started privately, checked, removed…`);
      const { result, output } = await runDrill(c);
      for (const l of output) log(`  ${l}`);
      log(describeDrill(result));
      return result.result === "pass" ? 0 : 3;
    }
    case "restore": {
      // Refused before anything connects when the target is not one.
      let target;
      try { target = parseRestoreTarget(to); } catch (e) { throw new RestoreRefused((e as Error).message); }
      const t = Date.now();
      await restoreCluster(c, { target, loseUnarchived, confirmed: yes }, log);
      log(`restored in ${((Date.now() - t) / 1000).toFixed(1)} s`);
      await printStatus(c);
      return 0;
    }
    case "backup:dump": {
      log(`logical dump of ${c.spec.clusterName} on the backup host (pg_dump of ${c.spec.postgresql.database} and the roles, from a standby)…`);
      const { result, output } = await runDump(c);
      for (const l of output) log(`  ${l}`);
      log(describeDump(result));
      return result.result === "pass" ? 0 : 3;
    }
    case "update": {
      // One apply with packages.newest: every host's cluster packages to the newest the mirror
      // has (pinned ones stay at their pin), one host at a time (roles/update).
      const u = await loadCluster(stack, { packages: { newest: true } });
      log(`updating the packages of ${u.spec.clusterName} to the newest versions the mirror has, one host at a time (database nodes: replicas first, the leader last after a switchover)…`);
      const r = await apply(u, log);
      const updated = r.outcomes.filter((o) => o.step.role === "update" && o.outcome === "changed").map((o) => o.step.host);
      log(r.code === 0 ? `updated: ${updated.join(", ") || "nothing (every host already runs the newest)"}` : `the update stopped (exit ${r.code}); what ran is above; run it again once the cause is fixed`);
      if (r.code !== 0) return r.code;
      await printStatus(u);
      return 0;
    }
    case "drift":
    case "check":
      return (await apply(c, log, true)).code;
    case "apply":
    case "up": {
      // The stack's restore key is the Pulumi CLI's way; here the restore is its own command.
      if (c.spec.restore) log(`note: pgcluster:restore (id ${c.spec.restore.id}) is carried out by the Pulumi CLI only; this apply does not restore. Here: npm run restore -- --stack ${stack} --to ${c.spec.restore.to} --yes-destroy-data`);
      if (cmd === "up") {
        if (!onLocalHosts(stack)) throw new Error(`up builds the local hosts (stacks ${LOCAL_STACKS.join(", ")}); for another static stack use: apply --stack ${stack}`);
        await bringUpHosts(c, log);
      }
      const r = await apply(c, log);
      if (r.code !== 0) return r.code;
      await printStatus(c);
      for (const [k, v] of Object.entries(connectionUrls(c))) log(`${k}=${v}`);
      log(`full URLs (with password) for your shell: source ${writeEnvFile(c)}`);
      return 0;
    }
    default:
      throw new Error(`unknown command ${cmd}; commands: up, apply, update, drift, plan, status, down, backup, backups, backup:verify, backup:dump, restore`);
  }
}

if (require.main === module) {
  main().then((code) => process.exit(code), (e) => {
    console.error(e instanceof ConfigError ? e.message : `error: ${(e as Error).message}`);
    process.exit(e instanceof ConfigError || e instanceof CaSwitchError || e instanceof ScaleInRefused || e instanceof RestoreRefused ? 4 : e instanceof RestoreStopped ? 5 : 1);
  });
}
