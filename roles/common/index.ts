// common: every host. Apt proxy (hosts need no internet access), base packages, kernel
// settings for fast dead-peer detection, time sync.
import { render } from "../render";
import { StepScript } from "../script";
import type { Host, RoleContext } from "../types";

export const ROLE = "common";

export function commonStep(ctx: RoleContext, host: Host): StepScript {
  const s = new StepScript(`${host.name}/${ROLE}`);
  if (ctx.spec.apt.proxy) {
    s.file({ path: "/etc/apt/apt.conf.d/01pgcluster-proxy", content: render(ROLE, "apt-proxy.conf", { proxy: ctx.spec.apt.proxy }) });
  } else {
    s.absent("/etc/apt/apt.conf.d/01pgcluster-proxy");
  }
  s.packages("ca-certificates", "curl", "python3", "ssl-cert", "procps");
  s.file({ path: "/etc/sysctl.d/90-pgcluster.conf", content: render(ROLE, "sysctl.conf", {}) });
  s.sh(render(ROLE, "base.sh", {}));
  return s;
}
