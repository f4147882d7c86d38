// A step is data: what to install, write, start, wait for and run on one host, in order. It
// becomes a bash program only when a driver sends it (roles/script.ts); tests and tools read the
// actions. Shell functions a step relies on (handlers, waits, calls) are typed references
// (ShellFn), checked against the shell the step really carries when the plan compiles.
import { renderShell } from "./render";

/** A function defined by a role's host-side shell (roles/<role>/<file>.hbs). */
export interface ShellFn {
  readonly name: string;
  /** "<role>/<file>" of the template that defines it, or "prelude" (roles/lib/prelude.sh). */
  readonly lib: string;
}

export function shellFn(lib: string, name: string): ShellFn {
  if (!/^pgc_[a-z0-9_]+$/.test(name)) throw new Error(`shell function name ${JSON.stringify(name)}: pgc_ and lower-case words`);
  return Object.freeze({ name, lib });
}

/** What a changed file (or removed one) asks for, run once at the next handlers point. */
export type Handler =
  | { kind: "daemon-reload" }
  | { kind: "restart"; unit: string }
  | { kind: "reload"; unit: string }
  /** A step function; `unit` when it restarts that unit (a start of it in the step makes it unnecessary). */
  | { kind: "run"; fn: ShellFn; unit?: string };

export const daemonReload: Handler = { kind: "daemon-reload" };
export const restart = (unit: string): Handler => ({ kind: "restart", unit });
export const reload = (unit: string): Handler => ({ kind: "reload", unit });
export const run = (fn: ShellFn, unit?: string): Handler => ({ kind: "run", fn, ...(unit ? { unit } : {}) });

export interface FileAction {
  kind: "file";
  path: string;
  content: string;
  owner: string;
  group: string;
  mode: string;
  /** Holds a secret: check mode shows no diff of it. */
  secret: boolean;
  notify: Handler[];
  /** Command run on the new content before it is installed; {} is its path. */
  validate?: string;
}

export type Action =
  | { kind: "packages"; names: string[] }
  | { kind: "dir"; path: string; owner: string; group: string; mode: string }
  | FileAction
  | { kind: "absent"; path: string; notify?: Handler }
  | { kind: "service"; unit: string; noBlock: boolean }
  | { kind: "stopped"; unit: string }
  /** Run the handlers notified so far (services restart before later actions rely on them). */
  | { kind: "handlers" }
  /** Host-side shell from a template: function definitions, and what only the host can decide. */
  | { kind: "shell"; template: string; source: string }
  /** Bounded wait until `check` succeeds; `what` is said in the log and in a timeout. */
  | { kind: "wait"; seconds: number; what: string; check: ShellFn }
  | { kind: "call"; fn: ShellFn };

export interface FileOptions {
  path: string;
  content: string;
  owner?: string;
  group?: string;
  mode?: string;
  secret?: boolean;
  notify?: Handler[];
  validate?: string;
}

/** Collects a step's actions in order; roles build their step with it. */
export class StepBuilder {
  readonly actions: Action[] = [];

  packages(...names: string[]): this {
    this.actions.push({ kind: "packages", names });
    return this;
  }

  dir(path: string, owner = "root", group = "root", mode = "0755"): this {
    this.actions.push({ kind: "dir", path, owner, group, mode });
    return this;
  }

  file(f: FileOptions): this {
    this.actions.push({
      kind: "file", path: f.path, content: f.content, owner: f.owner ?? "root", group: f.group ?? "root", mode: f.mode ?? "0644",
      secret: f.secret ?? false, notify: f.notify ?? [], ...(f.validate ? { validate: f.validate } : {}),
    });
    return this;
  }

  absent(path: string, notify?: Handler): this {
    this.actions.push({ kind: "absent", path, ...(notify ? { notify } : {}) });
    return this;
  }

  service(unit: string, opts: { noBlock?: boolean } = {}): this {
    this.actions.push({ kind: "service", unit, noBlock: opts.noBlock ?? false });
    return this;
  }

  stopped(unit: string): this {
    this.actions.push({ kind: "stopped", unit });
    return this;
  }

