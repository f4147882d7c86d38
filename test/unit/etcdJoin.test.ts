// Replacing a dead node (issue 13 item 5): the etcd step of a member without data asks the
// other members, and a member they knew (it had started: client URLs) is removed and added again,
// then started as "existing" through the join file the unit's drop-in reads.
import { strict as assert } from "assert";
import { spawnSync } from "child_process";
import { compile } from "../../roles/compile";
import { stepScript } from "../../roles/script";
import { ETCD_JOIN_FILE, shell as etcdShell } from "../../roles/etcd";
import { fileOf, hostsOf, localSpec, testPki, TEST_SECRETS } from "../support/fixtures";

describe("etcd: a member rebuilt without data rejoins as existing", () => {
  const step = async () => {
    const spec = localSpec();
    const hosts = hostsOf(spec);
    return compile(spec, hosts, await testPki(spec, hosts), TEST_SECRETS).steps.find((s) => s.id === "pg3/etcd")!;
  };

  it("the unit reads the join file after /etc/default/etcd", async () => {
    assert.match(fileOf(await step(), "/etc/systemd/system/etcd.service.d/pgcluster-join.conf"), new RegExp(`^EnvironmentFile=-${ETCD_JOIN_FILE}$`, "m"));
  });

  it("the join check runs before etcd starts, asking the other members only", async () => {
    const s = await step();
    const call = s.actions.findIndex((a) => a.kind === "call" && a.fn === etcdShell.joinExisting);
    const start = s.actions.findIndex((a) => a.kind === "service" && a.unit === "etcd");
    assert.ok(call >= 0 && call < start, "called before the service starts");
    const script = stepScript(s);
    assert.ok(script.includes("PGC_ETCD_OTHERS='https://10.213.0.11:2379,https://10.213.0.12:2379'"), "pg3 asks pg1 and pg2");
  });

  // The decision, run as the host runs it (python3), on etcd's member list.
  const decide = async (members: unknown[]) => {
    const script = stepScript(await step());
    const py = /pgc_etcd_membership\(\) \{[\s\S]*?python3 -c '([\s\S]*?)' "\$list"/.exec(script)![1];
    const r = spawnSync("python3", ["-c", py, JSON.stringify({ members }), "pg3", "https://10.213.0.13:2380"]);
    assert.equal(r.status, 0, r.stderr.toString());
    return r.stdout.toString().trim();
  };
  const peer = (n: number) => [`https://10.213.0.1${n}:2380`];

  it("a member that had started is replaced; one never started bootstraps; one unknown is added", async () => {
    const others = [{ ID: 1, name: "pg1", peerURLs: peer(1), clientURLs: ["https://10.213.0.11:2379"] }, { ID: 2, name: "pg2", peerURLs: peer(2), clientURLs: ["https://10.213.0.12:2379"] }];
    assert.equal(await decide([...others, { ID: 0xabc, name: "pg3", peerURLs: peer(3), clientURLs: ["https://10.213.0.13:2379"] }]), "started abc");
    assert.equal(await decide([...others, { ID: 0xabc, name: "pg3", peerURLs: peer(3) }]), "forming");
    assert.equal(await decide(others), "absent");
  });
});
