// common: every host. Apt proxy (hosts need no internet access), base packages, kernel
// settings for fast dead-peer detection, time sync, the journal's retention.
import { render } from "../render";
import { restart, StepBuilder } from "../step";
import type { RoleUnit } from "../role";
import type { ClusterSpec } from "../../model/config";
import { APT_PINS_FILE, DECOMMISSIONED_MARKER, PACKAGES_OF } from "../../model/identities";

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
    // Before any package is installed: a new host installs the pinned versions from the start.
    const pins = aptPins(ctx.spec);
    if (pins.length) s.file({ path: APT_PINS_FILE, content: render(ROLE, "apt-pins", { pins }) });
    else s.absent(APT_PINS_FILE);
    s.packages("ca-certificates", "curl", "python3", "ssl-cert", "procps");
    s.file({ path: "/etc/sysctl.d/90-pgcluster.conf", content: render(ROLE, "sysctl.conf", {}) });
    // journald reads its drop-ins only when it starts; a restart keeps the services' log streams.
    s.file({
      path: JOURNALD_DROPIN,
      content: render(ROLE, "journald.conf", { maxUse: ctx.spec.logs.journalMaxUse, retentionDays: ctx.spec.logs.retentionDays }),
      notify: [restart("systemd-journald")],
    });
    s.shell(ROLE, "base.sh", {});
    // A host in the plan is a member: a decommission marker from an earlier scale-in is stale.
    s.absent(DECOMMISSIONED_MARKER);
    return s;
  },
};

/** packages.versions as apt pins: the packages of each pinned set, and its version. */
export function aptPins(spec: ClusterSpec): { packages: string; version: string }[] {
  return Object.entries(spec.packages.versions)
    .filter(([, v]) => v !== undefined)
    .map(([set, version]) => ({ packages: PACKAGES_OF[set as keyof typeof PACKAGES_OF].join(" "), version: version! }));
}
