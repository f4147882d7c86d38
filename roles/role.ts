// A role is one typed unit: which hosts it runs on and what it waits for (both known from the
// spec alone, so a driver learns the plan's graph before any address or certificate exists),
// and its step on one host. compile() iterates the list of roles (roles/compile.ts).
import type { ClusterSpec, HostSpec } from "../model/config";
import type { StepBuilder } from "./step";
import type { Host, RoleContext } from "./types";

export interface RoleUnit {
  /** The role's name: its steps are "<host>/<name>", its files in templates/<name>/. */
  readonly name: string;
  /** The hosts it runs on, in inventory order. */
  hosts(spec: ClusterSpec): HostSpec[];
  /** The step ids its step on `host` waits for. */
  after(spec: ClusterSpec, host: HostSpec): string[];
  /**
   * The step runs after every other step on its host (the compiler adds them to `after`):
   * a package update must not meet another step installing or starting the same packages.
   */
  readonly lastOnHost?: boolean;
  /** Its step on `host`. */
  step(ctx: RoleContext, host: Host): StepBuilder;
}
