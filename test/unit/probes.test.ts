// The chaos probes' readings of what the host can see: a node's postmaster.pid (the split-brain
// probe) and a balancer's routing trie (the floating-address watch), and the double-hold bound.
import { strict as assert } from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { postmasterStatus } from "../../local/splitBrainProbe";
import { doubleHolds, localAddresses } from "../../local/chaos";

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
    assert.equal(postmasterStatus(pidFile("starting")), "starting");
    assert.equal(postmasterStatus(pidFile("stopping")), "stopping");
    assert.equal(postmasterStatus(pidFile("ready   ")), "serving");
    assert.equal(postmasterStatus(pidFile("standby ")), "serving");
    assert.equal(postmasterStatus(pidFile()), undefined);
    assert.equal(postmasterStatus(path.join(dir, "absent")), undefined);
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
});
