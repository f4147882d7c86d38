// Each service gets its own copy of the CA bundle and the node's certificate and key, owned by
// the service's user (keys 0600), so a changed file notifies only that service's handler.
import type { Handler, StepBuilder } from "./step";
import type { Host, RoleContext } from "./types";

export function nodeTlsFiles(s: StepBuilder, ctx: RoleContext, host: Host, o: { dir: string; owner: string; notify: Handler[] }): void {
  const node = ctx.pki.nodes[host.name];
  const own = { owner: o.owner, group: o.owner, notify: o.notify };
  s.dir(o.dir, o.owner, o.owner, "0700");
  s.file({ path: `${o.dir}/ca.crt`, content: ctx.pki.caBundle, ...own });
  s.file({ path: `${o.dir}/node.crt`, content: node.cert, ...own });
  s.file({ path: `${o.dir}/node.key`, content: node.key, ...own, mode: "0600", secret: true });
}
