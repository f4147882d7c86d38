import type { Host, Role, RoleContext } from "./types";

export function withRole(ctx: RoleContext, role: Role): Host[] {
  return ctx.hosts.filter((h) => h.roles.includes(role));
}

/** The member that bootstraps the cluster: the first database host in inventory order. */
export function bootstrapHost(ctx: RoleContext): Host {
  return withRole(ctx, "postgres")[0];
}
