// The house plan is enforced by dependency-cruiser (.dependency-cruiser.cjs, `npm run arch` in
// npm test). These tests prove the rules bite: a tree with a wrong arrow fails, this one passes.
import { strict as assert } from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PROJECT_ROOT } from "../../model/stackFile";

const CONFIG = path.join(PROJECT_ROOT, ".dependency-cruiser.cjs");
const BIN = path.join(PROJECT_ROOT, "node_modules", ".bin", "depcruise");

function cruise(cwd: string, dirs: string[]): { code: number; out: string } {
  const r = spawnSync(BIN, ["--config", CONFIG, "--output-type", "err", ...dirs], { cwd, encoding: "utf8" });
  return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

/** A throwaway tree of .ts files: { "model/a.ts": "import ...", ... } */
function tree(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgc-arch-"));
  // The rules' options name a tsconfig.json relative to where depcruise runs.
  fs.writeFileSync(path.join(dir, "tsconfig.json"), JSON.stringify({ compilerOptions: { module: "commonjs", target: "es2022" } }));
  for (const [f, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    fs.writeFileSync(path.join(dir, f), text);
  }
  return dir;
}

describe("architecture rules (dependency-cruiser)", function () {
  this.timeout(60_000);

  it("this repository has no wrong arrow and no cycle", () => {
    const r = cruise(PROJECT_ROOT, ["model", "roles", "infra", "local", "bench", "test"]);
    assert.equal(r.code, 0, r.out);
  });

  const cases: [string, Record<string, string>, RegExp][] = [
    ["model importing roles", { "model/config.ts": 'import { x } from "../roles/step";\nexport const y = x;\n', "roles/step.ts": "export const x = 1;\n" }, /model-is-the-ground-floor/],
    ["roles importing a driver", { "roles/step.ts": 'import { d } from "../infra/driver";\nexport const x = d;\n', "infra/driver.ts": "export const d = 1;\n" }, /roles-import-only-model/],
    ["the local driver importing the Pulumi one", { "local/cli.ts": 'import { d } from "../infra/driver";\nexport const x = d;\n', "infra/driver.ts": "export const d = 1;\n" }, /local-is-not-infra/],
    ["a cycle inside one floor", { "model/a.ts": 'import { b } from "./b";\nexport const a = () => b;\n', "model/b.ts": 'import { a } from "./a";\nexport const b = () => a;\n' }, /no-circular/],
  ];
  for (const [what, files, rule] of cases) {
    it(`fails a tree with ${what}`, () => {
      const dir = tree(files);
      try {
        const r = cruise(dir, [...new Set(Object.keys(files).map((f) => f.split("/")[0]))]);
        assert.notEqual(r.code, 0, `accepted:\n${r.out}`);
        assert.match(r.out, rule);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
