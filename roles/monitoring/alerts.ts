// Prometheus alert rules (templates/monitoring/alerts.yml.hbs) from the stack config. The limits
// an on-call engineer pages on are the cluster's own: Patroni's failover lag limit, the WAL
// archive timeout, the certificate renewal window, pgBouncer's client limit.
import type { ClusterSpec } from "../../model/config";
import { render } from "../render";

/** Seconds after which WAL written on the primary must be archived: archive_timeout forces the switch, then 2 min to archive it. */
export function archiveDueSeconds(spec: ClusterSpec): number {
  return spec.backup.archiveTimeout + 120;
}

export function alertRulesContext(spec: ClusterSpec) {
  const etcdMembers = spec.hosts.filter((h) => h.roles.includes("etcd")).length;
  const due = archiveDueSeconds(spec);
  const hours = (h: number) => h * 3600;
  return {
    cluster: spec.clusterName,
    lagLimitBytes: spec.patroni.maximumLagOnFailover,
    etcdMembers,
    etcdQuorum: Math.floor(etcdMembers / 2) + 1,
    archiveTimeout: spec.backup.archiveTimeout,
    archiveDueSeconds: due,
    // The WAL checked is written during [now-due-5m, now-due]; an archive since its start counts.
    archiveWindowSeconds: due + 300,
    backupEnabled: spec.backup.enabled,
    backupMaxAgeSeconds: hours(spec.monitoring.alerts.backupMaxAgeHours),
    fullBackupMaxAgeSeconds: hours(spec.monitoring.alerts.fullBackupMaxAgeHours),
    drillMaxAgeSeconds: hours(spec.monitoring.alerts.restoreDrillMaxAgeHours),
    renewalWindowSeconds: hours(spec.tls.earlyRenewalHours),
    slotRetainedWalBytes: spec.monitoring.alerts.slotRetainedWalMb * 1048576,
    pgbouncerMaxClientConn: spec.pgbouncer.maxClientConn,
    pgbouncerPoolSize: spec.pgbouncer.defaultPoolSize,
  };
}

/** The rules file the monitoring host loads (/etc/prometheus/pgcluster-alerts.yml). */
export function renderAlertRules(spec: ClusterSpec): string {
  return render("monitoring", "alerts.yml", alertRulesContext(spec));
}
