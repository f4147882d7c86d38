// postgresql: the server packages, without Debian's auto-created cluster (Patroni owns the data
// directory), on the host's data disk when it has one.
import { PG_VERSION } from "../../model/identities";
import { render } from "../render";
import { StepScript } from "../script";
import type { Host, RoleContext } from "../types";

export const ROLE = "postgresql";

export function postgresqlStep(_ctx: RoleContext, host: Host): StepScript {
  const s = new StepScript(`${host.name}/${ROLE}`);
  // Must exist before the package is installed: otherwise Debian creates and starts 15/main.
  s.file({ path: "/etc/postgresql-common/createcluster.conf", content: render(ROLE, "createcluster.conf", {}) });
  if (host.dataDevice) s.sh(render(ROLE, "data-disk.sh", { device: host.dataDevice, mountPoint: "/var/lib/postgresql" }));
  s.packages(`postgresql-${PG_VERSION}`, `postgresql-client-${PG_VERSION}`);
  s.dir("/var/lib/postgresql", "postgres", "postgres", "0755");
  s.dir(`/var/lib/postgresql/${PG_VERSION}`, "postgres", "postgres", "0700");
  return s;
}
