import { strict as assert } from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { aptCacherRemaps, debianMirrors, nodeSourcesList, parseDeb822Sources, parseOneLineSources, readAptSources, viaProxy } from "../../local/mirror";

// Host names below are test data (a documentation domain and this project's own range).
function etcApt(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgc-apt-"));
  fs.mkdirSync(path.join(dir, "sources.list.d"));
  for (const [f, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, f), text);
  return dir;
}

describe("Debian mirror of the local hosts (this machine's apt sources or apt.mirror)", () => {
  const dirs: string[] = [];
  const mk = (files: Record<string, string>) => { const d = etcApt(files); dirs.push(d); return d; };
  after(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

  it("deb822 (*.sources): finds the stanza serving bookworm main and the bookworm-security one", () => {
    const dir = mk({
      "sources.list.d/debian.sources": [
        "Types: deb", "# a comment", "URIs: http://mirror.example.org/debian", "Suites: bookworm bookworm-updates", "Components: main contrib",
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg", "",
        "Types: deb", "URIs: http://mirror.example.org/debian-security/", "Suites: bookworm-security", "Components: main", "",
      ].join("\n"),
    });
    const m = debianMirrors(undefined, readAptSources(dir));
    assert.equal(m.main.url, "http://mirror.example.org/debian");
    assert.equal(m.security?.url, "http://mirror.example.org/debian-security", "trailing slash dropped");
    assert.equal(m.source, path.join(dir, "sources.list.d/debian.sources"));
    assert.equal(nodeSourcesList(m), [
      "deb http://mirror.example.org/debian bookworm main",
      "deb http://mirror.example.org/debian bookworm-updates main",
      "deb http://mirror.example.org/debian-security bookworm-security main", ""].join("\n"));
    assert.equal(viaProxy(m.main, "127.0.0.1:3142"), "http://127.0.0.1:3142/mirror.example.org/debian");
    assert.deepEqual(aptCacherRemaps(m), [
      "Remap-debrep: file:deb_mirror*.gz /debian mirror.example.org/debian ; mirror.example.org/debian",
      "Remap-secdeb: /debian-security mirror.example.org/debian-security ; mirror.example.org/debian-security",
    ]);
  });

  it("one-line format (sources.list, *.list): options, comments, deb-src and other suites skipped", () => {
    const dir = mk({
      "sources.list": [
        "# deb http://commented.example.org/debian bookworm main",
        "deb-src http://src.example.org/debian bookworm main",
        "deb http://other.example.org/debian bookworm contrib",
        "deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] http://mirror.example.org/debian bookworm main non-free-firmware # trailing",
      ].join("\n"),
      "sources.list.d/security.list": "deb https://sec.example.org/debian-security bookworm-security main\n",
    });
    const m = debianMirrors(undefined, readAptSources(dir));
    assert.equal(m.main.url, "http://mirror.example.org/debian");
    assert.equal(m.security?.url, "https://sec.example.org/debian-security");
    // https through apt-cacher-ng: its "HTTPS///" form, for nodes and for debootstrap alike
    assert.match(nodeSourcesList(m), /^deb http:\/\/HTTPS\/\/\/sec\.example\.org\/debian-security bookworm-security main$/m);
    assert.deepEqual(parseOneLineSources("deb-src http://x/debian bookworm main\n", "f")[0].types, ["deb-src"]);
  });

  it("ignores disabled entries and files apt ignores (other extensions)", () => {
    const dir = mk({
      "sources.list.d/a.list.disabled-by-farm": "deb http://disabled-file.example.org/debian bookworm main\n",
      "sources.list.d/b.sources.save": "Types: deb\nURIs: http://save.example.org/debian\nSuites: bookworm\nComponents: main\n",
      "sources.list.d/c.sources": "Types: deb\nURIs: http://enabled-no.example.org/debian\nSuites: bookworm\nComponents: main\nEnabled: no\n",
      "sources.list.d/d.list": "deb http://mirror.example.org/debian bookworm main\n",
    });
    const m = debianMirrors(undefined, readAptSources(dir));
    assert.equal(m.main.url, "http://mirror.example.org/debian");
    assert.equal(m.security, undefined, "no security entry here");
    assert.equal(parseDeb822Sources("Types: deb\nURIs: http://x/debian\nSuites: bookworm\nComponents: main\nEnabled: no\n", "f")[0].enabled, false);
  });

  it("apt.mirror wins for bookworm; the machine's security entry is kept", () => {
    const dir = mk({ "sources.list": "deb http://mirror.example.org/debian bookworm main\ndeb http://mirror.example.org/debian-security bookworm-security main\n" });
    const m = debianMirrors("http://10.213.0.1:8080/debian/", readAptSources(dir));
    assert.equal(m.main.url, "http://10.213.0.1:8080/debian");
    assert.equal(m.security?.url, "http://mirror.example.org/debian-security");
    assert.equal(m.source, "pgcluster:apt.mirror");
  });

  it("a clear error when neither names a Debian mirror; a hostile apt.mirror stays one URL token", () => {
    const dir = mk({ "sources.list.d/other.list": "deb http://mirror.example.org/ubuntu jammy main\n" });
    assert.throws(() => debianMirrors(undefined, readAptSources(dir)), /no Debian mirror for the local hosts: .*bookworm main.*set pgcluster:apt\.mirror/);
    assert.throws(() => debianMirrors("ftp://mirror.example.org/debian", []), /pgcluster:apt\.mirror: ftp: mirrors are not supported/);
    assert.throws(() => debianMirrors("http://u:p@mirror.example.org/debian", []), /credentials/);
    const m = debianMirrors("http://mirror.example.org/debian bookworm main\ndeb http://evil.example.org/x", []);
    assert.equal(nodeSourcesList(m).split("\n").filter(Boolean).length, 2, "no line added");
    assert.ok(!/\s/.test(m.main.url) && !/\s/.test(m.main.hostPath), m.main.url);
  });

  it("the code names no mirror host", () => {
    const code = ["local/hosts.ts", "local/mirror.ts"].map((f) => fs.readFileSync(path.join(__dirname, "../..", f), "utf8")).join("\n");
    assert.doesNotMatch(code, /debian\.org|ubuntu\.com|https?:\/\/[a-z0-9-]+\.[a-z]/);
  });
});
