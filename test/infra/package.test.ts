// `npm pack`: what a user installs holds the component (built JS with declarations), the
// templates and the prelude where the built code looks for them, README — and nothing else.
import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import { packLibrary, type Packed } from "../support/library";
import { PROJECT_ROOT } from "../../model/stackFile";

/** Every file under `dir` (relative to the project), recursively. */
function filesUnder(dir: string): string[] {
  return fs.readdirSync(path.join(PROJECT_ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile()).map((e) => path.relative(PROJECT_ROOT, path.join(e.parentPath, e.name)));
}

describe("the npm package (npm pack; builds dist/ through prepack)", function () {
  this.timeout(300_000);
  let pack: Packed;
  let files: string[];
  before(async () => {
    pack = await packLibrary();
    files = pack.files.map((f) => f.path).sort();
  });

  it("exports the library entry with its types; both are in the package", () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, "package.json"), "utf8"));
    assert.equal(pack.name, "pgcluster");
    const entry = pkg.exports["."];
    assert.deepEqual(Object.keys(entry), ["types", "default"], "types first: TypeScript takes the first condition that matches");
    const targets = Object.values(pkg.exports).flatMap((v) => (typeof v === "string" ? [v] : Object.values(v as Record<string, string>)));
    for (const f of [...targets, pkg.types, pkg.main]) assert.ok(files.includes(f.replace(/^\.\//, "")), `${f} not in the package`);
    assert.match(pkg.scripts.prepack, /build:lib/);
  });

  it("holds the built JS with a declaration for each module, the templates and the roles' shell where roles/render looks, the prelude where roles/script looks, README", () => {
    const js = files.filter((f) => f.endsWith(".js"));
    assert.ok(js.includes("dist/infra/pgCluster.js") && js.includes("dist/roles/compile.js"));
    for (const f of js) assert.ok(files.includes(f.replace(/\.js$/, ".d.ts")), `${f}: no declaration`);
    // render.ts: path.join(__dirname, "..", "templates") and __dirname/<role>; script.ts: path.join(__dirname, "lib", "prelude.sh").
    for (const t of filesUnder("templates")) assert.ok(files.includes(`dist/${t}`), `dist/${t} missing`);
    const shell = filesUnder("roles").filter((f) => f.endsWith(".sh.hbs"));
    assert.ok(shell.length >= 10, "the roles' shell templates");
    for (const t of shell) assert.ok(files.includes(`dist/${t}`), `dist/${t} missing`);
    assert.ok(files.includes("dist/roles/lib/prelude.sh"));
    assert.ok(files.includes("README.md") && files.includes("package.json"));
  });

  it("holds nothing else: no sources, tests, bench, local driver, examples, stack files, state or node_modules", () => {
    const allowed = (f: string) => f === "README.md" || f === "package.json" || f === "LICENSE"
      || /^dist\/(model|infra|roles)\/.+\.(js|d\.ts)$/.test(f) || /^dist\/templates\/.+\.(hbs|html)$/.test(f) || /^dist\/roles\/[a-z]+\/[a-z-]+\.sh\.hbs$/.test(f) || f === "dist/roles/lib/prelude.sh";
    assert.deepEqual(files.filter((f) => !allowed(f)), []);
    for (const bad of [/^test\//, /^bench\//, /^local\//, /^examples\//, /^\.pgcluster/, /node_modules/, /Pulumi\..*yaml$/, /^dist\/(test|bench|local)\//, /\.tsbuildinfo$/])
      assert.deepEqual(files.filter((f) => bad.test(f)), [], String(bad));
    // The library does not carry the stack program, its config reader or the local driver.
    for (const f of ["dist/infra/index.js", "dist/infra/pulumiConfig.js", "dist/model/stackFile.js"]) assert.ok(!files.includes(f), f);
  });
});
