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

const IPV4_SPACE = 2 ** 32;

/** True when the ranges together cover every IPv4 address (0.0.0.0/1 + 128.0.0.0/1 does). */
export function cidrsCoverEverything(cidrs: string[]): boolean {
  const spans = cidrs.map(parseCidr).filter((c): c is Cidr => !!c)
    .map((c) => [c.network, c.network + c.size] as const)
    .sort((a, b) => a[0] - b[0]);
  let reached = 0;
  for (const [start, end] of spans) {
    if (start > reached) return false;
    reached = Math.max(reached, end);
  }
  return reached >= IPV4_SPACE;
}

/** RFC 1918 private ranges and RFC 6598 shared (carrier-grade NAT) space: not the internet. */
export const PRIVATE_RANGES = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"] as const;

/** The whole range lies inside one private range. */
export function isPrivateCidr(cidr: string): boolean {
  const c = parseCidr(cidr);
  if (!c) return false;
  return PRIVATE_RANGES.some((p) => {
    const r = parseCidr(p)!;
    return c.network >= r.network && c.network + c.size <= r.network + r.size;
  });
}

export function intToIp(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join(".");
}

/** A subnet's network and broadcast addresses; none for /31 and /32, where every address is a host (RFC 3021). */
export function reservedAddresses(cidr: string): string[] {
  const c = parseCidr(cidr);
  if (!c || c.prefix > 30) return [];
  return [intToIp(c.network), intToIp(c.network + c.size - 1)];
}

/**
 * The four addresses GCP reserves in every subnet's primary range: network, default gateway,
 * second-to-last and broadcast (https://cloud.google.com/vpc/docs/subnets#unusable-ip-addresses-in-every-subnet).
 */
export function gcpReservedAddresses(cidr: string): string[] {
  const c = parseCidr(cidr);
  if (!c || c.prefix > 29) return [];
  const last = c.network + c.size - 1;
  return [c.network, c.network + 1, last - 1, last].map(intToIp);
}
