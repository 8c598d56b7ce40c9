/**
 * The URL policy for requests from outside: which addresses are private, the schemes, every resolved address, and
 * a redirect from an allowed host to a private one (checked at each hop, with a loopback server).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { StudioError } from '../../shared/errors';
import { checkFetchUrl, currentUrlPolicy, guardedFetch, isPrivateAddress, withUrlPolicy, type UrlPolicy } from './urls';

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((c) => c()));
});

async function refused(p: Promise<unknown>): Promise<StudioError> {
  const e = await p.then(
    () => null,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(StudioError);
  return e as StudioError;
}

describe('isPrivateAddress', () => {
  it('flags loopback, private, link-local, unspecified and mapped addresses, and passes public ones', () => {
    for (const ip of [
      '127.0.0.1',
      '127.255.0.9',
      '10.1.2.3',
      '172.16.0.1',
      '172.31.255.255',
      '192.168.1.1',
      '169.254.169.254',
      '0.0.0.0',
      '100.64.0.1',
      '224.0.0.1',
      '255.255.255.255',
      '::1',
      '::',
      'fc00::1',
      'fd12:3456::1',
      'fe80::1',
      '::ffff:127.0.0.1',
      '::ffff:7f00:1',
      '::ffff:10.0.0.1',
    ]) {
      expect(isPrivateAddress(ip), ip).toBe(true);
    }
    for (const ip of ['8.8.8.8', '1.1.1.1', '172.32.0.1', '192.169.0.1', '2606:4700::1111', '::ffff:8.8.8.8']) {
      expect(isPrivateAddress(ip), ip).toBe(false);
    }
  });
});

describe('checkFetchUrl', () => {
  const strict: UrlPolicy = { allowPrivate: false, lookup: async () => ['93.184.216.34'] };

  it('refuses other schemes under any policy', async () => {
    for (const url of ['file:///etc/passwd', 'ftp://example.com/x', 'data:text/plain,hi', 'gopher://x']) {
      expect((await refused(checkFetchUrl(url, { allowPrivate: true }))).code, url).toBe('FORBIDDEN');
      expect((await refused(checkFetchUrl(url, strict))).code, url).toBe('FORBIDDEN');
    }
    expect((await refused(checkFetchUrl('not a url', strict))).code).toBe('BAD_ARGUMENT');
  });

  it('refuses private addresses, literal or resolved, and says how to allow them', async () => {
    for (const url of [
      'http://127.0.0.1:8000/input.txt',
      'http://[::1]/',
      'http://169.254.169.254/latest/meta-data/',
      'http://10.0.0.5/',
      'http://2130706433/',
      'http://[::ffff:127.0.0.1]/',
    ]) {
      const e = await refused(checkFetchUrl(url, strict));
      expect(e.code, url).toBe('FORBIDDEN');
      expect(e.hint, url).toContain('Allow private and loopback URLs');
    }
    // one private address among the answers is enough to refuse
    const e = await refused(
      checkFetchUrl('https://mirror.example/x', {
        allowPrivate: false,
        lookup: async () => ['93.184.216.34', '10.0.0.7'],
      }),
    );
    expect(e.message).toContain('mirror.example resolves to 10.0.0.7');
    // the real resolver: localhost is loopback
    expect((await refused(checkFetchUrl('http://localhost:1/', { allowPrivate: false }))).code).toBe('FORBIDDEN');
    // public is fine; private is fine when allowed
    await expect(checkFetchUrl('https://mirror.example/x', strict)).resolves.toBeInstanceOf(URL);
    await expect(checkFetchUrl('http://127.0.0.1:8000/input.txt', { allowPrivate: true })).resolves.toBeInstanceOf(URL);
  });

  it('defaults to the policy of the current request, and to allowing everything outside one (the CLI)', async () => {
    expect(currentUrlPolicy().allowPrivate).toBe(true);
    await withUrlPolicy({ allowPrivate: false }, async () => {
      await new Promise((r) => setTimeout(r, 1));
      expect(currentUrlPolicy().allowPrivate).toBe(false);
      expect((await refused(checkFetchUrl('http://127.0.0.1/'))).code).toBe('FORBIDDEN');
    });
  });
});

describe('guardedFetch', () => {
  /** A loopback server: /go redirects to `target`, /data answers "data"; it records the paths asked for. */
  async function server(target: () => string) {
    const seen: string[] = [];
    const auth: Array<string | undefined> = [];
    const s = http.createServer((req, res) => {
      seen.push(req.url ?? '');
      auth.push(req.headers.authorization);
      if (req.url === '/go') res.writeHead(302, { location: target() }).end();
      else res.writeHead(200, { 'content-type': 'text/plain' }).end('data');
    });
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    closers.push(() => new Promise<void>((r) => s.close(() => r())));
    return { port: (s.address() as AddressInfo).port, seen, auth };
  }

  it('checks each redirect hop before it is requested', async () => {
    const srv = await server(() => `http://127.0.0.1:${srv.port}/data`);
    // localhost stands in for a public host (the policy's resolver says so) that redirects into the server's network
    const policy: UrlPolicy = { allowPrivate: false, lookup: async () => ['93.184.216.34'] };
    const e = await refused(withUrlPolicy(policy, () => guardedFetch(`http://localhost:${srv.port}/go`)));
    expect(e.code).toBe('FORBIDDEN');
    expect(e.message).toContain(`http://127.0.0.1:${srv.port}/data`);
    // the first hop was asked for; the private one never was
    expect(srv.seen).toEqual(['/go']);
  });

  it('follows redirects itself when private addresses are allowed, and drops Authorization across origins', async () => {
    const other = await server(() => '/data');
    const first = await server(() => `http://localhost:${other.port}/data`);
    const res = await withUrlPolicy({ allowPrivate: true }, () =>
      guardedFetch(`http://127.0.0.1:${first.port}/go`, { headers: { authorization: 'Bearer hf_x' } }),
    );
    expect(await res.text()).toBe('data');
    // the strict path: a public-looking first hop (by policy) to another origin loses the header
    const strict = await withUrlPolicy({ allowPrivate: false, lookup: async () => ['93.184.216.34'] }, () =>
      guardedFetch(`http://localhost:${first.port}/go`, { headers: { authorization: 'Bearer hf_x' } }),
    );
    expect(await strict.text()).toBe('data');
    expect(first.auth.at(-1)).toBe('Bearer hf_x');
    expect(other.auth.at(-1)).toBeUndefined();
  });
});
