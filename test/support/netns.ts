// Network namespaces on the local hosts' bridge: a probe from an address of the test's choosing
// (10.213.0.200-.250, the range the address plan keeps for them) shows what the hosts' firewalls
// admit from there. Probes fail closed: what could not be observed is "unknown", never "closed".
import { spawnSync } from "child_process";
import { BRIDGE } from "../../local/hosts";
import { run } from "../../local/exec";
import { ipInCidr } from "../../model/cidr";

export type ProbeState = "open" | "closed" | "unknown";
export interface ProbeResult { state: ProbeState; detail: string }

/** How long a TCP connect may go unanswered before the port counts as closed (dropped). */
export const CONNECT_TIMEOUT_MS = 3000;

// Runs inside the namespace: connect, and for "pg" also PostgreSQL's SSLRequest and a TLS
// handshake verified against the cluster CA. Prints one JSON line; anything else is "unknown".
const PROBE = `
const net = require("net"), tls = require("tls"), fs = require("fs");
const [host, port, ms, mode, caFile] = process.argv.slice(1);
const out = (state, detail) => { process.stdout.write(JSON.stringify({ state, detail }) + "\\n"); process.exit(0); };
setTimeout(() => out("closed", "no answer within " + ms + " ms"), Number(ms));
const s = net.connect({ host, port: Number(port) });
s.on("error", (e) => out(e.code === "ECONNREFUSED" ? "closed" : "unknown", e.code === "ECONNREFUSED" ? "refused (RST)" : String(e.code || e.message)));
s.on("connect", () => {
  if (mode !== "pg") return out("open", "TCP accepted");
  s.once("data", (d) => {
    if (d[0] !== 0x53) return out("unknown", "TCP accepted, but no TLS offered (answer " + d[0] + ")");
    const t = tls.connect({ socket: s, host, ca: fs.readFileSync(caFile), checkServerIdentity: (h, c) => tls.checkServerIdentity(host, c) });
    t.on("secureConnect", () => out("open", "PostgreSQL TLS handshake verified (" + t.getProtocol() + ")"));
    t.on("error", (e) => out("unknown", "TCP accepted, TLS failed: " + e.message));
  });
  s.write(Buffer.from([0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f]));
});
`;

function ip(args: string[]): { code: number; out: string } {
  const r = spawnSync("ip", args, { encoding: "utf8" });
  if (r.error) throw new Error(`ip ${args.join(" ")}: ${r.error.message} (is iproute2 installed?)`);
  return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}`.trim() };
}

function parseProbe(code: number, out: string): ProbeResult {
  const line = out.trim().split("\n").pop() ?? "";
  try {
    const r = JSON.parse(line) as ProbeResult;
    if (code === 0 && ["open", "closed", "unknown"].includes(r.state)) return r;
  } catch { /* below */ }
  return { state: "unknown", detail: `the probe did not run (exit ${code}): ${out.trim().split("\n").slice(-2).join(" | ")}` };
}

/** A TCP (or PostgreSQL-TLS) probe from this machine's own network (no namespace). */
export async function probeFromHere(host: string, port: number, opts: { pg?: boolean; caFile?: string } = {}): Promise<ProbeResult> {
  const r = await run(process.execPath, ["-e", PROBE, host, String(port), String(CONNECT_TIMEOUT_MS), opts.pg ? "pg" : "tcp", opts.caFile ?? ""], { timeoutMs: CONNECT_TIMEOUT_MS + 10_000 }).catch((e: Error) => ({ code: -1, out: e.message }));
  return parseProbe(r.code, r.out);
}

/** A namespace with one address on the bridge (veth pair: one end in it, one on pgc-br0). */
export class ProbeNamespace {
  readonly ns: string;
  private readonly hostIf: string;
  private readonly nsIf: string;

  constructor(readonly address: string) {
    if (!ipInCidr(address, "10.213.0.192/26") || Number(address.split(".")[3]) < 200 || Number(address.split(".")[3]) > 250)
      throw new Error(`${address}: test namespaces use 10.213.0.200-.250 only (the address plan)`);
    const n = address.split(".")[3];
    this.ns = `pgc-probe-${n}`;
    this.hostIf = `pgcprobe${n}h`;
    this.nsIf = `pgcprobe${n}n`;
  }

  create(): void {
    this.remove(); // leftovers of a killed run
    const steps: string[][] = [
      ["netns", "add", this.ns],
      ["link", "add", this.hostIf, "type", "veth", "peer", "name", this.nsIf, "netns", this.ns],
      ["link", "set", this.hostIf, "master", BRIDGE, "up"],
      ["-n", this.ns, "addr", "add", `${this.address}/24`, "dev", this.nsIf],
      ["-n", this.ns, "link", "set", this.nsIf, "up"],
      ["-n", this.ns, "link", "set", "lo", "up"],
    ];
    for (const s of steps) {
      const r = ip(s);
      if (r.code !== 0) throw new Error(`creating probe namespace ${this.ns}: ip ${s.join(" ")}: ${r.out}`);
    }
  }

  /** Removes the namespace and its veth; returns what could not be removed (empty: all gone). */
  remove(): string[] {
    if (ip(["netns", "list"]).out.split("\n").some((l) => l.split(" ")[0] === this.ns)) ip(["netns", "delete", this.ns]);
    // Deleting the namespace deletes the pair; a half-made pair may be left on this side.
    if (ip(["link", "show", this.hostIf]).code === 0) ip(["link", "delete", this.hostIf]);
    const left: string[] = [];
    if (ip(["netns", "list"]).out.split("\n").some((l) => l.split(" ")[0] === this.ns)) left.push(`network namespace ${this.ns}`);
    if (ip(["link", "show", this.hostIf]).code === 0) left.push(`veth ${this.hostIf}`);
    return left;
  }

  /**
   * open: connected (pg: TLS verified); closed: refused, or unanswered within CONNECT_TIMEOUT_MS
   * by a host that is on the link (its MAC address resolved from the namespace, so the silence is
   * a drop, not a broken namespace); unknown: anything not observed.
   */
  async probe(host: string, port: number, opts: { pg?: boolean; caFile?: string } = {}): Promise<ProbeResult> {
    const r = await run("ip", ["netns", "exec", this.ns, process.execPath, "-e", PROBE, host, String(port), String(CONNECT_TIMEOUT_MS), opts.pg ? "pg" : "tcp", opts.caFile ?? ""], { timeoutMs: CONNECT_TIMEOUT_MS + 10_000 }).catch((e: Error) => ({ code: -1, out: e.message }));
    const res = parseProbe(r.code, r.out);
    if (res.state === "closed" && res.detail.startsWith("no answer") && !this.resolved(host))
      return { state: "unknown", detail: `${res.detail}, and ${host}'s MAC address was not resolved from ${this.ns}: its link does not work` };
    return res;
  }

  /** The namespace resolved `host`'s MAC address (ARP answered): both are on the link. */
  resolved(host: string): boolean {
    const r = ip(["-n", this.ns, "neigh", "show", "to", host]);
    return r.code === 0 && /\blladdr\b/.test(r.out) && !/\b(FAILED|INCOMPLETE)\b/.test(r.out);
  }
}
