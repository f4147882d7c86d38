// Local hosts: Debian 12 systemd-nspawn containers that behave like separate servers (own IP on
// a bridge, systemd as PID 1, sshd), booted from one cached debootstrapped root with a per-node
// overlay. Packages reach them only through an apt proxy on this machine.
// Built once and reused; leftovers of a killed run are checked, repaired or removed.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { sh, ok, run, CommandError } from "./exec";
import type { ClusterSpec } from "../model/config";
import { ipInCidr } from "../model/cidr";
import { aptCacherRemaps, debianMirrors, nodeSourcesList, readAptSources, viaProxy, type DebianMirrors } from "./mirror";

/** The only range local hosts may use (and the only one ever contacted). */
export const LOCAL_RANGE = "10.213.0.0/24";
export const HOST_IP = "10.213.0.1";
export const BRIDGE = "pgc-br0";
export const ROOT = process.env.PGCLUSTER_LOCAL_ROOT ?? "/var/lib/pgcluster-local";
const BASE = path.join(ROOT, "base");
const APT_CACHE = path.join(ROOT, "apt-cache");
const LOGS = path.join(ROOT, "logs");
const LAUNCHER = path.join(__dirname, "node-launcher.sh");
/** Bump when the base recipe changes: an old base is then rebuilt, not trusted. */
const BASE_RECIPE = "bookworm-minbase-v1";
const BASE_PACKAGES = "systemd,systemd-sysv,dbus,openssh-server,python3,iproute2,iputils-ping,ca-certificates,sudo,procps,less,curl,gnupg,lsb-release,netbase,libnss-myhostname";
const HOST_PACKAGES = ["systemd-container", "debootstrap", "apt-cacher-ng", "openssh-client", "iproute2", "curl"];

export interface LocalNode {
  name: string;
  address: string;
}

export interface LocalHostsOptions {
  /** Public key allowed to log in as root on every node. */
  authorizedKey: string;
  /** Identifies the state (secrets, PKI) the nodes were built with. Nodes of another state are rebuilt. */
  stateId: string;
  log: (line: string) => void;
}

export function localNodes(spec: ClusterSpec): LocalNode[] {
  return spec.hosts.map((h) => {
    if (!h.address || !ipInCidr(h.address, LOCAL_RANGE) || h.address === HOST_IP)
      throw new Error(`local host ${h.name} has address ${h.address}; local hosts must use ${LOCAL_RANGE} (not ${HOST_IP}, the bridge)`);
    return { name: h.name, address: h.address };
  });
}

const nodeDir = (n: string) => path.join(ROOT, "nodes", n);
const pidFile = (n: string) => path.join(nodeDir(n), "pid");

function cgroupDirs(n: string): string[] {
  // cgroup v1 hybrid (this kind of machine): name=systemd + unified; pure v2: one tree.
  if (fs.existsSync("/sys/fs/cgroup/systemd")) return ["/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified"].filter(fs.existsSync).map((c) => path.join(c, "pgcluster", n));
  return [path.join("/sys/fs/cgroup", "pgcluster", n)];
}

/**
 * On a cgroup v1 machine the cpu controller is a tree of its own, where every node's processes
 * would compete one by one with the test's: hundreds of them against the one process that runs
 * the clients and probes, which then stalled for seconds while the nodes were busy (a client's
 * timeout fired with its answer waiting). All nodes share one cpu group instead: together they
 * weigh what one process of this machine does, as the cluster would on machines of its own.
 * (On cgroup v2 the nodes' own cgroups already group them.)
 */
const CPU_GROUP = "/sys/fs/cgroup/cpu/pgcluster";
function cpuGroup(): string[] {
  if (!fs.existsSync("/sys/fs/cgroup/cpu/cgroup.procs")) return [];
  fs.mkdirSync(CPU_GROUP, { recursive: true });
  return [CPU_GROUP];
}

export function requireRoot(): void {
  if (process.getuid?.() !== 0) throw new Error("local hosts need root (systemd-nspawn, bridges, mounts); run as root");
}

