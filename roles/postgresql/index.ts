// postgresql: the server packages, without Debian's auto-created cluster (Patroni owns the data
// directory), on the host's data disk when it has one.
import { PG_VERSION } from "../../model/identities";
import { render } from "../render";
import { StepBuilder } from "../step";
import { stepId } from "../types";
import type { RoleUnit } from "../role";
import { withRole } from "../hosts";
import { ROLE as COMMON } from "../common";

export const ROLE = "postgresql";

export const postgresql: RoleUnit = {
  name: ROLE,
  hosts: (spec) => withRole(spec, "postgres"),
  after: (_spec, host) => [stepId(host.name, COMMON)],
  step(_ctx, host) {
    const s = new StepBuilder();
    // Must exist before the package is installed: otherwise Debian creates and starts 15/main.
    s.file({ path: "/etc/postgresql-common/createcluster.conf", content: render(ROLE, "createcluster.conf", {}) });
    if (host.dataDevice) s.shell(ROLE, "data-disk.sh", { device: host.dataDevice, mountPoint: "/var/lib/postgresql" });
    s.packages(`postgresql-${PG_VERSION}`, `postgresql-client-${PG_VERSION}`);
    s.dir("/var/lib/postgresql", "postgres", "postgres", "0755");
    s.dir(`/var/lib/postgresql/${PG_VERSION}`, "postgres", "postgres", "0700");
    return s;
  },
};
