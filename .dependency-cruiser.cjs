// The house plan, enforced (npm test runs `npm run arch`): arrows only point down.
//   bench/, test/, examples/  ->  local/ | infra/  ->  roles/  ->  model/
// model/ (the model: config schema and validation, CIDRs, stack files, identities) imports
// nothing of the project; roles/ imports only model/; the two drivers (infra/ for Pulumi,
// local/ for the SSH CLI and local hosts) never import each other.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    { name: "no-circular", severity: "error", comment: "import cycles make the floors meaningless", from: {}, to: { circular: true } },
    {
      name: "model-is-the-ground-floor", severity: "error",
      comment: "model/ is what everyone reads: it imports nothing of the project",
      from: { path: "^model/" }, to: { path: "^(roles|infra|local|bench|test|examples)/" },
    },
    {
      name: "roles-import-only-model", severity: "error",
      comment: "roles/ compiles the plan from the model alone (pure): no driver, no tool",
      from: { path: "^roles/" }, to: { path: "^(infra|local|bench|test|examples)/" },
    },
    {
      name: "infra-is-not-local", severity: "error",
      comment: "the Pulumi driver and the local driver are two matching drivers on top of roles/",
      from: { path: "^infra/" }, to: { path: "^(local|bench|test|examples)/" },
    },
    {
      name: "local-is-not-infra", severity: "error",
      comment: "the local driver runs without Pulumi",
      from: { path: "^local/" }, to: { path: "^(infra|bench|test|examples)/" },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: "^(node_modules|dist)/" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
  },
};