/** Install what this machine needs, without letting package scripts start daemons. */
export function ensureHostPackages(log: (l: string) => void): void {
  const missing = HOST_PACKAGES.filter((p) => !ok("dpkg-query", ["-W", "-f=${Status}", p]) || !sh("dpkg-query", ["-W", "-f=${Status}", p]).stdout.includes("install ok installed"));
  if (!missing.length) return;
  log(`installing on this machine: ${missing.join(" ")}`);
  const policy = "/usr/sbin/policy-rc.d";
  const ours = !fs.existsSync(policy);
  // apt-cacher-ng's postinst would start a system-wide daemon on :3142; we run our own.
  if (ours) fs.writeFileSync(policy, "#!/bin/sh\nexit 101\n", { mode: 0o755 });
  try {
    sh("apt-get", ["update", "-q"], { allowFail: true });
    sh("apt-get", ["install", "-y", "-q", "--no-install-recommends", ...missing], { timeoutMs: 600_000 });
  } finally {
    if (ours) fs.rmSync(policy, { force: true });
  }
}

function ensureBridge(log: (l: string) => void): void {
  if (!ok("ip", ["link", "show", BRIDGE])) {
    sh("ip", ["link", "add", BRIDGE, "type", "bridge"]);
    log(`bridge ${BRIDGE} created`);
  }
  const addrs = sh("ip", ["-o", "-4", "addr", "show", "dev", BRIDGE]).stdout;
  if (!addrs.includes(`${HOST_IP}/24`)) {
    sh("ip", ["addr", "flush", "dev", BRIDGE]);
    sh("ip", ["addr", "add", `${HOST_IP}/24`, "dev", BRIDGE]);
  }
  sh("ip", ["link", "set", BRIDGE, "up"]);
}

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

function readPid(file: string): number | undefined {
  const v = fs.existsSync(file) ? Number(fs.readFileSync(file, "utf8").trim()) : NaN;
  return Number.isInteger(v) && v > 0 ? v : undefined;
}

/** Our process, by pid file and command line (a recycled PID is not ours). */
function ourProcess(file: string, mustContain: string): number | undefined {
  const pid = readPid(file);
  if (!pid || !alive(pid)) return undefined;
  try {
    const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ");
    return cmd.includes(mustContain) ? pid : undefined;
  } catch { return undefined; }
}

async function ensureAptProxy(mirrors: DebianMirrors, log: (l: string) => void): Promise<void> {
  const dir = path.join(ROOT, "acng");
  fs.mkdirSync(path.join(APT_CACHE), { recursive: true });
  fs.mkdirSync(path.join(dir, "log"), { recursive: true });
  const conf = [
    `CacheDir: ${APT_CACHE}`,
    `LogDir: ${dir}/log`,
    "SupportDir: /usr/lib/apt-cacher-ng",
    "Port: 3142",
    `BindAddress: 127.0.0.1 ${HOST_IP}`,
    ...aptCacherRemaps(mirrors),
    "PassThroughPattern: .*",
    // Nodes refresh their lists together; within this window they share one cached answer
    // instead of racing to refresh the same index file (seen to stall a client).
    "FreshIndexMaxAge: 300",
    "",
  ].join("\n");
  const confFile = path.join(dir, "acng.conf");
  const changed = !fs.existsSync(confFile) || fs.readFileSync(confFile, "utf8") !== conf;
  fs.writeFileSync(confFile, conf);
  // apt-cacher-ng runs as its own user; it must own its cache.
  sh("chown", ["-R", "apt-cacher-ng:apt-cacher-ng", APT_CACHE, dir], { allowFail: true });
  const running = ourProcess(path.join(dir, "pid"), "apt-cacher-ng");
  if (running && !changed) return;
  if (running) {
    log("apt proxy configuration changed: restarting it");
    // The new one can only bind :3142 once the old one has let go of it (seen: a restart that
    // did not wait left no proxy at all, and every node's apt-get update failed).
    process.kill(running, "SIGTERM");
    try { await waitFor(`the old apt proxy (pid ${running}) to exit`, 10, () => !alive(running)); } catch {
      try { process.kill(running, "SIGKILL"); } catch { /* gone */ }
      await waitFor(`the old apt proxy (pid ${running}) to die`, 5, () => !alive(running));
    }
  }
  const logFile = path.join(LOGS, "apt-cacher-ng.log");
  const out = fs.openSync(logFile, "a");
  const { spawn } = require("child_process") as typeof import("child_process");
  const p = spawn("/usr/sbin/apt-cacher-ng", ["-c", dir, "ForeGround=1"], { detached: true, stdio: ["ignore", out, out] });
  p.unref();
  fs.writeFileSync(path.join(dir, "pid"), String(p.pid));
  // Serving, not just started: a proxy that failed to bind would otherwise show up later as
  // "Unable to locate package" on every node.
  try {
    await waitFor(`the apt proxy to answer on ${HOST_IP}:3142`, 20, () => !!p.pid && alive(p.pid) && aptProxyAnswers());
  } catch (e) {
    const tail = fs.readFileSync(logFile, "utf8").trim().split("\n").slice(-5).join("\n");
    throw new Error(`${(e as Error).message}; apt-cacher-ng's last lines (${logFile}):\n${tail}`);
  }
  log(`apt proxy (apt-cacher-ng) started on ${HOST_IP}:3142, pid ${p.pid}`);
}

