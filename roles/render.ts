// Handlebars in strict mode: a variable a template names but the context lacks is an error,
// never an empty string in a config file.
import * as fs from "fs";
import * as path from "path";
import Handlebars from "handlebars";
import { aptString, configInt, configWord, haproxyQuoted, identifier, ipv4, ipv4Cidr, pgbackrestValue, pgbouncerQuoted, shq, sqlLiteral, systemdCalendar } from "./quote";

/** Files installed on hosts: templates/<role>/<file>.hbs. */
export const TEMPLATE_DIR = path.join(__dirname, "..", "templates");
/** Step logic (host-side shell) lives with its role: roles/<role>/<file>.sh.hbs. */
export const ROLES_DIR = __dirname;

const hb = Handlebars.create();
// Every value from the stack config or the inventory goes through one of these (roles/quote.ts):
// quoted for its format, or refused at render time, naming its purpose.

/** A helper called as {{helper "purpose" value}}: the purpose names the value in a refusal. */
function purposeHelper(name: string, fn: (v: unknown, purpose: string) => string) {
  hb.registerHelper(name, (...args: unknown[]) => {
    if (args.length !== 3 || typeof args[0] !== "string") throw new Error(`helper ${name} takes a purpose and a value: {{${name} "purpose" value}}`);
    return fn(args[1], args[0]);
  });
}

// JSON is valid YAML: quotes any password or path safely in patroni.yml.
// Strict mode does not check a helper's arguments: every helper here refuses a missing one.
hb.registerHelper("json", (v: unknown) => {
  if (v === undefined) throw new Error("helper json: its value is not defined");
  return JSON.stringify(v);
});
hb.registerHelper("join", (v: unknown[], sep: unknown) => v.join(typeof sep === "string" ? sep : ","));
// Concatenation, for a value built from parts that is then quoted as one: {{json (cat a ":" b)}}.
hb.registerHelper("cat", (...args: unknown[]) => args.slice(0, -1).map(String).join(""));
// Bash single-quoted word and SQL string literal, for values spliced into host-side scripts.
// {{sqlq value}} or {{sqlq "purpose" value}} (named in a refusal).
hb.registerHelper("shq", (v: unknown) => shq(v));
hb.registerHelper("sqlq", (...args: unknown[]) => (args.length === 3 ? sqlLiteral(args[1], String(args[0])) : sqlLiteral(args[0])));
// {{aptq "apt.proxy" value}}: an apt.conf "string".
purposeHelper("aptq", aptString);
// {{word "host name" value}}: a bare token in INI, haproxy.cfg, environment and unit files.
purposeHelper("word", configWord);
// {{ident "host name" value}}: an identifier; {{ipaddr "host address" value}}: an IPv4 address.
// (Not "name"/"ip": a helper shadows a context variable of that name in every template.)
purposeHelper("ident", identifier);
purposeHelper("ipaddr", ipv4);
// {{int "haproxy.maxConn" value}}: an integer setting.
purposeHelper("int", configInt);
// {{cidr "network.adminCidrs" value}}: an IPv4 CIDR (HAProxy acl sources).
purposeHelper("cidr", ipv4Cidr);
// {{hapq "statsPassword" value}}: a single-quoted haproxy.cfg argument.
purposeHelper("hapq", haproxyQuoted);
// pgBouncer auth_file quoting: "user" "password" with embedded quotes doubled.
purposeHelper("pgbq", pgbouncerQuoted);
// {{pgbrvalue "purpose" value}}: a value in pgBackRest's INI file.
purposeHelper("pgbrvalue", pgbackrestValue);
// {{calendar "backup.schedule" value}}: a systemd OnCalendar= value.
purposeHelper("calendar", systemdCalendar);

const cache = new Map<string, HandlebarsTemplateDelegate>();

function renderFile(file: string, name: string, context: object): string {
  let tpl = cache.get(file);
  if (!tpl) {
    tpl = hb.compile(fs.readFileSync(file, "utf8"), { strict: true, noEscape: true });
    cache.set(file, tpl);
  }
  try {
    return tpl(context);
  } catch (e) {
    throw new Error(`template ${name}.hbs: ${(e as Error).message}`);
  }
}

/** Render templates/<role>/<file>.hbs (a file a host gets). Templates are read once, at first use. */
export function render(role: string, file: string, context: object): string {
  return renderFile(path.join(TEMPLATE_DIR, role, `${file}.hbs`), `${role}/${file}`, context);
}

/**
 * templates/<role>/<file> as it is: a file that holds no stack config value (e.g. a Go template
 * that Prometheus itself renders, whose {{ }} Handlebars must not touch).
 */
export function verbatim(role: string, file: string): string {
  if (file.endsWith(".hbs")) throw new Error(`verbatim: ${role}/${file} is a Handlebars template; use render()`);
  return fs.readFileSync(path.join(TEMPLATE_DIR, role, file), "utf8");
}

/** Render roles/<role>/<file>.sh.hbs, the role's host-side shell. */
export function renderShell(role: string, file: string, context: object): string {
  if (!file.endsWith(".sh")) throw new Error(`renderShell: ${file} is not a shell template (<name>.sh)`);
  return renderFile(path.join(ROLES_DIR, role, `${file}.hbs`), `roles/${role}/${file}`, context);
}
