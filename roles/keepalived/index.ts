// keepalived: the balancers of a static inventory share network.floatingAddress (VRRP, unicast
// between them, authenticated). The address sits on a balancer whose HAProxy answers; when that
// balancer or its HAProxy dies, another takes it within about three advertisement intervals.
// nopreempt: a balancer that comes back stays backup, so the address moves once, not twice.
// GCP has its internal load balancer instead (infra/gcpLoadBalancer.ts): no step there.
import { BALANCER_HEALTH_PATH, ports } from "../../model/identities";
import { render } from "../render";
import { daemonReload, reload, shellFn, StepBuilder } from "../step";
import { stepId } from "../types";
import type { RoleUnit } from "../role";
import { withRole } from "../hosts";
import { ROLE as HAPROXY } from "../haproxy";

export const ROLE = "keepalived";
export const UNIT = "keepalived";
export const CONFIG_FILE = "/etc/keepalived/keepalived.conf";
/** The interface that carries the host's address, found on the host (keepalived.sh). */
export const INTERFACE_FILE = "/etc/keepalived/pgcluster-interface.conf";
/** VRRPv2 authentication carries at most 8 characters. */
export const VRRP_PASSWORD_LENGTH = 8;

export const shell = {
  interface: shellFn(`${ROLE}/keepalived.sh`, "pgc_keepalived_interface"),
  check: shellFn(`${ROLE}/keepalived.sh`, "pgc_keepalived_check"),
  floatingAnswers: shellFn(`${ROLE}/keepalived.sh`, "pgc_floating_answers"),
};

export const keepalived: RoleUnit = {
  name: ROLE,
  hosts: (spec) => (spec.provider === "static" ? withRole(spec, "balancer") : []),
  // The address moves to a balancer only once its HAProxy routes.
  after: (_spec, host) => [stepId(host.name, HAPROXY)],
  step(ctx, host) {
    const s = new StepBuilder();
    const floating = ctx.spec.network.floatingAddress;
    if (!floating) {
      // No floating address (any more): keepalived off, so no balancer holds an old one.
      s.stopped(UNIT);
      return s;
    }
    const peers = withRole(ctx, "balancer").filter((b) => b.name !== host.name).map((b) => b.address);
    s.packages("keepalived");
    s.shell(ROLE, "keepalived.sh", { address: host.address, floating, interfaceFile: INTERFACE_FILE, ports, healthPath: BALANCER_HEALTH_PATH });
    s.file({
      path: "/etc/systemd/system/keepalived.service.d/pgcluster.conf",
      content: render(ROLE, "keepalived.service.conf", {}),
      notify: [daemonReload],
    });
    s.call(shell.interface);
    s.file({
      path: CONFIG_FILE,
      mode: "0600",
      secret: true,
      validate: `${shell.check.name} {}`,
      notify: [reload(UNIT)],
      content: render(ROLE, "keepalived.conf", {
        host: host.name,
        address: host.address,
        peers,
        floating,
        routerId: ctx.spec.keepalived.virtualRouterId,
        password: ctx.secrets.vrrpPassword.slice(0, VRRP_PASSWORD_LENGTH),
        interfaceFile: INTERFACE_FILE,
        healthPort: ports.balancerHealth,
        healthPath: BALANCER_HEALTH_PATH,
      }),
    });
    s.service(UNIT);
    s.handlers();
    s.wait(30, `the floating address ${floating} answering HAProxy's health from ${host.name}`, shell.floatingAnswers);
    return s;
  },
};
