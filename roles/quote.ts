// Quoting for every format a config value lands in. Validation (model/config.ts) keeps values
// sane; this keeps even an unvalidated value inert: it is either quoted so the format reads it
// back as exactly one literal, or refused at render time where the format has no quoting that
// holds every character (refusing is then the only safe quoting).
//
// Error messages name the value's purpose and the offending character, never the value: a proxy
// URL or a password may carry credentials.

import { isIPv4 } from "net";

export class UnsafeValueError extends Error {
  constructor(purpose: string, format: string, why: string) {
    super(`${purpose} cannot be written into ${format}: ${why}`);
    this.name = "UnsafeValueError";
  }
}

function describe(ch: string): string {
  const code = ch.codePointAt(0)!;
  return code < 0x20 || code === 0x7f || code > 0x7e ? `U+${code.toString(16).toUpperCase().padStart(4, "0")}` : `'${ch}'`;
}

function asString(purpose: string, format: string, v: unknown): string {
  if (typeof v === "string") return v;
  if (typeof v === "number" && Number.isFinite(v)) return String(v);
  throw new UnsafeValueError(purpose, format, `it is ${v === null ? "null" : typeof v}, not a string`);
}

/** Refuse `v` unless every character matches `allowed` (and it is not empty). */
function only(purpose: string, format: string, v: unknown, allowed: RegExp): string {
  const s = asString(purpose, format, v);
  if (s === "") throw new UnsafeValueError(purpose, format, "it is empty");
  for (const ch of s) if (!allowed.test(ch)) throw new UnsafeValueError(purpose, format, `it contains ${describe(ch)}`);
  return s;
}

// Control characters: a newline starts a new statement/line in every line-based format.
const CONTROL = /[\u0000-\u001f\u007f]/;

