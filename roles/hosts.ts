import type { HostSpec, Role } from "../model/config";

/** The hosts with `role`, in inventory order: of the spec (names, roles) or of a context (with addresses). */
export function withRole<H extends HostSpec>(c: { hosts: H[] }, role: Role): H[] {
  return c.hosts.filter((h) => h.roles.includes(role));
}

/** The member that bootstraps the cluster: the first database host in inventory order. */
export function bootstrapHost<H extends HostSpec>(c: { hosts: H[] }): H | undefined {
  return withRole(c, "postgres")[0];
}
