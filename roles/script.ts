// A step's bash program, built from its actions only when a driver sends it: the prelude
// (host-side helpers, roles/lib/prelude.sh), then one line (or here-document) per action.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { shq } from "./quote";
import { handlerWord, type Action } from "./step";

export const PRELUDE = fs.readFileSync(path.join(__dirname, "lib", "prelude.sh"), "utf8");

export function sha256(s: string): string {
  return crypto.createHash("sha256").update(s).digest("hex");
}

function actionLine(a: Action): string {
  switch (a.kind) {
    case "packages": return `pgc_packages ${a.names.map((v) => shq(v)).join(" ")}`;
    case "dir": return `pgc_dir ${[a.path, a.owner, a.group, a.mode].map((v) => shq(v)).join(" ")}`;
    case "file": {
      const content = a.content.endsWith("\n") ? a.content : a.content + "\n";
      const eof = `PGC_EOF_${sha256(content).slice(0, 16)}`;
      const opts = [
        ...(a.secret ? ["--secret"] : []),
        ...a.notify.flatMap((h) => ["--notify", shq(handlerWord(h))]),
        ...(a.validate ? ["--validate", shq(a.validate)] : []),
      ];
      const args = [a.path, a.owner, a.group, a.mode].map((v) => shq(v));
      // Quoted delimiter: the content is taken literally, never expanded by bash. The delimiter
      // is derived from the content's own hash: content holding that line would have to contain
      // its own hash prefix (a 64-bit fixed point), so no content can end the document early.
      return `pgc_file ${[...args, ...opts].join(" ")} <<'${eof}'\n${content}${eof}`;
    }
    case "absent": return `pgc_absent ${shq(a.path)}${a.notify ? ` --notify ${shq(handlerWord(a.notify))}` : ""}`;
    case "service": return `pgc_service ${shq(a.unit)}${a.noBlock ? " --no-block" : ""}`;
    case "stopped": return `pgc_service_stopped ${shq(a.unit)}`;
    case "handlers": return "pgc_handlers";
    case "shell": return a.source;
    case "wait": return `pgc_wait ${a.seconds} ${shq(a.what)} ${a.check.name}`;
    case "call": return a.fn.name;
  }
}

/** The complete program; it may carry secrets, so drivers send it on stdin and keep it secret. */
export function stepScript(step: { id: string; actions: Action[] }): string {
  // The body sits in one { } group: bash parses all of it before running any of it, so a
  // command that reads stdin cannot swallow the rest of a script that arrived on stdin.
  return [
    "#!/bin/bash",
    "set -euo pipefail",
    `PGC_STEP=${shq(step.id)}`,
    "{",
    PRELUDE.trimEnd(),
    ...step.actions.map(actionLine),
    "pgc_handlers",
    "pgc_result",
    "} </dev/null",
    "",
  ].join("\n");
}
