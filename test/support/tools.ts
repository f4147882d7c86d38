import { spawnSync } from "child_process";
import * as net from "net";

/** Run a host tool the tests depend on; a missing tool fails the test with what to install. */
export function run(cmd: string, args: string[], input?: string): { code: number; out: string } {
  const r = spawnSync(cmd, args, { input, encoding: "utf8" });
  if (r.error && (r.error as NodeJS.ErrnoException).code === "ENOENT")
    throw new Error(`${cmd} is not installed; .ci/run installs it (apt-get install ${aptName[cmd] ?? cmd})`);
  return { code: r.status ?? -1, out: `${r.stdout ?? ""}${r.stderr ?? ""}` };
}

const aptName: Record<string, string> = { patroni: "patroni", haproxy: "haproxy", shellcheck: "shellcheck", openssl: "openssl", pgbackrest: "pgbackrest", promtool: "prometheus", amtool: "prometheus-alertmanager" };

/** A TCP port free on the loopback now (for a server a unit test starts there). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
    s.on("error", reject);
  });
}
