// Re-creating a replica (patronictl reinit) and reading back how Patroni made it: what the
// hosts tests and bench/backup.ts compare (pg_basebackup from the leader, or the repository).
import type { LocalCluster } from "./cluster";
import { healthy } from "./chaos";
import { ssh } from "./ssh";
import { shq } from "../roles/quote";
import { PATRONI_CONFIG } from "../model/identities";

export interface Reinit {
  node: string;
  /** Patroni's own word for the method that made it ("basebackup", "pgbackrest"), or why it is unknown. */
  method: string;
  /** From the request to a healthy cluster (the replica streaming again). */
  seconds: number;
}

async function onNode(c: LocalCluster, node: string, command: string, timeoutMs: number): Promise<string> {
  const r = await ssh(c.ssh, c.targets[node], command, "", timeoutMs);
  if (r.code !== 0) throw new Error(`${node}: ${command.split(" ").slice(0, 3).join(" ")} … exit ${r.code}: ${r.out.trim().split("\n").slice(-4).join(" | ")}`);
  return r.out;
}

/** Re-initialises an asynchronous replica (not the synchronous standby: writes keep their ack). */
export async function reinitReplica(c: LocalCluster, timeoutSeconds = 3600): Promise<Reinit> {
  const node = (await healthy(c)).find((m) => m.role === "replica")?.name;
  if (!node) throw new Error("no asynchronous replica to re-initialise");
  const since = Math.floor(Date.now() / 1000) - 1;
  const t0 = Date.now();
  await onNode(c, node, `patronictl -c ${shq(PATRONI_CONFIG)} reinit ${shq(c.spec.clusterName)} ${shq(node)} --force --wait`, timeoutSeconds * 1000);
  await healthy(c, timeoutSeconds);
  const seconds = (Date.now() - t0) / 1000;
  const journal = await onNode(c, node, `journalctl -u patroni --since=@${since} -o cat --no-pager | grep -E 'replica has been created using|Error creating replica' || true`, 60_000);
  const method = /replica has been created using (\S+)/.exec(journal)?.[1] ?? `unknown (${journal.trim() || "no line in the journal"})`;
  return { node, method, seconds };
}