  handlers(): this {
    this.actions.push({ kind: "handlers" });
    return this;
  }

  /** The role's shell roles/<role>/<file>.hbs, rendered with `context`. */
  shell(role: string, file: string, context: object): this {
    this.actions.push({ kind: "shell", template: `${role}/${file}`, source: renderShell(role, file, context).trimEnd() });
    return this;
  }

  wait(seconds: number, what: string, check: ShellFn): this {
    this.actions.push({ kind: "wait", seconds, what, check });
    return this;
  }

  call(fn: ShellFn): this {
    this.actions.push({ kind: "call", fn });
    return this;
  }
}

/** The handler as the prelude's pgc_handlers reads it: "restart:etcd", "run:pgc_fw_load:unit", … */
export function handlerWord(h: Handler): string {
  switch (h.kind) {
    case "daemon-reload": return "daemon-reload";
    case "restart": return `restart:${h.unit}`;
    case "reload": return `reload:${h.unit}`;
    case "run": return `run:${h.fn.name}${h.unit ? `:${h.unit}` : ""}`;
  }
}

/** The shell functions an action relies on. */
function referencedFns(a: Action): ShellFn[] {
  const fromHandler = (h: Handler | undefined) => (h?.kind === "run" ? [h.fn] : []);
  switch (a.kind) {
    case "file": return a.notify.flatMap(fromHandler);
    case "absent": return fromHandler(a.notify);
    case "wait": return [a.check];
    case "call": return [a.fn];
    default: return [];
  }
}

const DEFINITION = /^[ \t]*(pgc_[a-z0-9_]+)[ \t]*\(\)/gm;
const PGC_WORD = /(^|[^A-Za-z0-9_$.{/-])(pgc_[a-z0-9_]+)\b/g;
// A shell variable named pgc_*: read into, expanded, or assigned.
const VARIABLE = /(?:\$\{?|\bread -r )(pgc_[a-z0-9_]+)|\b(pgc_[a-z0-9_]+)=/g;

/** Functions a shell source defines (`name() {`). */
export function definedFunctions(source: string): Set<string> {
  return new Set([...source.matchAll(DEFINITION)].map((m) => m[1]));
}

/**
 * Checks a step's shell references when the plan compiles, so that a renamed or missing shell
 * function fails compile() naming the step, not a run on a host:
 * - every typed reference (handler, wait, call) names a function defined by the template it
 *   says it comes from, and that template's shell (or the prelude) is part of this step;
 * - every pgc_* word the step's shell uses as a command is defined by the step's shell.
 */
export function checkShellReferences(stepId: string, actions: Action[], prelude: string): void {
  const libs = new Map<string, Set<string>>([["prelude", definedFunctions(prelude)]]);
  for (const a of actions) if (a.kind === "shell") libs.set(a.template, new Set([...(libs.get(a.template) ?? []), ...definedFunctions(a.source)]));
  const defined = new Set([...libs.values()].flatMap((s) => [...s]));
  const problems: string[] = [];
  for (const a of actions) {
    for (const fn of referencedFns(a)) {
      const lib = libs.get(fn.lib);
      if (!lib) problems.push(`${a.kind} refers to ${fn.name} of ${fn.lib}, but the step does not carry ${fn.lib}`);
      else if (!lib.has(fn.name)) problems.push(`${a.kind} refers to ${fn.name}, which ${fn.lib} does not define`);
    }
  }
  const shell = [prelude, ...actions.filter((a) => a.kind === "shell").map((a) => (a as { source: string }).source)].join("\n");
  const variables = new Set([...shell.matchAll(VARIABLE)].map((m) => m[1] ?? m[2]));
  const used = new Set([...shell.matchAll(PGC_WORD)].map((m) => m[2]));
  for (const w of used) if (!defined.has(w) && !variables.has(w)) problems.push(`its shell runs ${w}, which no shell of the step defines`);
  if (problems.length) throw new Error(`step ${stepId}:\n` + problems.map((p) => `  - ${p}`).join("\n"));
}
