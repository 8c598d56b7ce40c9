import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import pkg from '../../../package.json' with { type: 'json' };
import { RENDERER_CSP } from '../../shared/contract';
import { StudioError } from '../../shared/errors';
import { type RunningServer, startServer } from './server';
import { Studio } from '../studio';
import { resolveHome } from '../workspace';

let tmp: string;
let home: string;
let rendererDir: string;
const servers: RunningServer[] = [];

beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), 'gpt2-server-'));
  home = resolveHome({ flag: join(tmp, 'home'), env: {} });
  rendererDir = join(tmp, 'renderer');
  mkdirSync(join(rendererDir, 'assets'), { recursive: true });
  writeFileSync(join(rendererDir, 'index.html'), '<!doctype html><title>GPT-2 Studio</title>');
  writeFileSync(join(rendererDir, 'assets', 'app.js'), 'console.log(1)');
  writeFileSync(join(tmp, 'secret.txt'), 'do not serve me');
});

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  rmSync(tmp, { recursive: true, force: true });
});

async function start(extra: Partial<Parameters<typeof startServer>[0]> = {}): Promise<RunningServer> {
  const s = await startServer({ home, rendererDir, log: () => undefined, ...extra });
  servers.push(s);
  return s;
}

/** A raw request, so that the path is sent exactly as written (fetch would normalise `..`). */
function raw(
  s: RunningServer,
  path: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: s.port, path, method: opts.method ?? 'GET', headers: opts.headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }),
        );
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** POST /api/invoke/<name>, with the server's token unless `headers` gives an Authorization of its own. */
async function invoke(s: RunningServer, name: string, body: unknown = {}, headers: Record<string, string> = {}) {
  const res = await fetch(new URL(`/api/invoke/${name}`, s.url), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${s.token}`, ...headers },
    body: JSON.stringify(body),
  });
  return {
    status: res.status,
    json: (await res.json()) as {
      ok: boolean;
      value?: unknown;
      error?: { code: string; message: string; hint: string };
    },
  };
}

describe('startServer', () => {
  it('answers app-info over real HTTP on 127.0.0.1', async () => {
    const s = await start();
    expect(s.url).toBe(`http://127.0.0.1:${s.port}/`);
    const { status, json } = await invoke(s, 'app-info');
    expect(status).toBe(200);
    expect(json.ok).toBe(true);
    expect(json.value).toMatchObject({
      version: pkg.version,
      home,
      node: process.versions.node,
      platform: process.platform,
    });
  });

  it('answers engines-list with a tfjs entry', async () => {
    const s = await start();
    const { status, json } = await invoke(s, 'engines-list');
    expect(status).toBe(200);
    const engines = json.value as Array<{ name: string; available: boolean; detail: string; notes: string[] }>;
    expect(Array.isArray(engines)).toBe(true);
    const tfjs = engines.find((e) => e.name === 'tfjs');
    expect(tfjs).toBeDefined();
    expect(typeof tfjs?.available).toBe('boolean');
    expect(Array.isArray(tfjs?.notes)).toBe(true);
  });

  it('serves the renderer with the CSP and security headers', async () => {
    const s = await start();
    const res = await fetch(s.url);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    expect(res.headers.get('content-security-policy')).toBe(RENDERER_CSP);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(await res.text()).toContain('GPT-2 Studio');
    const js = await fetch(new URL('/assets/app.js', s.url));
    expect(js.headers.get('content-type')).toMatch(/^text\/javascript/);
  });

  it('blocks path traversal, encoded or through a symlink', async () => {
    symlinkSync(join(tmp, 'secret.txt'), join(rendererDir, 'link.txt'));
    const s = await start();
    for (const path of [
      '/../secret.txt',
      '/..%2fsecret.txt',
      '/assets/..%2f..%2fsecret.txt',
      '/%2e%2e/secret.txt',
      '/link.txt',
      '/..%5csecret.txt',
    ]) {
      const res = await raw(s, path);
      expect(res.status, path).toBeGreaterThanOrEqual(400);
      expect(res.body, path).not.toContain('do not serve me');
    }
    expect((await raw(s, '/assets/app.js')).status).toBe(200);
  });

  it('answers 404 with the known names for an unknown handler', async () => {
    const s = await start();
    const { status, json } = await invoke(s, 'runs-explode');
    expect(status).toBe(404);
    expect(json.ok).toBe(false);
    expect(json.error?.message).toContain('runs-explode');
    expect(json.error?.hint).toContain('app-info');
    // a name that exists on Object.prototype is not a handler either
    expect((await invoke(s, 'constructor')).status).toBe(404);
  });

  it('answers 400 with a message for a bad argument or body', async () => {
    const s = await start();
    const bad = await invoke(s, 'app-info', { arg: 42 });
    expect(bad.status).toBe(400);
    expect(bad.json.error?.code).toBe('BAD_ARGUMENT');
    expect(bad.json.error?.message).toMatch(/Bad argument for "app-info".*no argument/s);

    const extraKey = await invoke(s, 'app-info', { arg: undefined, evil: true });
    expect(extraKey.status).toBe(400);

    const notJson = await raw(s, '/api/invoke/app-info', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${s.token}` },
      body: '{nope',
    });
    expect(notJson.status).toBe(400);
    expect(notJson.body).toContain('not JSON');
  });

  it('refuses a body without JSON content type, a wrong method and a body over the limit', async () => {
    const s = await start({ maxBodyBytes: 100 });
    const auth = { Authorization: `Bearer ${s.token}` };
    const form = await raw(s, '/api/invoke/app-info', {
      method: 'POST',
      headers: { 'Content-Type': 'text/plain', ...auth },
      body: '{}',
    });
    expect(form.status).toBe(415);
    const get = await raw(s, '/api/invoke/app-info', { headers: auth });
    expect(get.status).toBe(405);
    const big = await invoke(s, 'app-info', { arg: 'x'.repeat(500) });
    expect(big.status).toBe(413);
  });

  it('refuses cross-origin requests and foreign Host headers on loopback, even with the token', async () => {
    const s = await start();
    const cross = await raw(s, '/api/invoke/app-info', {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        Origin: 'http://evil.example',
        Authorization: `Bearer ${s.token}`,
      },
      body: '{}',
    });
    expect(cross.status).toBe(403);
    const rebound = await raw(s, '/', { headers: { Host: `evil.example:${s.port}` } });
    expect(rebound.status).toBe(403);
  });

  it('requires the token on every /api request', async () => {
    const token = 'correct-horse-battery';
    const s = await start({ token });
    const none = await invoke(s, 'app-info', {}, { Authorization: '' });
    expect(none.status).toBe(401);
    expect(none.json.ok).toBe(false);
    const wrong = await invoke(s, 'app-info', {}, { Authorization: 'Bearer correct-horse-batterX' });
    expect(wrong.status).toBe(401);
    const right = await invoke(s, 'app-info', {}, { Authorization: `Bearer ${token}` });
    expect(right.status).toBe(200);
    // a token in the query is no credential on the API (only the page exchanges it for the cookie)
    expect(
      (
        await raw(s, `/api/invoke/app-info?token=${token}`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: '{}',
        })
      ).status,
    ).toBe(401);
    expect((await raw(s, '/api/events')).status).toBe(401);
    expect((await raw(s, `/api/events?token=${token}`)).status).toBe(401);
    // the static page itself needs no token (it holds no data)
    expect((await fetch(s.url)).status).toBe(200);
  });

  it('makes a long random token when none is given, and refuses a short one with a hint', async () => {
    const a = await start();
    const b = await start();
    expect(a.token).toMatch(/^[A-Za-z0-9_-]{32,}$/);
    expect(a.token).not.toBe(b.token);
    expect(a.openUrl).toBe(`${a.url}?token=${a.token}`);
    await expect(startServer({ home, rendererDir, token: 'short-token' })).rejects.toSatisfy(
      (e: unknown) => e instanceof StudioError && /too short/.test(e.message) && /openssl rand/.test(e.hint),
    );
  });

  it('refuses a missing renderer with a hint to build', async () => {
    await expect(startServer({ home, rendererDir: join(tmp, 'nope') })).rejects.toSatisfy(
      (e: unknown) => e instanceof StudioError && e.code === 'FILE_NOT_FOUND' && /npm run build/.test(e.hint),
    );
  });

  it('streams push events over SSE, with the Bearer token', async () => {
    const token = 'sse-token-123456789';
    const studio = new Studio({ home });
    const s = await start({ token, studio });
    const controller = new AbortController();
    const res = await fetch(new URL('/api/events', s.url), {
      signal: controller.signal,
      headers: { Authorization: `Bearer ${token}` },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    // wait for the greeting, so that the subscription exists before emitting
    while (!text.includes(': connected')) text += decoder.decode((await reader.read()).value, { stream: true });
    studio.emit('run-status', { runId: 'r1', status: 'running' });
    while (!text.includes('"r1"')) text += decoder.decode((await reader.read()).value, { stream: true });
    const line = text.split('\n').find((l) => l.startsWith('data: {'));
    expect(text).toContain('event: studio\n');
    expect(JSON.parse(line!.slice(6))).toEqual({ name: 'run-status', payload: { runId: 'r1', status: 'running' } });
    controller.abort();
  });

  it('closes while an event stream is open', async () => {
    const s = await startServer({ home, rendererDir });
    const res = await fetch(new URL('/api/events', s.url), { headers: { Authorization: `Bearer ${s.token}` } });
    expect(res.status).toBe(200);
    await s.close();
    await expect(fetch(s.url)).rejects.toThrow();
  });
});
