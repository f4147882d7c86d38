// monitoring: the monitoring host (monitoring.enabled; a static inventory's host with roles
// [monitoring]). Prometheus scrapes every target of the cluster over TLS and evaluates the alert
// rules; Alertmanager (loopback only) groups and sends the alerts. Prometheus's web UI, API and
// console pages answer on the host's address with TLS and the metrics login, to operators only
// (the host firewall). Its TLS files and web configuration are the exporters role's on this host.
import { EXPORTERS, ports } from "../../model/identities";
import { render, verbatim } from "../render";
import { reload, restart, shellFn, StepBuilder } from "../step";
import { stepId } from "../types";
import type { RoleUnit } from "../role";
import { withRole } from "../hosts";
import { ROLE as EXPORTERS_ROLE } from "../exporters";
import { renderAlertRules } from "./alerts";
import { MONITORING_PATHS, renderAlertmanagerConfig, renderPrometheusConfig } from "./configs";

export const ROLE = "monitoring";
export const PROMETHEUS = "prometheus";
export const ALERTMANAGER = "prometheus-alertmanager";
export const PROMETHEUS_CONFIG = "/etc/prometheus/prometheus.yml";
export const ALERTMANAGER_CONFIG = "/etc/prometheus/alertmanager.yml";
/** Prometheus's console templates (Debian's defaults, named in its arguments all the same). */
export const CONSOLES = { templates: "/etc/prometheus/consoles", libraries: "/etc/prometheus/console_libraries" };
/** The overview page: https://<monitoring host>:9090/consoles/pgcluster.html */
export const OVERVIEW_PAGE = "pgcluster.html";

export const shell = {
  ready: shellFn(`${ROLE}/monitoring.sh`, "pgc_prometheus_ready"),
};

export const monitoring: RoleUnit = {
  name: ROLE,
  hosts: (spec) => (spec.monitoring.enabled ? withRole(spec, "monitoring") : []),
  after: (_spec, host) => [stepId(host.name, EXPORTERS_ROLE)],
  step(ctx, host) {
    const spec = ctx.spec;
    const s = new StepBuilder();
    s.packages(PROMETHEUS, ALERTMANAGER);
    s.dir("/etc/prometheus/pgcluster", "root", "prometheus", "0750");
    s.file({ path: MONITORING_PATHS.metricsPassword, content: `${ctx.secrets.metricsPassword}\n`, owner: "root", group: "prometheus", mode: "0640", secret: true, notify: [reload(PROMETHEUS)] });
    s.file({ path: MONITORING_PATHS.rules, content: renderAlertRules(spec), validate: "promtool check rules {}", notify: [reload(PROMETHEUS)] });
    s.file({ path: PROMETHEUS_CONFIG, content: renderPrometheusConfig(spec, ctx.hosts), validate: "promtool check config --syntax-only {}", notify: [reload(PROMETHEUS)] });
    // Prometheus reads console templates per request: a new page needs no reload.
    s.file({ path: `${CONSOLES.templates}/${OVERVIEW_PAGE}`, content: verbatim(ROLE, OVERVIEW_PAGE) });
    s.file({ path: ALERTMANAGER_CONFIG, content: renderAlertmanagerConfig(spec), validate: "amtool check-config {}", notify: [reload(ALERTMANAGER)] });
    s.file({
      path: `/etc/default/${PROMETHEUS}`, notify: [restart(PROMETHEUS)],
      content: render(ROLE, "prometheus.default", {
        config: PROMETHEUS_CONFIG, address: host.address, port: ports.prometheus, webConfig: EXPORTERS.webConfig, retentionDays: spec.monitoring.retentionDays,
        consoles: CONSOLES.templates, consoleLibraries: CONSOLES.libraries,
      }),
    });
    s.file({ path: `/etc/default/${ALERTMANAGER}`, notify: [restart(ALERTMANAGER)], content: render(ROLE, "alertmanager.default", { config: ALERTMANAGER_CONFIG, port: ports.alertmanager }) });
    s.handlers();
    s.service(ALERTMANAGER);
    s.service(PROMETHEUS);
    s.shell(ROLE, "monitoring.sh", { url: `https://${host.address}:${ports.prometheus}/-/ready`, ca: `${EXPORTERS.tlsDir}/ca.crt`, passwordFile: MONITORING_PATHS.metricsPassword });
    s.wait(60, `Prometheus on ${host.name} ready`, shell.ready);
    return s;
  },
};
