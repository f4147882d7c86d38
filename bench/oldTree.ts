// The previous version of pgcluster checked out beside this one (a detached git worktree in a
// temporary directory) for bench/upgrade: it shares this checkout's .pgcluster/ (the same SSH
// key, secrets, PKI and known_hosts: the same cluster) and, when the lock files match, its
// node_modules. Both are symlinks, unlinked before the worktree is removed: never entered.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { sh } from "../local/exec";

export interface OldTree {
  parent: string;
  dir: string;
  /** The state both versions use (this checkout's .pgcluster/, resolved). */
  state: string;
  links: string[];
}

function git(root: string, args: string[]): string {
  return sh("git", ["-C", root, ...args]).stdout.trim();
}

/** `commit` (a full hash) checked out in a new temporary worktree of the repository at `root`. */
export function addOldTree(root: string, commit: string): OldTree {
  if (!/^[0-9a-f]{40}$/.test(commit)) throw new Error(`not a commit hash: ${JSON.stringify(commit)}`);
  const parent = fs.mkdtempSync(path.join(os.tmpdir(), "pgc-upgrade-"));
  const tree: OldTree = { parent, dir: path.join(parent, "old"), state: "", links: [] };
  try {
    git(root, ["worktree", "add", "--detach", tree.dir, commit]);
    const state = path.join(root, ".pgcluster");
    fs.mkdirSync(state, { recursive: true, mode: 0o700 });
    tree.state = fs.realpathSync(state);
    link(tree, tree.state, ".pgcluster");
  } catch (e) {
    removeOldTree(root, tree);
    throw e;
  }
  return tree;
}

function link(tree: OldTree, target: string, name: string): void {
  const at = path.join(tree.dir, name);
  fs.symlinkSync(target, at);
  tree.links.push(at);
}

/**
 * Links `root`'s node_modules into the old tree when package-lock.json is byte-identical in
 * both; false when it differs (the old tree then needs its own `npm ci`).
 */
export function shareDependencies(root: string, tree: OldTree): boolean {
  const lock = (dir: string) => fs.readFileSync(path.join(dir, "package-lock.json"));
  if (!lock(root).equals(lock(tree.dir))) return false;
  link(tree, fs.realpathSync(path.join(root, "node_modules")), "node_modules");
  return true;
}

/** Removes the worktree and its temporary directory; safe to call twice. */
export function removeOldTree(root: string, tree: OldTree): void {
  for (const l of tree.links) if (fs.lstatSync(l, { throwIfNoEntry: false })?.isSymbolicLink()) fs.unlinkSync(l);
  tree.links.length = 0;
  if (fs.existsSync(tree.dir)) git(root, ["worktree", "remove", "--force", tree.dir]);
  if (fs.existsSync(tree.parent)) fs.rmdirSync(tree.parent);
}
