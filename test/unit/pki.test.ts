import { strict as assert } from "assert";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ensurePki, toPki, needsRenewal, caRenewalWarnings, CaSwitchError } from "../../local/pki";
import { parseClusterSpec } from "../../model/config";
import { readStackFile } from "../../model/stackFile";
import { run } from "../support/tools";

function spec(tls: Record<string, unknown> = {}) {
  const sf = readStackFile("local");
  return parseClusterSpec({ ...sf.values, tls }, { stack: "local", secretKeys: new Set(), source: "t" });
}
const addresses = { lb1: "10.213.0.10", lb2: "10.213.0.9", pg1: "10.213.0.11", pg2: "10.213.0.12", pg3: "10.213.0.13", backup1: "10.213.0.30", mon1: "10.213.0.40" };

describe("local PKI (the certificates @pulumi/tls issues for a stack)", function () {
  this.timeout(30000);

  it("issues node certificates that verify against the CA, with the node's IP, localhost and the balancers as SANs", async () => {
    const s = spec();
    const pki = toPki(s, await ensurePki(s, addresses, undefined));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgc-pki-"));
    fs.writeFileSync(path.join(dir, "ca.crt"), pki.caBundle);
    fs.writeFileSync(path.join(dir, "node.crt"), pki.nodes.pg2.cert);
    const v = run("openssl", ["verify", "-CAfile", path.join(dir, "ca.crt"), "-purpose", "sslserver", path.join(dir, "node.crt")]);
    assert.equal(v.code, 0, v.out);
    const c = new crypto.X509Certificate(pki.nodes.pg2.cert);
    assert.match(c.subject, /CN=pg2/);
    assert.match(c.subject, /serialNumber=ca-1\.r-0/);
    for (const san of ["DNS:pg2", "DNS:localhost", "IP Address:10.213.0.12", "IP Address:127.0.0.1", "IP Address:10.213.0.10", "IP Address:10.213.0.9", "IP Address:10.213.0.5"]) assert.ok(c.subjectAltName!.includes(san), `${san} in ${c.subjectAltName}`);
    assert.ok(c.checkPrivateKey(crypto.createPrivateKey(pki.nodes.pg2.key)));
    // With monitoring on (the local stack) every host serves its exporters over TLS; without it the
    // backup host serves pgBackRest over TLS and the balancers serve no TLS themselves.
    assert.equal(Object.keys(pki.nodes).sort().join(","), "backup1,lb1,lb2,mon1,pg1,pg2,pg3");
    const off = { ...s, hosts: s.hosts.filter((h) => !h.roles.includes("monitoring")), monitoring: { ...s.monitoring, enabled: false } };
    assert.equal(Object.keys(toPki(off, await ensurePki(off, addresses, undefined)).nodes).sort().join(","), "backup1,pg1,pg2,pg3", "without monitoring the balancers serve no TLS themselves");
    const repl = new crypto.X509Certificate(pki.replication.cert);
    assert.match(repl.subject, /CN=replicator/);
    assert.ok(repl.keyUsage === undefined || !repl.keyUsage.includes("1.3.6.1.5.5.7.3.1"), "client-only");
    const pooler = new crypto.X509Certificate(pki.pooler.cert);
    assert.match(pooler.subject, /CN=pgbouncer/);
    assert.ok(pooler.checkPrivateKey(crypto.createPrivateKey(pki.pooler.key)));
    fs.writeFileSync(path.join(dir, "pooler.crt"), pki.pooler.cert);
    const pv = run("openssl", ["verify", "-CAfile", path.join(dir, "ca.crt"), "-purpose", "sslclient", path.join(dir, "pooler.crt")]);
    assert.equal(pv.code, 0, pv.out);
    fs.rmSync(dir, { recursive: true });
  });

  it("keeps valid certificates, re-issues on a rotation value, an address change or inside the renewal window", async () => {
    const s = spec();
    const a = await ensurePki(s, addresses, undefined);
    const same = await ensurePki(s, addresses, a);
    assert.equal(same.certs.pg1.cert, a.certs.pg1.cert);
    const rotated = await ensurePki(spec({ rotation: "1" }), addresses, a);
    assert.notEqual(rotated.certs.pg1.cert, a.certs.pg1.cert);
    assert.equal(rotated.cas["1"].cert, a.cas["1"].cert, "the CA is kept");
    const moved = await ensurePki(s, { ...addresses, pg3: "10.213.0.23" }, a);
    assert.notEqual(moved.certs.pg3.cert, a.certs.pg3.cert);
    const later = new Date(Date.now() + (s.tls.certValidityHours - s.tls.earlyRenewalHours + 1) * 3600_000);
    assert.ok(needsRenewal(a.certs.pg1.cert, s.tls.earlyRenewalHours, later));
    const renewed = await ensurePki(s, addresses, a, later);
    assert.notEqual(renewed.certs.pg1.cert, a.certs.pg1.cert);
  });

  it("CA rotation: [1] -> [1,2] trusts both and keeps certs -> [2,1] re-signs with 2 -> [2] drops 1", async () => {
    const g1 = await ensurePki(spec(), addresses, undefined);
    const both = await ensurePki(spec({ caGenerations: ["1", "2"] }), addresses, g1);
    assert.equal(both.certs.pg1.cert, g1.certs.pg1.cert, "certs still from CA 1");
    assert.equal(toPki(spec({ caGenerations: ["1", "2"] }), both).caBundle, both.cas["1"].cert + both.cas["2"].cert);
    const switched = await ensurePki(spec({ caGenerations: ["2", "1"] }), addresses, both);
    const c = new crypto.X509Certificate(switched.certs.pg1.cert);
    assert.ok(c.verify(new crypto.X509Certificate(switched.cas["2"].cert).publicKey), "signed by CA 2");
    const done = await ensurePki(spec({ caGenerations: ["2"] }), addresses, switched);
    assert.deepEqual(Object.keys(done.cas), ["2"]);
    assert.equal(done.certs.pg1.cert, switched.certs.pg1.cert);
  });

  it("refuses a CA switch in one step ([1] -> [2]) before issuing anything, naming the key and the three-step way", async () => {
    const g1 = await ensurePki(spec(), addresses, undefined);
    await assert.rejects(ensurePki(spec({ caGenerations: ["2"] }), addresses, g1), (e: Error) =>
      e instanceof CaSwitchError && /pgcluster:tls\.caGenerations \["2"\] keeps none of the CAs the cluster trusts now \(1\)/.test(e.message) && /three applies/.test(e.message));
  });

  it("keeps a CA inside its renewal window (no in-place replacement) and warns to rotate it", async () => {
    const s = spec();
    const g1 = await ensurePki(s, addresses, undefined);
    const late = new Date(Date.now() + (s.tls.caValidityHours - s.tls.earlyRenewalHours + 1) * 3600_000);
    const kept = await ensurePki(s, addresses, g1, late);
    assert.equal(kept.cas["1"].cert, g1.cas["1"].cert);
    assert.deepEqual(caRenewalWarnings(s, g1), []);
    assert.match(caRenewalWarnings(s, kept, late).join(), /CA 1 expires .*tls\.caGenerations/);
  });
});
