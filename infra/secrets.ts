// Passwords: given (PgClusterArgs.secrets; the stack program reads them from its config secrets),
// or generated with @pulumi/random. `secrets.rotation` (all) and `secrets.rotate.<name>` (one) are
// keepers: changing either generates a new password.
// Each PostgreSQL role's password has a random SCRAM salt (RandomBytes, kept in the state, so a
// re-apply changes nothing) with the same keepers: a new password comes with a new salt.
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { BACKUP_PASSPHRASE, SECRET_KEYS, type ClusterSpec, type SecretName } from "../model/config";
import { ROLE_PASSWORDS, saltName, type SaltName } from "../roles/scram";
import type { Children } from "./children";

/** Passwords added after stacks were adopted from the stack root: they never had a root name to alias. */
const NEW_SECRETS: readonly SecretName[] = ["statsPassword", "metricsPassword"];

export type SecretOutputs = Record<SecretName | SaltName, pulumi.Output<string>> & { backupCipherPassphrase?: pulumi.Output<string> };
export type GivenSecrets = Partial<Record<SecretName | typeof BACKUP_PASSPHRASE, pulumi.Input<string>>>;

/**
 * `given`: passwords not to generate (checked by the caller). `c`: names and parents the
 * resources (children.ts); `${clusterName}-…` are their stack-root names before PgCluster.
 */
export function clusterSecrets(spec: ClusterSpec, given: GivenSecrets, c: Children): SecretOutputs {
  const given_ = given;
  const n = spec.clusterName;
  const out = {} as SecretOutputs;
  for (const name of SECRET_KEYS) {
    const value = given[name];
    if (value !== undefined) {
      out[name] = pulumi.secret(value);
      continue;
    }
    const pw = new random.RandomPassword(c.name(name), {
      length: 32,
      // Letters and digits only: the value is spliced into YAML, INI, pgpass and URLs.
      special: false,
      minLower: 2,
      minUpper: 2,
      minNumeric: 2,
      keepers: { rotation: spec.secrets.rotation, rotate: spec.secrets.rotate[name] ?? "" },
    }, NEW_SECRETS.includes(name) ? c.optsNew() : c.opts(`${n}-${name}`));
    out[name] = pulumi.secret(pw.result);
  }
  // The backup repository's cipher passphrase: no rotation keepers (a new passphrase could not
  // read the repository already written); a new child, never adopted.
  if (spec.backup.enabled) {
    const given = givenPassphrase(given_);
    out[BACKUP_PASSPHRASE] = pulumi.secret(given ?? new random.RandomPassword(c.name(BACKUP_PASSPHRASE), {
      length: 32, special: false, minLower: 2, minUpper: 2, minNumeric: 2,
    }, c.optsNew()).result);
  }
  for (const name of ROLE_PASSWORDS) {
    // Not a secret in itself, but kept out of logs and outputs like one (RandomBytes marks it so).
    const salt = new random.RandomBytes(c.name(`${name}-scram-salt`), {
      length: 16,
      keepers: { rotation: spec.secrets.rotation, rotate: spec.secrets.rotate[name] ?? "" },
    }, c.opts(`${n}-${name}-scram-salt`));
    out[saltName(name)] = pulumi.secret(salt.base64);
  }
  return out;
}

function givenPassphrase(given: GivenSecrets): pulumi.Input<string> | undefined {
  return given[BACKUP_PASSPHRASE];
}
