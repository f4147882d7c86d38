// How a driver runs a step on a host: the script goes on stdin, never in argv; root via sudo
// where the SSH user is not root. Check mode is a plain flag, the one thing in the command line.
export function remoteCommand(sshUser: string, check = false): string {
  const env = check ? "env PGCLUSTER_CHECK=1 " : "";
  return sshUser === "root" ? `${env}bash -s` : `sudo -n ${env}bash -s`;
}

export const RESULT_PREFIX = "PGCLUSTER-RESULT ";

export interface StepResult {
  step: string;
  mode: "apply" | "check";
  changed: string[];
  seconds: number;
}

/** The step's machine-readable result line, if its output has one. */
export function parseResult(output: string): StepResult | undefined {
  const line = output.split("\n").reverse().find((l) => l.startsWith(RESULT_PREFIX));
  return line ? (JSON.parse(line.slice(RESULT_PREFIX.length)) as StepResult) : undefined;
}
