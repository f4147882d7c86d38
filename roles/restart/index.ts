// restart: settings that PostgreSQL takes only on a restart (shared_buffers, max_connections, …)
// are applied by Patroni and then wait as "pending restart". This step runs on every database
// node once every node runs under Patroni with the cluster's settings: a node with a pending
// restart restarts through the patroni role's agent restart (an etcd lock: one node at a time,
// each healthy before the next; the leader asks last and hands over to its synchronous standby
// first). With patroni.pendingRestart "defer" it only warns, and drift keeps reporting it.
import { PG_DATA, ports, tlsDir } from "../../model/identities";
import { handlerWord, run, shellFn, StepBuilder } from "../step";
import { stepId } from "../types";
import type { RoleUnit } from "../role";
import { withRole } from "../hosts";
import { dcsJson, patroniFunctions, ROLE as PATRONI, shell as patroniShell } from "../patroni";
import { ROLE as DATABASE } from "../database";

export const ROLE = "restart";

export const shell = {
  settingsApplied: shellFn(`${ROLE}/restart.sh`, "pgc_patroni_settings_applied"),
  pendingRestart: shellFn(`${ROLE}/restart.sh`, "pgc_pending_restart"),
};

export const restart: RoleUnit = {
  name: ROLE,
  hosts: (spec) => withRole(spec, "postgres"),
  // After every node's patroni step (the settings are in the DCS, every member runs) and the
  // database steps (no restart while roles and passwords change).
  after: (spec) => withRole(spec, "postgres").flatMap((h) => [stepId(h.name, PATRONI), stepId(h.name, DATABASE)]),
  step(ctx, host) {
    const s = new StepBuilder();
    // The agent restart handler and the functions it needs (etcd lock, switchover, health).
    patroniFunctions(s, ctx, host);
    s.shell(ROLE, "restart.sh", {
      tls: tlsDir.patroni,
      ports,
      cacheFile: `${PG_DATA}/patroni.dynamic.json`,
      dcsJson: dcsJson(ctx),
      defer: ctx.spec.patroni.pendingRestart === "defer",
      restartHandler: handlerWord(run(patroniShell.agentRestart, "patroni")),
    });
    s.wait(120, `Patroni on ${host.name} running with the cluster's settings`, shell.settingsApplied);
    s.call(shell.pendingRestart);
    return s;
  },
};
