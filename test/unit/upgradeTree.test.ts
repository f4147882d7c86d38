// bench/upgrade's old tree, in a throwaway repository: it shares the state by a symlink, and
// removing it must never remove what the link points to (the cluster's secrets and keys).
import { strict as assert } from "assert";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { addOldTree, removeOldTree, shareDependencies } from "../../bench/oldTree";

function git(root: string, ...args: string[]): string {
  return execFileSync("git", ["-C", root, "-c", "user.name=t", "-c", "user.email=t@example.org", ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
}

/** A repository with one commit holding `lock` as package-lock.json, a state dir and node_modules. */
function repo(lock: string): { root: string; commit: string } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "pgc-oldtree-"));
  git(root, "init", "-q");
  fs.writeFileSync(path.join(root, "package-lock.json"), lock);
  fs.writeFileSync(path.join(root, ".gitignore"), ".pgcluster/\nnode_modules/\n");
  git(root, "add", ".");
  git(root, "commit", "-qm", "old");
  fs.mkdirSync(path.join(root, ".pgcluster/local"), { recursive: true });
  fs.writeFileSync(path.join(root, ".pgcluster/local/secrets.json"), "{}\n");
  fs.mkdirSync(path.join(root, "node_modules/pg"), { recursive: true });
  fs.writeFileSync(path.join(root, "node_modules/pg/index.js"), "\n");
  return { root, commit: git(root, "rev-parse", "HEAD") };
}

describe("bench/upgrade: the previous version's worktree", () => {
  const roots: string[] = [];
  after(() => roots.forEach((r) => fs.rmSync(r, { recursive: true, force: true })));

  it("shares the state and node_modules by symlink, and removing it leaves both whole", () => {
    const { root, commit } = repo('{"lockfileVersion":3}\n');
    roots.push(root);
    const tree = addOldTree(root, commit);
    assert.equal(fs.realpathSync(path.join(tree.dir, ".pgcluster")), fs.realpathSync(path.join(root, ".pgcluster")));
    assert.equal(tree.state, fs.realpathSync(path.join(root, ".pgcluster")));
    assert.equal(git(tree.dir, "rev-parse", "HEAD"), commit);
    assert.equal(shareDependencies(root, tree), true, "same lock file: shared");
    assert.ok(fs.existsSync(path.join(tree.dir, "node_modules/pg/index.js")));
    removeOldTree(root, tree);
    assert.equal(fs.existsSync(tree.parent), false, "temporary directory removed");
    assert.ok(fs.existsSync(path.join(root, ".pgcluster/local/secrets.json")), "the shared state is still there");
    assert.ok(fs.existsSync(path.join(root, "node_modules/pg/index.js")), "the shared node_modules are still there");
    assert.equal(git(root, "worktree", "list", "--porcelain").split("\n").filter((l) => l.startsWith("worktree ")).length, 1, "only the main worktree is left");
    removeOldTree(root, tree); // twice: nothing left to do, no error
  });

  it("does not share node_modules when package-lock.json differs", () => {
    const { root, commit } = repo('{"lockfileVersion":3}\n');
    roots.push(root);
    fs.writeFileSync(path.join(root, "package-lock.json"), '{"lockfileVersion":3,"packages":{}}\n');
    const tree = addOldTree(root, commit);
    try {
      assert.equal(shareDependencies(root, tree), false);
      assert.equal(fs.existsSync(path.join(tree.dir, "node_modules")), false);
    } finally {
      removeOldTree(root, tree);
    }
  });

  it("refuses anything but a full commit hash", () => {
    const { root } = repo("{}\n");
    roots.push(root);
    assert.throws(() => addOldTree(root, "--force"), /not a commit hash/);
    assert.throws(() => addOldTree(root, "HEAD"), /not a commit hash/);
  });
});
