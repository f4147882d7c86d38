// common: every host. Apt proxy (hosts need no internet access), base packages, kernel
// settings for fast dead-peer detection, time sync, the journal's retention.
import { render } from "../render";
import { restart, StepBuilder } from "../step";
import type { RoleUnit } from "../role";

export const ROLE = "common";
export const JOURNALD_DROPIN = "/etc/systemd/journald.conf.d/pgcluster.conf";

export const common: RoleUnit = {
  name: ROLE,
  hosts: (spec) => spec.hosts,
  after: () => [],
  step(ctx) {
    const s = new StepBuilder();
    if (ctx.spec.apt.proxy) {
      s.file({ path: "/etc/apt/apt.conf.d/01pgcluster-proxy", content: render(ROLE, "apt-proxy.conf", { proxy: ctx.spec.apt.proxy }) });
    } else {
      s.absent("/etc/apt/apt.conf.d/01pgcluster-proxy");
    }
    s.packages("ca-certificates", "curl", "python3", "ssl-cert", "procps");
    s.file({ path: "/etc/sysctl.d/90-pgcluster.conf", content: render(ROLE, "sysctl.conf", {}) });
    // journald reads its drop-ins only when it starts; a restart keeps the services' log streams.
    s.file({
      path: JOURNALD_DROPIN,
      content: render(ROLE, "journald.conf", { maxUse: ctx.spec.logs.journalMaxUse, retentionDays: ctx.spec.logs.retentionDays }),
      notify: [restart("systemd-journald")],
    });
    s.shell(ROLE, "base.sh", {});
    return s;
  },
};
