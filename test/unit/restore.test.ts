// Point-in-time restore (issue #11): the --to grammar (hostile values refused), the time handed
// to PostgreSQL and pgBackRest, the refusals decided before any host is touched, and the
// phases' scripts (bash-valid; the target reaches them quoted, never as code).
import { strict as assert } from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { describeTarget, markerTimeline, parseRestoreTarget, pgbackrestRestoreArgs, pgTime, restoreStep, PHASES } from "../../roles/restore";
import { restorePlan, restoreSteps, RestoreRefused } from "../../local/restore";
import type { RepositoryInfo } from "../../local/backup";
import { stepScript } from "../../roles/script";
import { hostsOf, localSpec, testPki, TEST_SECRETS } from "../support/fixtures";
import { run } from "../support/tools";

const info = (stops: string[]): RepositoryInfo => ({
  stanza: "pglocal", status: "ok",
  backups: stops.map((s, i) => ({ label: `b${i}`, type: "full", start: new Date(Date.parse(s) - 10_000), stop: new Date(s), size: 1, repoSize: 1, walStart: "x", walStop: "y" })),
});

describe("restore: the target", () => {
  it("takes latest or an ISO 8601 time with its zone; refuses everything else, hostile values included", () => {
    assert.deepEqual(parseRestoreTarget("latest"), { kind: "latest" });
    assert.deepEqual(parseRestoreTarget("2026-11-28T03:17:28.253957Z"), { kind: "time", time: "2026-11-28T03:17:28.253957Z" });
    assert.deepEqual(parseRestoreTarget("2026-11-28T04:17:28+01:00"), { kind: "time", time: "2026-11-28T04:17:28+01:00" });
    for (const bad of [undefined, "", "yesterday", "2026-11-28", "2026-11-28 03:17:28", "2026-11-28T03:17:28", "2026-13-45T99:99:99Z",
      "latest; rm -rf /", "2026-11-28T03:17:28Z' --type=immediate", "$(reboot)", "2026-11-28T03:17:28Z\n--delta", "LATEST"]) {
      assert.throws(() => parseRestoreTarget(bad), /--to .*give "latest" or an ISO 8601 time/, JSON.stringify(bad));
    }
  });

  it("hands PostgreSQL and pgBackRest UTC with a space and +00, microseconds kept, whatever zone was given", () => {
    assert.equal(pgTime("2026-11-28T03:17:28.253957Z"), "2026-11-28 03:17:28.253957+00");
    assert.equal(pgTime("2026-11-28T04:17:28.25+01:00"), "2026-11-28 03:17:28.25+00");
    assert.equal(pgTime("2026-01-01T00:30:00-01:00"), "2026-01-01 01:30:00+00");
    assert.deepEqual(pgbackrestRestoreArgs({ kind: "time", time: "2026-11-28T03:17:28Z" }, 7), ["--type=time", "--target=2026-11-28 03:17:28+00", "--target-action=promote", "--target-timeline=7"]);
    assert.deepEqual(pgbackrestRestoreArgs({ kind: "latest" }, undefined), ["--type=default"]);
  });

  it("an interrupted run's marker gives its timeline; anything else gives none", () => {
    assert.equal(markerTimeline("target=time x\ntimeline=12\n"), 12);
    assert.equal(markerTimeline("target=x\ntimeline=latest\n"), undefined);
    assert.equal(markerTimeline(""), undefined);
    assert.equal(markerTimeline("timeline=3; rm -rf /\n"), undefined);
  });
});

describe("restore: the plan, decided before any host is touched", () => {
  const spec = localSpec();
  const c = { spec, hosts: hostsOf(spec) };
  const opts = { target: parseRestoreTarget("2026-11-28T03:17:28Z"), loseUnarchived: false };

  it("refuses without a backup, before the oldest backup's end, and in the future, naming what to do", () => {
    assert.throws(() => restorePlan(c, opts, info([]), "pg2"), (e: Error) => e instanceof RestoreRefused && /holds no backup.*npm run backup -- --stack local/.test(e.message));
    assert.throws(() => restorePlan(c, opts, info(["2026-11-28T03:20:00Z"]), "pg2"), (e: Error) => e instanceof RestoreRefused && /before the end of the oldest backup \(2026-11-28T03:20:00.000Z\)/.test(e.message));
    assert.throws(() => restorePlan(c, opts, info(["2026-11-28T03:00:00Z"]), "pg2", new Date("2026-11-28T03:10:00Z")), (e: Error) => e instanceof RestoreRefused && /in the future/.test(e.message));
  });

  it("restores the first database node whoever leads, and stops the leader last", async () => {
    const p = restorePlan(c, opts, info(["2026-11-28T03:00:00Z"]), "pg2", new Date("2026-11-28T04:00:00Z"));
    assert.equal(p.restoreNode.name, "pg1");
    assert.deepEqual(p.others.map((h) => h.name), ["pg2", "pg3"]);
    assert.ok(p.destroys.some((d) => d.includes("pg2, pg3")), p.destroys.join("\n"));
    const phases = restoreSteps({ ...c, pki: await testPki(spec, c.hosts), secrets: TEST_SECRETS }, p, opts);
    assert.deepEqual(phases.map((x) => x.phase), ["stop", "dcs-reset", "data", "lead", "follow"]);
    const stop = phases[0].steps;
    const leaderStop = stop.find((s) => s.host === "pg2")!;
    assert.deepEqual([...leaderStop.after].sort(), ["pg1/restore-stop", "pg3/restore-stop"]);
    assert.ok(stop.filter((s) => s.host !== "pg2").every((s) => s.after.length === 0));
    assert.deepEqual(phases[4].steps.map((s) => s.host), ["pg2", "pg3"]);
  });

  it("every phase's script is valid bash (bash -n, shellcheck errors), the target in it only as a quoted word", async () => {
    const hosts = hostsOf(spec);
    const ctx = { spec, hosts, pki: await testPki(spec, hosts), secrets: TEST_SECRETS };
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgc-restore-"));
    try {
      for (const phase of PHASES) {
        const step = restoreStep(ctx, ctx.hosts.find((h) => h.name === "pg1")!, phase, { target: parseRestoreTarget("2026-11-28T03:17:28.5Z"), loseUnarchived: false, timeline: 4 });
        const script = stepScript(step);
        assert.ok(script.includes(`PGC_RS_TARGET='${describeTarget(parseRestoreTarget("2026-11-28T03:17:28.5Z"))}'`), "the target is one single-quoted word");
        assert.ok(script.includes("'--target=2026-11-28 03:17:28.5+00'") && script.includes("'--target-timeline=4'"));
        const f = path.join(dir, `${phase}.sh`);
        fs.writeFileSync(f, script);
        const n = await run("bash", ["-n", f]);
        assert.equal(n.code, 0, n.out);
        const sc = await run("shellcheck", ["-S", "error", "-s", "bash", f]);
        assert.equal(sc.code, 0, sc.out);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