/** A bash word: single quotes hold every byte but NUL, which bash cannot hold at all. */
export function shq(v: unknown, purpose = "a value"): string {
  const s = asString(purpose, "a bash word", v);
  if (s.includes("\0")) throw new UnsafeValueError(purpose, "a bash word", "it contains U+0000");
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * A SQL string literal (standard_conforming_strings, the default since 9.1). Control characters
 * are refused: the SQL travels in a bash here-document, where a newline could end it.
 */
export function sqlLiteral(v: unknown, purpose = "a value"): string {
  const s = asString(purpose, "a SQL string literal", v);
  const bad = [...s].find((ch) => CONTROL.test(ch));
  if (bad) throw new UnsafeValueError(purpose, "a SQL string literal", `it contains ${describe(bad)}`);
  return `'${s.replace(/'/g, "''")}'`;
}

/**
 * An apt.conf "string". apt has no escape inside quotes: a '"' ends the string and what follows
 * is read as configuration (Dpkg::Pre-Invoke runs a command as root). Printable ASCII only,
 * without '"', '\\' and apt's statement syntax ('{', '}', ';').
 */
export function aptString(v: unknown, purpose: string): string {
  return `"${only(purpose, "an apt.conf string", v, /^(?!["\\{};])[\x21-\x7e]$/)}"`;
}

/**
 * A bare token in a line-based file without quoting: INI (pgBouncer), haproxy.cfg, systemd
 * environment files, pg_hba addresses, YAML plain scalars. Letters, digits and . _ : / , = @ + -
 * only: no blank, newline, comment sign, quote or '$' can reach the file.
 */
export function configWord(v: unknown, purpose: string): string {
  return only(purpose, "a configuration file token", v, /^[A-Za-z0-9._:/,=@+-]$/);
}

/**
 * A host or cluster name where it is an identifier (etcd member, HAProxy server, etcd token):
 * letters, digits, '.', '_' and '-' only, so it cannot add a member, a server or a line.
 */
export function identifier(v: unknown, purpose: string): string {
  return only(purpose, "an identifier", v, /^[A-Za-z0-9._-]$/);
}

/** An IPv4 address where a config file takes one (bind lines, listen addresses, URLs). */
export function ipv4(v: unknown, purpose: string): string {
  const s = asString(purpose, "an IPv4 address", v);
  if (!isIPv4(s)) throw new UnsafeValueError(purpose, "an IPv4 address", "it is not an IPv4 address");
  return s;
}

/** An IPv4 CIDR (pg_hba address field): a keyword such as "all" would match every address. */
export function ipv4Cidr(v: unknown, purpose: string): string {
  const s = asString(purpose, "an IPv4 CIDR", v);
  const m = /^([0-9.]+)\/([0-9]{1,2})$/.exec(s);
  if (!m || !isIPv4(m[1]) || Number(m[2]) > 32) throw new UnsafeValueError(purpose, "an IPv4 CIDR", "it is not an IPv4 CIDR");
  return s;
}

/**
 * A PostgreSQL parameter name: Patroni writes `name = 'value'` into postgresql.conf without
 * quoting the name. Custom (extension) names hold one dot.
 */
export function postgresParameterName(v: unknown, purpose: string): string {
  const s = asString(purpose, "postgresql.conf", v);
  if (!/^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$/.test(s)) throw new UnsafeValueError(purpose, "postgresql.conf", "it is not a parameter name");
  return s;
}

/** A PostgreSQL parameter value: Patroni quotes it, but a line break cannot be quoted there. */
export function postgresParameterValue(v: unknown, purpose: string): string | number | boolean {
  if (typeof v === "boolean" || (typeof v === "number" && Number.isFinite(v))) return v;
  const s = asString(purpose, "postgresql.conf", v);
  const bad = [...s].find((ch) => CONTROL.test(ch));
  if (bad) throw new UnsafeValueError(purpose, "postgresql.conf", `it contains ${describe(bad)}`);
  return s;
}

/** An integer setting: a number (or its decimal string), never anything else. */
export function configInt(v: unknown, purpose: string): string {
  const s = typeof v === "number" ? String(v) : v;
  if (typeof s !== "string" || !/^-?[0-9]{1,15}$/.test(s)) throw new UnsafeValueError(purpose, "an integer setting", "it is not an integer");
  return s;
}

/**
 * A single-quoted haproxy.cfg argument (a password). Inside single quotes HAProxy (2.6)
 * interprets nothing ('#', '$', '\\', '"' and blanks are literal); a "'" is written as '\'' (close,
 * escaped quote, reopen: HAProxy joins the parts into one argument, as bash does). Control
 * characters are refused: a line break would end the line.
 */
export function haproxyQuoted(v: unknown, purpose: string): string {
  const s = asString(purpose, "a haproxy.cfg argument", v);
  const bad = [...s].find((ch) => CONTROL.test(ch));
  if (bad) throw new UnsafeValueError(purpose, "a haproxy.cfg argument", `it contains ${describe(bad)}`);
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** A "quoted" value of pgBouncer's auth_file: '"' doubled; a line break would start a new entry. */
export function pgbouncerQuoted(v: unknown, purpose: string): string {
  const s = asString(purpose, "pgBouncer's auth_file", v);
  const bad = [...s].find((ch) => CONTROL.test(ch));
  if (bad) throw new UnsafeValueError(purpose, "pgBouncer's auth_file", `it contains ${describe(bad)}`);
  return `"${s.replace(/"/g, '""')}"`;
}

// pg_hba.conf / pg_ident.conf keywords: a bare one means something else than the name.
const HBA_KEYWORDS = new Set(["all", "sameuser", "samerole", "samegroup", "replication", "samehost", "samenet"]);

/**
 * A user or database name in pg_hba.conf / pg_ident.conf. Plain names stay bare (the files on
 * running clusters do not change); anything else is double-quoted, which also makes a keyword or
 * a leading '+' / '@' literal. '"' and control characters are refused (a line per entry).
 */
export function hbaName(v: unknown, purpose: string): string {
  const s = asString(purpose, "pg_hba.conf", v);
  const bad = [...s].find((ch) => CONTROL.test(ch) || ch === '"');
  if (bad) throw new UnsafeValueError(purpose, "pg_hba.conf", `it contains ${describe(bad)}`);
  if (s === "") throw new UnsafeValueError(purpose, "pg_hba.conf", "it is empty");
  return /^[a-z_][a-z0-9_-]*$/.test(s) && !HBA_KEYWORDS.has(s) ? s : `"${s}"`;
}

/**
 * A value in pgBackRest's configuration file (INI, `key=value`, no quoting): printable ASCII
 * without blanks (pgBackRest trims them), so a value cannot add a line or a section.
 */
export function pgbackrestValue(v: unknown, purpose: string): string {
  return only(purpose, "pgBackRest's configuration", v, /^[\x21-\x7e]$/);
}

/**
 * A systemd calendar event (OnCalendar=): no '%' (a specifier), '\\' (line continuation), quote
 * or control character can reach the unit file.
 */
export function systemdCalendar(v: unknown, purpose: string): string {
  return only(purpose, "a systemd calendar event", v, /^[A-Za-z0-9*:,./~+ -]$/);
}
