import { strict as assert } from "assert";
import { passed, upgradeVerdicts, verdictTable, UNKNOWN, type UpgradeFigures, type Verdict } from "../../local/upgradeCheck";

const NODES = ["pg1", "pg2", "pg3"];

function snapshot() {
  return {
    leader: "pg1",
    timeline: 3,
    nodes: {
      pg1: { postmasterStart: "2026-11-27 05:39:12.123456+00", role: "leader", state: "running" },
      pg2: { postmasterStart: "2026-11-27 05:39:14.5+00", role: "sync_standby", state: "streaming" },
      pg3: { postmasterStart: "2026-11-27 05:39:15.25+00", role: "replica", state: "streaming" },
    },
  };
}

/** An upgrade that disturbed nothing; each test changes one figure. */
function undisturbed(): UpgradeFigures {
  return {
    nodes: NODES,
    before: snapshot(),
    after: snapshot(),
    load: { acked: 1200, failed: 0, lost: 0, longestGapS: 0.21 },
    apply: { code: 0, changed: 4, seconds: 38.2 },
    reapply: { code: 0, changed: 0, seconds: 4.6 },
  };
}

const failing = (vs: Verdict[]) => vs.filter((v) => !v.ok).map((v) => v.figure);

describe("upgrade check: an existing cluster is not disturbed by the new version", () => {
  it("an undisturbed upgrade passes every verdict (so the failures below are the changed figure's)", () => {
    const vs = upgradeVerdicts(undisturbed());
    assert.deepEqual(failing(vs), []);
    assert.equal(passed(vs), true);
    assert.ok(vs.some((v) => v.figure === "pg3 postmaster start"), "one row per node");
  });

  it("a changed leader fails (a switchover or failover happened)", () => {
    const f = undisturbed();
    f.after.leader = "pg2";
    const vs = upgradeVerdicts(f);
    assert.deepEqual(failing(vs), ["leader"]);
    assert.equal(passed(vs), false);
  });

  it("a changed timeline with the same leader fails (a promotion, e.g. a switchover and back)", () => {
    const f = undisturbed();
    f.after.timeline = 5;
    assert.deepEqual(failing(upgradeVerdicts(f)), ["leader timeline"]);
  });

  it("a restarted postmaster fails, on a replica as on the leader", () => {
    const f = undisturbed();
    f.after.nodes.pg3.postmasterStart = "2026-11-27 06:02:40.1+00";
    const vs = upgradeVerdicts(f);
    assert.deepEqual(failing(vs), ["pg3 postmaster start"]);
    assert.equal(passed(vs), false);
  });

  it("a failed write fails, and so does a lost row", () => {
    const f = undisturbed();
    f.load.failed = 1;
    assert.deepEqual(failing(upgradeVerdicts(f)), ["failed writes"]);
    const g = undisturbed();
    g.load.lost = 2;
    assert.deepEqual(failing(upgradeVerdicts(g)), ["acknowledged rows lost"]);
  });

  it("a load that acknowledged nothing fails: it proved nothing", () => {
    const f = undisturbed();
    f.load.acked = 0;
    assert.deepEqual(failing(upgradeVerdicts(f)), ["writes acknowledged"]);
  });

  it("a second apply that changed something, or an apply that failed, fails", () => {
    const f = undisturbed();
    f.reapply.changed = 1;
    assert.deepEqual(failing(upgradeVerdicts(f)), ["second apply"]);
    const g = undisturbed();
    g.apply.code = 1;
    assert.deepEqual(failing(upgradeVerdicts(g)), ["apply of the new version"]);
  });

  it("a member that does not serve afterwards fails", () => {
    const f = undisturbed();
    f.after.nodes.pg2.state = "starting";
    assert.deepEqual(failing(upgradeVerdicts(f)), ["pg2 member"]);
  });

  it("an unknown value fails and shows as unknown, never as unchanged or zero", () => {
    // Unknown on both sides is not "unchanged".
    const cases: [string, (f: UpgradeFigures) => void, string][] = [
      ["leader", (f) => { f.before.leader = undefined; f.after.leader = undefined; }, "leader"],
      ["timeline", (f) => { f.after.timeline = undefined; }, "leader timeline"],
      ["postmaster start", (f) => { f.before.nodes.pg1.postmasterStart = undefined; f.after.nodes.pg1.postmasterStart = undefined; }, "pg1 postmaster start"],
      ["member missing from a snapshot", (f) => { delete (f.after.nodes as Record<string, unknown>).pg3; }, "pg3 postmaster start"],
      ["failed writes", (f) => { f.load.failed = undefined; }, "failed writes"],
      ["lost rows", (f) => { f.load.lost = undefined; }, "acknowledged rows lost"],
      ["longest gap", (f) => { f.load.longestGapS = undefined; }, "longest gap between acks (s)"],
      ["second apply", (f) => { f.reapply.changed = undefined; }, "second apply"],
    ];
    for (const [what, spoil, figure] of cases) {
      const f = undisturbed();
      spoil(f);
      const vs = upgradeVerdicts(f);
      const v = vs.find((x) => x.figure === figure)!;
      assert.equal(v.ok, false, `${what}: unknown must fail`);
      assert.ok(v.before === UNKNOWN || v.after.includes(UNKNOWN), `${what}: shown as unknown (${v.before} / ${v.after})`);
      assert.equal(passed(vs), false, what);
    }
  });

  it("prints one aligned row per verdict, FAIL where it failed", () => {
    const f = undisturbed();
    f.load.failed = 3;
    const lines = verdictTable(upgradeVerdicts(f)).split("\n");
    assert.equal(lines.length, upgradeVerdicts(f).length + 1);
    assert.match(lines.find((l) => l.startsWith("failed writes"))!, /\s3\s+FAIL$/);
    assert.match(lines.find((l) => l.startsWith("leader "))!, /pg1\s+pg1\s+ok$/);
  });
});
