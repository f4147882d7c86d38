// Running host commands for the local hosts: argv only (no shell strings), clear errors.
import { spawnSync, spawn, type SpawnOptions } from "child_process";

export class CommandError extends Error {}

export function sh(cmd: string, args: string[], opts: { input?: string; allowFail?: boolean; timeoutMs?: number } = {}): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { input: opts.input, encoding: "utf8", timeout: opts.timeoutMs, maxBuffer: 64 << 20 });
  if (r.error) {
    if ((r.error as NodeJS.ErrnoException).code === "ENOENT") throw new CommandError(`${cmd} is not installed`);
    throw new CommandError(`${cmd} ${args.join(" ")}: ${r.error.message}`);
  }
  const res = { code: r.status ?? -1, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
  if (res.code !== 0 && !opts.allowFail)
    throw new CommandError(`${cmd} ${args.join(" ")} exited ${res.code}: ${(res.stderr || res.stdout).trim().split("\n").slice(-5).join("\n")}`);
  return res;
}

export function ok(cmd: string, args: string[]): boolean {
  return sh(cmd, args, { allowFail: true }).code === 0;
}

/** Run and collect output asynchronously (parallel work: boots, SSH steps). */
export function run(cmd: string, args: string[], opts: SpawnOptions & { input?: string; timeoutMs?: number } = {}): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { ...opts, stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    p.stdout!.on("data", (d) => (out += d));
    p.stderr!.on("data", (d) => (out += d));
    const timer = opts.timeoutMs ? setTimeout(() => p.kill("SIGKILL"), opts.timeoutMs) : undefined;
    p.on("error", (e) => { if (timer) clearTimeout(timer); reject(e); });
    p.on("close", (code) => { if (timer) clearTimeout(timer); resolve({ code: code ?? -1, out }); });
    p.stdin!.on("error", () => {}); // the remote end may close early (failed connection)
    p.stdin!.end(opts.input ?? "");
  });
}