/** apt-cacher-ng answers HTTP on the bridge address (any status: it is listening). */
function aptProxyAnswers(): boolean {
  return sh("curl", ["-s", "-o", "/dev/null", "-m", "2", "-w", "%{http_code}", `http://${HOST_IP}:3142/`], { allowFail: true }).stdout.trim() !== "000";
}

async function waitFor(what: string, seconds: number, probe: () => Promise<boolean> | boolean, everyMs = 300): Promise<void> {
  const end = Date.now() + seconds * 1000;
  while (Date.now() < end) {
    if (await probe()) return;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out after ${seconds} s waiting for ${what}`);
}

async function ensureBase(mirrors: DebianMirrors, log: (l: string) => void): Promise<void> {
  const marker = path.join(BASE, ".pgcluster-base");
  const sane = () => ["usr/bin/systemctl", "usr/sbin/sshd", "usr/bin/python3", "etc/os-release"].every((f) => fs.existsSync(path.join(BASE, f)));
  if (fs.existsSync(marker) && fs.readFileSync(marker, "utf8").trim() === BASE_RECIPE && sane()) return;
  if (fs.existsSync(BASE)) {
    const users = fs.readdirSync(path.join(ROOT, "nodes"), { withFileTypes: true }).filter((d) => d.isDirectory());
    if (users.length) throw new Error(`base root ${BASE} is incomplete or outdated but nodes still use it; run 'npm run local:down' first`);
    log(`base root ${BASE} is incomplete or outdated: rebuilding it`);
    fs.rmSync(BASE, { recursive: true, force: true });
  }
  const tmp = `${BASE}.partial`;
  fs.rmSync(tmp, { recursive: true, force: true }); // a half-built one from a killed run
  log("building the Debian 12 base root with debootstrap (once; 2-3 min)");
  const t0 = Date.now();
  await waitFor("apt proxy on :3142", 20, () => ok("curl", ["-s", "-o", "/dev/null", `http://127.0.0.1:3142/`]) || sh("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:3142/"], { allowFail: true }).stdout !== "000");
  const r = await run("debootstrap", ["--variant=minbase", `--include=${BASE_PACKAGES}`, "bookworm", tmp, viaProxy(mirrors.main, "127.0.0.1:3142")]);
  if (r.code !== 0) throw new Error(`debootstrap failed:\n${r.out.trim().split("\n").slice(-15).join("\n")}`);
  for (const f of fs.readdirSync(path.join(tmp, "etc/ssh")).filter((f) => f.startsWith("ssh_host_"))) fs.rmSync(path.join(tmp, "etc/ssh", f));
  fs.writeFileSync(path.join(tmp, "etc/machine-id"), "");
  // Real-VM sources: the nodes reach them through the apt proxy the stack config names.
  fs.writeFileSync(path.join(tmp, "etc/apt/sources.list"), nodeSourcesList(mirrors));
  fs.writeFileSync(path.join(tmp, "etc/ssh/sshd_config.d/pgcluster-local.conf"), "PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n");
  sh("chroot", [tmp, "systemctl", "enable", "systemd-networkd", "ssh"]);
  // Nothing to synchronise or wait for in a container on a bridge.
  sh("chroot", [tmp, "systemctl", "mask", "systemd-networkd-wait-online.service", "getty@tty1.service", "console-getty.service"], { allowFail: true });
  fs.writeFileSync(path.join(tmp, ".pgcluster-base"), BASE_RECIPE + "\n");
  fs.renameSync(tmp, BASE);
  log(`base root ready in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
}

function mounted(dir: string): boolean {
  return ok("mountpoint", ["-q", dir]);
}

/** Create a node's overlay root and identity (hostname, machine-id, host keys, address). */
function ensureNodeRoot(node: LocalNode, mirrors: DebianMirrors, opts: LocalHostsOptions): string {
  const d = nodeDir(node.name);
  const root = path.join(d, "root");
  const owner = path.join(d, "owner");
  for (const sub of ["upper", "work", "root"]) fs.mkdirSync(path.join(d, sub), { recursive: true });
  if (!mounted(root)) sh("mount", ["-t", "overlay", "overlay", "-o", `lowerdir=${BASE},upperdir=${d}/upper,workdir=${d}/work`, root]);
  if (!fs.existsSync(path.join(d, ".identity"))) {
    fs.writeFileSync(path.join(root, "etc/hostname"), `${node.name}\n`);
    fs.writeFileSync(path.join(root, "etc/machine-id"), crypto.randomBytes(16).toString("hex") + "\n");
    sh("chroot", [root, "ssh-keygen", "-A"]);
    fs.writeFileSync(path.join(root, "etc/hosts"), `127.0.0.1 localhost\n127.0.1.1 ${node.name}\n`);
    fs.writeFileSync(path.join(d, ".identity"), node.address + "\n");
  }
  // The mirror may have changed since the base root was built (apt.mirror, this machine's sources).
  const sources = path.join(root, "etc/apt/sources.list");
  if (fs.readFileSync(sources, "utf8") !== nodeSourcesList(mirrors)) fs.writeFileSync(sources, nodeSourcesList(mirrors));
  fs.mkdirSync(path.join(root, "etc/systemd/network"), { recursive: true });
  // A static address that stays when the link drops, as on a server with a fixed IP: a cut
  // link (partition test) must not also unconfigure the host.
  fs.writeFileSync(path.join(root, "etc/systemd/network/10-host0.network"), [
    "[Match]", "Name=host0", "[Network]", `Address=${node.address}/24`, `Gateway=${HOST_IP}`,
    "# No IPv6 autoconfiguration: it stalls boots waiting for router advertisements.",
    "LinkLocalAddressing=no", "IPv6AcceptRA=no", "ConfigureWithoutCarrier=yes", "IgnoreCarrierLoss=yes", "",
  ].join("\n"));
  fs.mkdirSync(path.join(root, "root/.ssh"), { recursive: true, mode: 0o700 });
  fs.writeFileSync(path.join(root, "root/.ssh/authorized_keys"), opts.authorizedKey.trim() + "\n", { mode: 0o600 });
  fs.writeFileSync(owner, opts.stateId + "\n");
  return root;
}

export function hostKey(node: string): string {
  return fs.readFileSync(path.join(nodeDir(node), "root/etc/ssh/ssh_host_ed25519_key.pub"), "utf8").trim().split(" ").slice(0, 2).join(" ");
}

export function nodeRunning(n: string): number | undefined {
  return ourProcess(pidFile(n), "node-launcher.sh");
}

/** PID 1 of the node (its systemd), from the node's cgroup. */
export function nodeInitPid(n: string): number | undefined {
  for (const cg of cgroupDirs(n)) {
    const f = path.join(cg, "payload/init.scope/cgroup.procs");
    if (fs.existsSync(f)) {
      const pid = Number(fs.readFileSync(f, "utf8").split("\n")[0]);
      if (pid > 0) return pid;
    }
  }
  return undefined;
}

function cleanCgroups(n: string): void {
  for (const cg of cgroupDirs(n)) {
    if (!fs.existsSync(cg)) continue;
    // Deepest first; a cgroup with processes left cannot be removed and stays (reported by boot).
    sh("find", [cg, "-depth", "-type", "d", "-exec", "rmdir", "{}", ";"], { allowFail: true });
  }
}

function cgroupEmpty(n: string): boolean {
  return cgroupDirs(n).every((cg) => {
    if (!fs.existsSync(cg)) return true;
    const out = sh("find", [cg, "-name", "cgroup.procs", "-exec", "cat", "{}", "+"], { allowFail: true }).stdout;
    return out.trim() === "";
  });
}

function bootNode(node: LocalNode, log: (l: string) => void): void {
  cleanCgroups(node.name);
  for (const cg of cgroupDirs(node.name)) {
    fs.mkdirSync(cg, { recursive: true });
    if (fs.readFileSync(path.join(cg, "cgroup.procs"), "utf8").trim())
      throw new Error(`${node.name}: cgroup ${cg} still holds processes of an earlier run; stop them (npm run local:down) first`);
  }
  const out = fs.openSync(path.join(LOGS, `${node.name}.console`), "a");
  const { spawn } = require("child_process") as typeof import("child_process");
  const p = spawn("bash", [LAUNCHER, node.name, path.join(nodeDir(node.name), "root"), BRIDGE, ...cgroupDirs(node.name), ...cpuGroup()], { detached: true, stdio: ["ignore", out, out] });
  p.unref();
  fs.writeFileSync(pidFile(node.name), String(p.pid));
  log(`${node.name}: booting (${node.address})`);
}

/** Build (if missing) and boot every node; returns once each answers SSH with systemd running. */
export async function hostsUp(spec: ClusterSpec, opts: LocalHostsOptions & { sshReady: (n: LocalNode) => Promise<boolean> }): Promise<LocalNode[]> {
  requireRoot();
  const nodes = localNodes(spec);
  const mirrors = debianMirrors(spec.apt.mirror, readAptSources());
  opts.log(`Debian mirror (from ${mirrors.source}): ${mirrors.main.url}${mirrors.security ? `, security: ${mirrors.security.url}` : ""}`);
  if (!mirrors.security) opts.log("warning: no source for bookworm-security on this machine: the local hosts get no security updates");
  for (const d of [ROOT, LOGS, path.join(ROOT, "nodes")]) fs.mkdirSync(d, { recursive: true });
  ensureHostPackages(opts.log);
  ensureBridge(opts.log);
  await ensureAptProxy(mirrors, opts.log);
  await ensureBase(mirrors, opts.log);
  for (const n of nodes) {
    const owner = path.join(nodeDir(n.name), "owner");
    if (fs.existsSync(nodeDir(n.name)) && (!fs.existsSync(owner) || fs.readFileSync(owner, "utf8").trim() !== opts.stateId)) {
      // Its data was made with secrets and certificates this checkout does not hold.
      opts.log(`${n.name}: built for another local state (not in this checkout's .pgcluster/): rebuilding it`);
      await stopNode(n.name, opts.log);
      destroyNode(n.name, opts.log);
    }
    ensureNodeRoot(n, mirrors, opts);
    if (!nodeRunning(n.name)) bootNode(n, opts.log);
  }
  await Promise.all(nodes.map((n) => waitFor(`${n.name} (${n.address}) to boot and answer SSH`, 90, () => opts.sshReady(n))));
  return nodes;
}

async function stopNode(n: string, log: (l: string) => void): Promise<void> {
  const launcher = nodeRunning(n);
  if (launcher) {
    const init = nodeInitPid(n);
    // SIGRTMIN+4 to systemd = "poweroff": a clean shutdown, then the launcher exits.
    if (init) try { process.kill(init, 34 + 4); } catch { /* already gone */ }
    try { await waitFor(`${n} to power off`, 30, () => !alive(launcher)); } catch {
      const i = nodeInitPid(n);
      if (i) try { process.kill(i, "SIGKILL"); } catch { /* gone */ }
      try { process.kill(launcher, "SIGKILL"); } catch { /* gone */ }
      await waitFor(`${n} to die`, 10, () => !alive(launcher));
    }
    log(`${n}: stopped`);
  }
  fs.rmSync(pidFile(n), { force: true });
}

function destroyNode(n: string, log: (l: string) => void): void {
  const d = nodeDir(n);
  if (mounted(path.join(d, "root"))) sh("umount", [path.join(d, "root")]);
  cleanCgroups(n);
  fs.rmSync(d, { recursive: true, force: true });
  log(`${n}: removed`);
}

/** Stop every node and remove what `up` made: nodes, mounts, cgroups, bridge, apt proxy. Keeps the base root and apt cache. */
export async function hostsDown(log: (l: string) => void, opts: { keepNodes?: boolean } = {}): Promise<void> {
  requireRoot();
  const names = fs.existsSync(path.join(ROOT, "nodes")) ? fs.readdirSync(path.join(ROOT, "nodes")) : [];
  await Promise.all(names.map((n) => stopNode(n, log)));
  if (!opts.keepNodes) for (const n of names) destroyNode(n, log);
  const acng = ourProcess(path.join(ROOT, "acng", "pid"), "apt-cacher-ng");
  if (acng) { process.kill(acng, "SIGTERM"); log("apt proxy stopped"); }
  fs.rmSync(path.join(ROOT, "acng", "pid"), { force: true });
  for (const c of ["/sys/fs/cgroup/systemd/pgcluster", "/sys/fs/cgroup/unified/pgcluster", "/sys/fs/cgroup/pgcluster", CPU_GROUP]) if (fs.existsSync(c)) sh("rmdir", [c], { allowFail: true });
  if (ok("ip", ["link", "show", BRIDGE])) { sh("ip", ["link", "del", BRIDGE]); log(`bridge ${BRIDGE} removed`); }
}

/** Pull the plug: SIGKILL the node's PID 1 (its whole PID namespace dies, no clean shutdown). */
export function killNode(n: string): void {
  const init = nodeInitPid(n);
  if (!init) throw new CommandError(`${n} is not running`);
  process.kill(init, "SIGKILL");
}

/** Boot a stopped (or killed) node again and wait until it answers `ready`. */
export async function startNode(spec: ClusterSpec, name: string, ready: () => Promise<boolean>, log: (l: string) => void = () => {}): Promise<void> {
  requireRoot();
  const node = localNodes(spec).find((n) => n.name === name);
  if (!node) throw new Error(`no local host ${name}`);
  // A killed or powered-off node's processes may still be winding down.
  await waitFor(`${name}'s previous instance to exit`, 30, () => !nodeRunning(name) && cgroupEmpty(name));
  bootNode(node, log);
  // Once a second: each try is an SSH login into a booting node, and three nodes booting at
  // once on two cores were seen starving everything else (the split-brain probe's rounds too).
  await waitFor(`${name} to boot and answer SSH`, 90, ready, 1000);
}

/** Clean shutdown of one node (systemd poweroff), waiting until it is gone. */
export async function poweroffNode(name: string, log: (l: string) => void = () => {}): Promise<void> {
  await stopNode(name, log);
}

/** The host side of the node's network link (nspawn names it vb-<machine>). */
export function nodeLink(name: string): string {
  return `vb-${name}`.slice(0, 15);
}

/** Cut (or restore) the node's only network link: a partition, the node itself keeps running. */
export function setNodeLink(name: string, up: boolean): void {
  sh("ip", ["link", "set", nodeLink(name), up ? "up" : "down"]);
}

/** Run a command inside a running node's namespaces (works while its network is cut). */
export function nodeExec(name: string, argv: string[], timeoutMs = 5000): Promise<{ code: number; out: string }> {
  const init = nodeInitPid(name);
  if (!init) return Promise.resolve({ code: -1, out: `${name} is not running` });
  return run("nsenter", ["-t", String(init), "-m", "-u", "-i", "-n", "-p", "--", ...argv], { timeoutMs });
}

/** Whether a local host of this name exists (built, running or not). */
export function nodeExists(name: string): boolean {
  return fs.existsSync(nodeDir(name));
}

/**
 * A host that left the inventory: powered off (cleanly, else killed) and its root, mounts and
 * cgroups removed. Asynchronous where it takes long (its disk is hundreds of MB): a caller that
 * measures a write load in the same process must not see its own stall as an outage.
 */
export async function removeNode(name: string, log: (l: string) => void = () => {}): Promise<void> {
  requireRoot();
  await stopNode(name, log);
  const d = nodeDir(name);
  if (mounted(path.join(d, "root"))) {
    const r = await run("umount", [path.join(d, "root")]);
    if (r.code !== 0) throw new Error(`${name}: umount ${path.join(d, "root")}: ${r.out.trim()}`);
  }
  cleanCgroups(name);
  await fs.promises.rm(d, { recursive: true, force: true });
  log(`${name}: removed`);
}
