/**
 * Which URLs the studio fetches for a request from outside the process (the browser over HTTP, the renderer over
 * IPC): http(s) only, and, unless the allowPrivateUrls setting is on, no loopback, private or link-local address,
 * so that a client of `serve` cannot make the server read its own network (a cloud metadata service, a database
 * bound to 127.0.0.1) and hand the answer back through a dataset preview.
 *
 * The policy travels with the request's asynchronous work (AsyncLocalStorage): src/node/studio/dispatch.ts sets it
 * for each request, and guardedFetch, where downloads and Hub listings connect, reads it. Without one (the CLI, which
 * acts with its user's own rights, and tests) every http(s) address is allowed, as before.
 *
 * Each hop of a redirect is checked before it is requested, and every address a host name resolves to must pass.
 * What is left: fetch resolves the name again when it connects, so a name server that answers differently within
 * that moment (DNS rebinding) is not caught.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import dns from 'node:dns/promises';
import net from 'node:net';
import { ErrorCode, StudioError } from '../../shared/errors';

export interface UrlPolicy {
  /** loopback, private and link-local addresses may be fetched (the allowPrivateUrls setting; the CLI) */
  allowPrivate: boolean;
  /** every address of a host name; default dns.lookup (all of them). Tests give their own. */
  lookup?: (hostname: string) => Promise<string[]>;
}

const OPEN: UrlPolicy = { allowPrivate: true };
const storage = new AsyncLocalStorage<UrlPolicy>();

/** Runs `fn` (and all the asynchronous work it starts) under `policy`. */
export function withUrlPolicy<T>(policy: UrlPolicy, fn: () => T): T {
  return storage.run(policy, fn);
}

/** The policy of the request being served; without one, every http(s) address is allowed. */
export function currentUrlPolicy(): UrlPolicy {
  return storage.getStore() ?? OPEN;
}

/**
 * Addresses a server must not be made to reach for a remote client. IPv4: 0/8 ("this network"; 0.0.0.0 reaches the
 * host itself), 10/8, 100.64/10 (carrier-grade NAT; some clouds put their metadata service there), 127/8, 169.254/16
 * (link-local, the usual metadata address 169.254.169.254), 172.16/12, 192.168/16, 224/4 (multicast) and 240/4
 * (reserved, with the broadcast address). IPv6: ::/128, ::1, fc00::/7 (unique local), fe80::/10 (link-local),
 * ff00::/8 (multicast); an IPv4-mapped address (::ffff:a.b.c.d) is checked as its IPv4 address.
 */
const blocked = new net.BlockList();
for (const [prefix, bits] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.168.0.0', 16],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  blocked.addSubnet(prefix, bits, 'ipv4');
}
for (const [prefix, bits] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
] as const) {
  blocked.addSubnet(prefix, bits, 'ipv6');
}

/** Whether an IP address (v4 or v6, without brackets) is loopback, private, link-local or otherwise not public. */
export function isPrivateAddress(ip: string): boolean {
  const family = net.isIP(ip);
  if (family === 4) return blocked.check(ip, 'ipv4');
  // (BlockList matches an IPv4-mapped IPv6 address, ::ffff:7f00:1, against the IPv4 subnets)
  if (family === 6) return blocked.check(ip, 'ipv6');
  // not an address at all: treat as not public
  return true;
}

async function defaultLookup(hostname: string): Promise<string[]> {
  return (await dns.lookup(hostname, { all: true, verbatim: true })).map((a) => a.address);
}

const PRIVATE_HINT =
  'The server does not fetch loopback or private addresses for a remote client. If it should reach a host on its own network (a local mirror), turn on "Allow private and loopback URLs" in Settings → Allowed folders.';

/**
 * Checks one URL before it is requested: http(s), and under a policy without private addresses, every address its
 * host resolves to is public. A name that does not resolve throws the lookup's own error (as fetch would).
 */
export async function checkFetchUrl(url: string, policy: UrlPolicy = currentUrlPolicy()): Promise<URL> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new StudioError(ErrorCode.BAD_ARGUMENT, `"${url}" is not a URL.`, 'Give a full http:// or https:// URL.');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new StudioError(
      ErrorCode.FORBIDDEN,
      `"${url}" is not an http(s) URL (${u.protocol}).`,
      'Give an http:// or https:// URL; to use a file of this machine, pick it as a local file instead.',
    );
  }
  if (policy.allowPrivate) return u;
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  const addresses = net.isIP(host) ? [host] : await (policy.lookup ?? defaultLookup)(host);
  if (addresses.length === 0) {
    throw new StudioError(
      ErrorCode.NETWORK,
      `The host name "${host}" of ${u.href} resolves to no address.`,
      'Check the URL.',
    );
  }
  const bad = addresses.filter(isPrivateAddress);
  if (bad.length > 0) {
    const via = net.isIP(host) ? '' : ` (${host} resolves to ${bad.join(', ')})`;
    throw new StudioError(
      ErrorCode.FORBIDDEN,
      `Refused to fetch ${u.href}: it leads to a loopback or private address${via || ` (${host})`}.`,
      PRIVATE_HINT,
    );
  }
  return u;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 20;

/**
 * fetch under the current policy. Without private addresses, redirects are followed here, one hop at a time, each
 * checked before it is requested; Authorization and Cookie are not sent on to another origin (as fetch itself does).
 */
export async function guardedFetch(
  url: string,
  init: Omit<RequestInit, 'redirect' | 'headers'> & { headers?: Record<string, string> } = {},
): Promise<Response> {
  const policy = currentUrlPolicy();
  if (policy.allowPrivate) {
    await checkFetchUrl(url, policy);
    return fetch(url, { ...init, redirect: 'follow' });
  }
  let current = url;
  let headers: Record<string, string> = { ...init.headers };
  for (let hop = 0; ; hop++) {
    await checkFetchUrl(current, policy);
    const res = await fetch(current, { ...init, headers, redirect: 'manual' });
    const location = res.headers.get('location');
    if (!REDIRECTS.has(res.status) || location === null) return res;
    await res.body?.cancel();
    if (hop >= MAX_REDIRECTS) {
      throw new StudioError(
        ErrorCode.NETWORK,
        `${url} redirects more than ${MAX_REDIRECTS} times.`,
        'Check the URL; the server may be misconfigured.',
      );
    }
    const next = new URL(location, current);
    if (next.origin !== new URL(current).origin) {
      headers = Object.fromEntries(Object.entries(headers).filter(([k]) => !/^(authorization|cookie)$/i.test(k)));
    }
    current = next.href;
  }
}
