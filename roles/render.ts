// Handlebars in strict mode: a variable a template names but the context lacks is an error,
// never an empty string in a config file.
import * as fs from "fs";
import * as path from "path";
import Handlebars from "handlebars";

export const TEMPLATE_DIR = path.join(__dirname, "..", "templates");

const hb = Handlebars.create();
// JSON is valid YAML: quotes any password or path safely in patroni.yml.
hb.registerHelper("json", (v: unknown) => JSON.stringify(v));
hb.registerHelper("join", (v: unknown[], sep: unknown) => v.join(typeof sep === "string" ? sep : ","));
// pgBouncer auth_file quoting: "user" "password" with embedded quotes doubled.
hb.registerHelper("pgbq", (v: string) => `"${String(v).replace(/"/g, '""')}"`);

// Bash single-quoted word and SQL string literal, for values spliced into host-side scripts.
hb.registerHelper("shq", (v: unknown) => `'${String(v).replace(/'/g, `'\\''`)}'`);
hb.registerHelper("sqlq", (v: unknown) => `'${String(v).replace(/'/g, "''")}'`);

const cache = new Map<string, HandlebarsTemplateDelegate>();

/** Render templates/<role>/<file>.hbs. Templates are read once, at first use. */
export function render(role: string, file: string, context: object): string {
  const key = `${role}/${file}`;
  let tpl = cache.get(key);
  if (!tpl) {
    const src = fs.readFileSync(path.join(TEMPLATE_DIR, role, `${file}.hbs`), "utf8");
    tpl = hb.compile(src, { strict: true, noEscape: true });
    cache.set(key, tpl);
  }
  try {
    return tpl(context);
  } catch (e) {
    throw new Error(`template ${key}.hbs: ${(e as Error).message}`);
  }
}
