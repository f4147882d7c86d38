// Issue #12 item 6 on the real local cluster: HAProxy's stats page on every balancer asks for a
// password (401 without it, 200 with it, and it lists the writer backend), and a client address
// that is not an operator's (network.adminCidrs) cannot reach it at all.
import { strict as assert } from "assert";
import * as http from "http";
import { requireHosts, settledCluster } from "../support/hostsLayer";
import { ProbeNamespace } from "../support/netns";
import { statsUrls, type LocalCluster } from "../../local/cluster";
import { users } from "../../model/identities";
import { ipInCidr } from "../../model/cidr";

function get(url: string, auth?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const headers = auth === undefined ? {} : { authorization: `Basic ${Buffer.from(auth).toString("base64")}` };
    // One connection per request: HAProxy closes after a 401.
    const req = http.get(`${url};csv`, { headers, timeout: 5000, agent: false }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
  });
}

describe("hosts layer: HAProxy stats page (issue #12 item 6)", function () {
  this.timeout(5 * 60_000);
  let c: LocalCluster;
  // A client of the local stack (clientCidrs 10.213.0.200/30) that is no operator.
  const outsider = new ProbeNamespace("10.213.0.202");

  before(async function () {
    requireHosts(this);
    c = await settledCluster("stats");
  });

  after(() => {
    const left = outsider.remove();
    if (left.length) throw new Error(`left behind: ${left.join(", ")}`);
  });

  it("every page (the floating address's and every balancer's): 401 without credentials or with a wrong password, 200 with the stats login, listing the writer backend with one server UP", async () => {
    const urls = statsUrls(c);
    assert.ok(urls.length >= 1);
    for (const u of urls) {
      assert.equal((await get(u)).status, 401, `${u} without credentials`);
      assert.equal((await get(u, `${users.haproxyStats}:not-the-password`)).status, 401, `${u} with a wrong password`);
      const ok = await get(u, `${users.haproxyStats}:${c.secrets.statsPassword}`);
      assert.equal(ok.status, 200, u);
      const writer = ok.body.split("\n").map((l) => l.split(",")).filter((f) => f[0] === "writer" && f[1] !== "FRONTEND" && f[1] !== "BACKEND");
      assert.equal(writer.length, c.hosts.filter((h) => h.roles.includes("postgres")).length, `${u}: a writer server per database node`);
      assert.equal(writer.filter((f) => f[17] === "UP").length, 1, `${u}: one writer server UP`);
      assert.ok(ok.body.split("\n").some((l) => l.startsWith("replicas_direct,BACKEND,")), `${u}: the readers without pooler (5003)`);
    }
  });

  it("from a client address that is no operator (10.213.0.202): the stats port is closed on the floating address and every balancer, while the writer port answers", async () => {
    assert.ok(c.spec.network.clientCidrs.some((r) => ipInCidr("10.213.0.202", r)), "the probe address is a client");
    assert.ok(!c.spec.network.adminCidrs.some((r) => ipInCidr("10.213.0.202", r)), "the probe address is no operator");
    outsider.create();
    const targets = [
      ...(c.spec.network.floatingAddress ? [{ name: "floating address", address: c.spec.network.floatingAddress }] : []),
      ...c.hosts.filter((h) => h.roles.includes("balancer")),
    ];
    for (const t of targets) {
      const writer = await outsider.probe(t.address, 5000);
      assert.equal(writer.state, "open", `${t.name} ${t.address}:5000 from 10.213.0.202: ${writer.detail}`);
      const stats = await outsider.probe(t.address, 8404);
      assert.equal(stats.state, "closed", `${t.name} ${t.address}:8404 from 10.213.0.202: ${stats.detail}`);
    }
  });
});
