// Builds one step's bash program from the prelude (host-side helpers) and the role's actions.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { shq } from "./quote";

const PRELUDE = fs.readFileSync(path.join(__dirname, "lib", "prelude.sh"), "utf8");

/** Single-quote for bash (refuses NUL, which bash cannot hold). */
export function q(s: string): string {
  return shq(s);
}

export function sha256(s: string): string {
  return crypto.createHash("sha256").update(s).digest("hex");
}

export interface FileAction {
  path: string;
  content: string;
  owner?: string;
  group?: string;
  mode?: string;
  /** Holds a secret: check mode shows no diff of it. */
  secret?: boolean;
  /** Handlers to run when it changes: "restart:etcd", "reload:patroni", "run:fn", "daemon-reload". */
  notify?: string[];
  /** Command run on the new content before it is installed; {} is its path. */
  validate?: string;
}

export class StepScript {
  private readonly parts: string[] = [];

  constructor(readonly id: string) {}

  packages(...names: string[]): this {
    this.parts.push(`pgc_packages ${names.map(q).join(" ")}`);
    return this;
  }

  dir(p: string, owner = "root", group = "root", mode = "0755"): this {
    this.parts.push(`pgc_dir ${[p, owner, group, mode].map(q).join(" ")}`);
    return this;
  }

  file(f: FileAction): this {
    const content = f.content.endsWith("\n") ? f.content : f.content + "\n";
    const eof = `PGC_EOF_${sha256(content).slice(0, 16)}`;
    const opts = [
      ...(f.secret ? ["--secret"] : []),
      ...(f.notify ?? []).flatMap((h) => ["--notify", q(h)]),
      ...(f.validate ? ["--validate", q(f.validate)] : []),
    ];
    const args = [f.path, f.owner ?? "root", f.group ?? "root", f.mode ?? "0644"].map(q);
    // Quoted delimiter: the content is taken literally, never expanded by bash. The delimiter
    // is derived from the content's own hash: content holding that line would have to contain
    // its own hash prefix (a 64-bit fixed point), so no content can end the document early.
    this.parts.push(`pgc_file ${[...args, ...opts].join(" ")} <<'${eof}'\n${content}${eof}`);
    return this;
  }

  absent(p: string, notify?: string): this {
    this.parts.push(`pgc_absent ${q(p)}${notify ? ` --notify ${q(notify)}` : ""}`);
    return this;
  }

  service(unit: string, opts: { noBlock?: boolean } = {}): this {
    this.parts.push(`pgc_service ${q(unit)}${opts.noBlock ? " --no-block" : ""}`);
    return this;
  }

  stopped(unit: string): this {
    this.parts.push(`pgc_service_stopped ${q(unit)}`);
    return this;
  }

  /** Run the handlers notified so far (services restart before later actions rely on them). */
  handlers(): this {
    this.parts.push("pgc_handlers");
    return this;
  }

  /** Host-side shell rendered from a template (waits, SQL, things only the host can decide). */
  sh(snippet: string): this {
    this.parts.push(snippet.trimEnd());
    return this;
  }

  build(): string {
    // The body sits in one { } group: bash parses all of it before running any of it, so a
    // command that reads stdin cannot swallow the rest of a script that arrived on stdin.
    return [
      "#!/bin/bash",
      "set -euo pipefail",
      `PGC_STEP=${q(this.id)}`,
      "{",
      PRELUDE.trimEnd(),
      ...this.parts,
      "pgc_handlers",
      "pgc_result",
      "} </dev/null",
      "",
    ].join("\n");
  }
}
