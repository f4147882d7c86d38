// Minimal IPv4/CIDR arithmetic for config validation (no dependency needed for 30 lines).
export function isIPv4(s: string): boolean {
  const parts = s.split(".");
  return parts.length === 4 && parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255 && String(Number(p)) === p);
}

export function ipToInt(ip: string): number {
  return ip.split(".").reduce((acc, p) => acc * 256 + Number(p), 0);
}

export interface Cidr { network: number; prefix: number; size: number }

export function parseCidr(s: string): Cidr | undefined {
  const m = /^([\d.]+)\/(\d{1,2})$/.exec(s);
  if (!m || !isIPv4(m[1]) || Number(m[2]) > 32) return undefined;
  const prefix = Number(m[2]);
  const size = 2 ** (32 - prefix);
  const addr = ipToInt(m[1]);
  if (addr % size !== 0) return undefined; // host bits set: 10.0.0.5/24 is a typo, not a network
  return { network: addr, prefix, size };
}

export function cidrsOverlap(a: string, b: string): boolean {
  const x = parseCidr(a), y = parseCidr(b);
  if (!x || !y) return false;
  return x.network < y.network + y.size && y.network < x.network + x.size;
}

export function ipInCidr(ip: string, cidr: string): boolean {
  const c = parseCidr(cidr);
  if (!c || !isIPv4(ip)) return false;
  const n = ipToInt(ip);
  return n >= c.network && n < c.network + c.size;
}
