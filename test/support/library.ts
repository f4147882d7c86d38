// The library as a user gets it: `npm pack --dry-run --json` runs prepack (the build to dist/)
// and lists the tarball. Done once per test run; the package and example tests share it (the
// example imports "pgcluster", which Node resolves through package.json exports to dist/).
import { execFile } from "child_process";
import { PROJECT_ROOT } from "../../infra/stackFile";

export interface Packed {
  name: string;
  files: { path: string; size: number; mode: number }[];
}

let packed: Promise<Packed> | undefined;

export function packLibrary(): Promise<Packed> {
  packed ??= new Promise<Packed>((resolve, reject) => {
    const env = { ...process.env, npm_config_update_notifier: "false", npm_config_fund: "false", npm_config_audit: "false" };
    execFile("npm", ["pack", "--dry-run", "--json"], { cwd: PROJECT_ROOT, env, maxBuffer: 64 << 20, timeout: 300_000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`npm pack --dry-run failed (${err.message}):\n${stderr.split("\n").slice(-30).join("\n")}`));
      try {
        resolve((JSON.parse(stdout) as Packed[])[0]);
      } catch (e) {
        reject(new Error(`npm pack --dry-run --json printed no JSON (${(e as Error).message}): ${stdout.slice(0, 500)}`));
      }
    });
  });
  return packed;
}
