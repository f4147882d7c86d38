// Passwords: from config secrets, or generated with @pulumi/random. `secrets.rotation` (all) and
// `secrets.rotate.<name>` (one) are keepers: changing either generates a new password.
// Each PostgreSQL role's password has a random SCRAM salt (RandomBytes, kept in the state, so a
// re-apply changes nothing) with the same keepers: a new password comes with a new salt.
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { SECRET_KEYS, type ClusterSpec, type SecretName } from "../spec/config";
import { configSecret } from "./pulumiConfig";
import { ROLE_PASSWORDS, saltName, type SaltName } from "../roles/scram";

export type SecretOutputs = Record<SecretName | SaltName, pulumi.Output<string>>;

export function clusterSecrets(spec: ClusterSpec, opts: pulumi.CustomResourceOptions = {}): SecretOutputs {
  const out = {} as SecretOutputs;
  for (const name of SECRET_KEYS) {
    const given = spec.secrets.provided.includes(name) ? configSecret(name) : undefined;
    if (given) {
      out[name] = pulumi.secret(given);
      continue;
    }
    const pw = new random.RandomPassword(`${spec.clusterName}-${name}`, {
      length: 32,
      // Letters and digits only: the value is spliced into YAML, INI, pgpass and URLs.
      special: false,
      minLower: 2,
      minUpper: 2,
      minNumeric: 2,
      keepers: { rotation: spec.secrets.rotation, rotate: spec.secrets.rotate[name] ?? "" },
    }, opts);
    out[name] = pulumi.secret(pw.result);
  }
  for (const name of ROLE_PASSWORDS) {
    // Not a secret in itself, but kept out of logs and outputs like one (RandomBytes marks it so).
    const salt = new random.RandomBytes(`${spec.clusterName}-${name}-scram-salt`, {
      length: 16,
      keepers: { rotation: spec.secrets.rotation, rotate: spec.secrets.rotate[name] ?? "" },
    }, opts);
    out[saltName(name)] = pulumi.secret(salt.base64);
  }
  return out;
}
