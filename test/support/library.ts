// The library as a user gets it. `npm pack --json` runs prepack (the build to dist/), writes the
// tarball and lists it: done once per test run and shared (the package test reads the list, the
// example imports "pgcluster" through package.json exports to dist/, the installed test unpacks
// the tarball into a node_modules of its own).
import { execFile, execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PROJECT_ROOT } from "../../model/stackFile";

export interface Packed {
  name: string;
  filename: string;
  files: { path: string; size: number; mode: number }[];
  /** Where the tarball is. */
  tarball: string;
}

let packed: Promise<Packed> | undefined;

export function packLibrary(): Promise<Packed> {
  packed ??= new Promise<Packed>((resolve, reject) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgcluster-pack-"));
    process.once("exit", () => fs.rmSync(dir, { recursive: true, force: true }));
    const env = { ...process.env, npm_config_update_notifier: "false", npm_config_fund: "false", npm_config_audit: "false" };
    execFile("npm", ["pack", "--json", "--pack-destination", dir], { cwd: PROJECT_ROOT, env, maxBuffer: 64 << 20, timeout: 300_000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`npm pack failed (${err.message}):\n${stderr.split("\n").slice(-30).join("\n")}`));
      try {
        const p = (JSON.parse(stdout) as Packed[])[0];
        resolve({ ...p, tarball: path.join(dir, p.filename) });
      } catch (e) {
        reject(new Error(`npm pack --json printed no JSON (${(e as Error).message}): ${stdout.slice(0, 500)}`));
      }
    });
  });
  return packed;
}

/**
 * A user's project with pgcluster installed from the tarball: <dir>/node_modules/pgcluster, its
 * dependencies linked from this checkout's node_modules (as npm would install them). Returns <dir>.
 */
export async function installLibrary(): Promise<string> {
  const { tarball } = await packLibrary();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgcluster-user-"));
  process.once("exit", () => fs.rmSync(dir, { recursive: true, force: true }));
  const into = path.join(dir, "node_modules", "pgcluster");
  fs.mkdirSync(into, { recursive: true });
  execFileSync("tar", ["-xzf", tarball, "-C", into, "--strip-components=1"]);
  const ours = fs.realpathSync(path.join(PROJECT_ROOT, "node_modules"));
  for (const e of fs.readdirSync(ours)) if (e !== "pgcluster" && e !== ".bin") fs.symlinkSync(path.join(ours, e), path.join(dir, "node_modules", e));
  fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify({ name: "a-user-program", private: true, dependencies: { pgcluster: "0.1.0" } }));
  return dir;
}
