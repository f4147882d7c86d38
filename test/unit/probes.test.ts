// The chaos probes' readings of what the host can see: a node's postmaster.pid (the split-brain
// probe) and a balancer's routing trie (the floating-address watch), and the double-hold bound.
import { strict as assert } from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { blindWindows, postmasterFile, type Observation } from "../../local/splitBrainProbe";
import { doubleHolds, exitingFromStat, localAddresses } from "../../local/chaos";

describe("chaos probes: what the host reads", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgc-probe-"));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  // PostgreSQL's lock file: pid, data directory, start time, port, socket dir, listen address,
  // shared memory key, status ("ready   " and "standby " are padded to the same width).
  const pidFile = (status?: string) => {
    const f = path.join(dir, `postmaster.pid.${status?.trim() ?? "none"}`);
    fs.writeFileSync(f, ["4242", "/var/lib/postgresql/15/main", "1764280000", "5432", "/var/run/postgresql", "*", "  5432001    32768", ...(status === undefined ? [] : [status])].join("\n") + "\n");
    return f;
  };

  it("postmaster.pid: starting and stopping refuse clients; ready and standby serve; no status line or no file is unknown", () => {
    assert.equal(postmasterFile(pidFile("starting"))?.status, "starting");
    assert.equal(postmasterFile(pidFile("stopping"))?.status, "stopping");
    assert.equal(postmasterFile(pidFile("ready   "))?.status, "serving");
    assert.equal(postmasterFile(pidFile("standby "))?.status, "serving");
    assert.equal(postmasterFile(pidFile())?.status, undefined);
    assert.equal(postmasterFile(path.join(dir, "absent")), undefined);
  });

  it("postmaster.pid names its postmaster as <pid>/<start time>, what the probe's question reads there too", () => {
    assert.deepEqual(postmasterFile(pidFile("standby ")), { status: "serving", pm: "4242/1764280000" });
  });

  describe("blind windows: what one postmaster's own answers account for", () => {
    const P = "4242/1764280000", Q = "4300/1764280100";
    const psql = (lo: number, hi: number, state: "writable" | "read-only", pm = P): Observation => ({ lo, hi, state, seen: { pm, phase: state === "writable" ? "primary" : "recovery" } });
    const file = (at: number, phase: "starting" | "stopping", pm = P): Observation => ({ lo: at, hi: at, state: "not-serving", seen: { pm, phase } });
    const gap = (obs: Observation[], from: number, end = 10_000) => blindWindows(obs, 0, end).find((w) => w.from === from)!;

    it("a long wait for an answer between two standby answers of the same postmaster: never writable in it", () => {
      // asked at 1000, answered at 2800 (a slow session); the next one asked after 2800
      const obs = [psql(800, 1000, "read-only"), psql(1000, 2800, "read-only"), psql(2800, 3000, "read-only")];
      assert.deepEqual(gap(obs, 1000), { from: 1000, to: 2800, ms: 1800, known: "not-writable" });
    });

    it("starting, then a standby answer: never writable before it (a postmaster leaves recovery only once)", () => {
      const obs = [file(500, "starting"), psql(600, 2400, "read-only"), psql(2400, 2500, "read-only")];
      assert.equal(gap(obs, 500).known, "not-writable");
    });

    it("a standby answer, then a primary answer: promoted at an unknown instant, so the gap stays blind", () => {
      const obs = [psql(0, 100, "read-only"), psql(100, 2000, "writable"), psql(2000, 2100, "writable")];
      assert.equal(gap(obs, 100).known, undefined);
    });

    it("primary before and after (same postmaster): writable throughout; primary then stopping: blind", () => {
      assert.equal(gap([psql(0, 100, "writable"), psql(100, 2000, "writable"), psql(2000, 2100, "writable")], 100).known, "writable");
      assert.equal(gap([psql(0, 100, "writable"), file(2000, "stopping"), file(2200, "stopping")], 100).known, undefined);
    });

    it("another postmaster after the gap (a restart in it), or no answer after it: blind", () => {
      assert.equal(gap([psql(0, 100, "read-only"), psql(100, 2000, "read-only", Q), psql(2000, 2100, "read-only", Q)], 100).known, undefined);
      assert.equal(gap([psql(0, 100, "read-only"), psql(100, 2000, "read-only")], 100).known, undefined);
      // from the last answer to the end of the probe: nothing came after it
      const tail = blindWindows([psql(0, 100, "read-only")], 0, 5000).at(-1)!;
      assert.deepEqual(tail, { from: 100, to: 5000, ms: 4900, known: undefined });
    });

    it("an answer without a postmaster's identity (no process, down) proves nothing across a gap", () => {
      const none: Observation = { lo: 1500, hi: 1500, state: "not-serving" };
      const obs = [psql(0, 100, "read-only"), none, psql(3000, 3100, "read-only", Q)];
      assert.ok(blindWindows(obs, 0, 4000).every((w) => w.known === undefined));
    });
  });

  it("a namespace's own addresses are its /32 host LOCAL leaves (a subnet or broadcast leaf is not)", () => {
    const trie = `Main:
  +-- 0.0.0.0/0 3 0 5
     +-- 10.213.0.0/24 2 0 2
        +-- 10.213.0.0/28 2 0 2
           |-- 10.213.0.0
              /24 link UNICAST
           |-- 10.213.0.8
              /32 host LOCAL
           |-- 10.213.0.10
              /32 host LOCAL
        |-- 10.213.0.255
           /32 link BROADCAST
Local:
  +-- 0.0.0.0/0 3 0 5
     |-- 10.213.0.8
        /32 host LOCAL
`;
    assert.deepEqual([...localAddresses(trie)].sort(), ["10.213.0.10", "10.213.0.8"]);
    assert.equal(localAddresses(trie).has("10.213.0.255"), false);
    assert.equal(localAddresses(trie).has("10.213.0.0"), false);
  });

  it("a double hold is bounded from the sample before it to the sample after it, and runs to the end when it never ends", () => {
    const one = (at: number, before: number, ...holders: string[]) => ({ at, before, holders });
    assert.deepEqual(doubleHolds([one(0, 0, "lb1"), one(1000, 950, "lb1", "lb2"), one(1100, 1050, "lb2")], 5000), [{ from: 1000, ms: 150 }]);
    // Two+ holders over several changes count as one hold.
    assert.deepEqual(doubleHolds([one(0, 0, "lb1"), one(1000, 900, "lb1", "lb2"), one(1200, 1150, "lb1", "lb2", "lb3"), one(3000, 2950)], 5000), [{ from: 1000, ms: 2100 }]);
    assert.deepEqual(doubleHolds([one(0, 0, "lb1"), one(1000, 990, "lb1", "lb2")], 5000), [{ from: 1000, ms: 4010 }]);
    assert.deepEqual(doubleHolds([one(0, 0, "lb1"), one(500, 450), one(900, 850, "lb2")], 5000), []);
  });

  it("a balancer's init that is exiting (PF_EXITING), a zombie or dead holds nothing; a living one is read (its stat line, a comm with spaces and parentheses)", () => {
    const line = (state: string, flags: number) => `6640 (systemd (x) y) ${state} 6600 6640 6640 0 -1 ${flags} 100 0 0 0 5 3 0 0 20 0 1 0 123 456 789`;
    assert.equal(exitingFromStat(line("S", 0x400100)), false);
    assert.equal(exitingFromStat(line("R", 0x400104)), true, "PF_EXITING set");
    assert.equal(exitingFromStat(line("D", 0x404)), true);
    assert.equal(exitingFromStat(line("Z", 0x400100)), true);
    assert.equal(exitingFromStat(line("X", 0)), true);
    assert.equal(exitingFromStat(fs.readFileSync(`/proc/${process.pid}/stat`, "utf8")), false, "this process lives");
  });
});
