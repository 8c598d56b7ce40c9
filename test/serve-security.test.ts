/**
 * `gpt2-studio serve` on a shared machine, against a real server on a loopback port, as another local user would
 * try it: the token (required on loopback too, exchanged for a cookie, never logged), the file API confined to the
 * workspace and the allowed folders (traversal, symlinks, absolute paths; inside works), URL fetches (schemes,
 * private addresses, with and without the setting; the Hub endpoint from Settings too), no stack in any answer,
 * and the rate limit.
 */
import fs from 'node:fs';
import { request } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import type { StudioEvents } from '../src/shared/contract';
import { parseServeArgs } from '../src/cli/serve';
import { type RunningServer, type ServerOptions, startServer } from '../src/node/serve/server';
import { Studio } from '../src/node/studio';
import { noArgument } from '../src/node/studio/registry';
import { resolveHome } from '../src/node/workspace';
import { startLoopback, type Loopback } from './helpers/loopback';

let tmp: string;
let home: string;
let rendererDir: string;
let outside: string;
let allowed: string;
let logs: string[];
const servers: RunningServer[] = [];
const loopbacks: Loopback[] = [];

beforeEach(() => {
  tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-serve-sec-')));
  home = resolveHome({ flag: path.join(tmp, 'home'), env: {} });
  rendererDir = path.join(tmp, 'renderer');
  fs.mkdirSync(rendererDir);
  fs.writeFileSync(path.join(rendererDir, 'index.html'), '<!doctype html><title>GPT-2 Studio</title>');
  outside = path.join(tmp, 'outside');
  allowed = path.join(tmp, 'allowed');
  fs.mkdirSync(outside);
  fs.mkdirSync(allowed);
  // what the attack read: a file only its owner may read, outside the workspace
  fs.writeFileSync(path.join(outside, 'secret.txt'), 'the root-only secret\n', { mode: 0o600 });
  fs.writeFileSync(path.join(outside, 'config.json'), '{"mine": true}\n');
  fs.writeFileSync(path.join(allowed, 'corpus.txt'), 'Once upon a time there was a small model.\n'.repeat(200));
  logs = [];
});

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  await Promise.all(loopbacks.splice(0).map((l) => l.close()));
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function start(extra: Partial<ServerOptions> = {}): Promise<RunningServer> {
  const s = await startServer({ home, rendererDir, log: (line) => logs.push(line), ...extra });
  servers.push(s);
  return s;
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json?: {
    ok: boolean;
    value?: unknown;
    error?: { code: string; message: string; hint: string; requestId?: string; stack?: string };
  };
}

/** A raw HTTP request (no redirect following, no cookie jar). */
function raw(
  s: RunningServer,
  p: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: s.port, path: p, method: opts.method ?? 'GET', headers: opts.headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: Answer['json'];
          try {
            json = JSON.parse(text) as Answer['json'];
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

type Auth = { bearer: string } | { cookie: string } | 'none';

/** POST /api/invoke/<name> with {arg}; the server's own token unless `auth` says otherwise. */
function api(s: RunningServer, name: string, arg?: unknown, auth?: Auth): Promise<Answer> {
  const a = auth ?? { bearer: s.token };
  const headers: Record<string, string> = { 'Content-Type': 'application/json' };
  if (a !== 'none' && 'bearer' in a) headers.Authorization = `Bearer ${a.bearer}`;
  if (a !== 'none' && 'cookie' in a) headers.Cookie = a.cookie;
  return raw(s, `/api/invoke/${name}`, {
    method: 'POST',
    headers,
    body: JSON.stringify(arg === undefined ? {} : { arg }),
  });
}

/** Expects a refusal of `code` with the fields of an error answer and nothing else (no stack). */
function expectRefused(a: Answer, status: number, code: string): NonNullable<NonNullable<Answer['json']>['error']> {
  expect(a.status, a.text).toBe(status);
  const error = a.json?.error;
  expect(error?.code, a.text).toBe(code);
  expect(Object.keys(error ?? {}).sort()).toEqual(['code', 'hint', 'message', 'requestId']);
  expect(a.text).not.toContain('"stack"');
  expect(error?.requestId).toBe(a.headers['x-request-id']);
  return error!;
}

/** Logs in through the printed address: the cookie that the exchange sets (name=value). */
async function login(s: RunningServer): Promise<string> {
  const r = await raw(s, `/?token=${encodeURIComponent(s.token)}`);
  expect(r.status).toBe(302);
  const setCookie = String(r.headers['set-cookie']);
  return setCookie.split(';')[0]!;
}

/**
 * Collects dataset-status events from now on (a job may end before its request's answer is read); `ended(jobId)`
 * resolves with the job's final one.
 */
function datasetStatuses(studio: Studio): { ended(jobId: string): Promise<StudioEvents['dataset-status']> } {
  const seen: Array<StudioEvents['dataset-status']> = [];
  const waiting: Array<() => void> = [];
  studio.on('dataset-status', (e) => {
    seen.push(e);
    for (const w of waiting.splice(0)) w();
  });
  return {
    async ended(jobId) {
      for (;;) {
        const e = seen.find((x) => x.jobId === jobId && x.status !== 'running');
        if (e) return e;
        await new Promise<void>((r) => waiting.push(r));
      }
    },
  };
}

describe('serve: the token', () => {
  it('is required on loopback too, is exchanged for an HttpOnly SameSite=Strict cookie, and never reaches the log', async () => {
    const s = await start();
    expect(s.host).toBe('127.0.0.1');
    expect(s.token.length).toBeGreaterThanOrEqual(32);

    // without it: 401 on the API and the event stream
    const none = await api(s, 'app-info', undefined, 'none');
    expectRefused(none, 401, 'UNAUTHORIZED');
    expect(none.json?.error?.hint).toContain('?token=');
    expect((await raw(s, '/api/events')).status).toBe(401);
    expect((await raw(s, `/api/events?token=${s.token}`)).status).toBe(401);
    expectRefused(await api(s, 'app-info', undefined, { bearer: `${s.token}x` }), 401, 'UNAUTHORIZED');

    // the printed address: a wrong token is refused; the right one sets the cookie and leaves the address
    expect((await raw(s, '/?token=not-the-token-at-all')).status).toBe(401);
    const ex = await raw(s, `/?token=${encodeURIComponent(s.token)}&view=1`);
    expect(ex.status).toBe(302);
    expect(ex.headers.location).toBe('/?view=1');
    const setCookie = String(ex.headers['set-cookie']);
    expect(setCookie).toMatch(/; HttpOnly/);
    expect(setCookie).toMatch(/; SameSite=Strict/);
    expect(setCookie).toMatch(/; Path=\//);
    expect(setCookie).not.toContain(s.token);
    expect(setCookie.startsWith(`gpt2-studio-${s.port}=`)).toBe(true);
    // "//host" in the address must not become a redirect to another site
    expect((await raw(s, `//evil.example/?token=${encodeURIComponent(s.token)}`)).headers.location).not.toMatch(
      /^\/\//,
    );

    // the cookie (and the Bearer header) open the API and the event stream
    const cookie = setCookie.split(';')[0]!;
    const withCookie = await api(s, 'app-info', undefined, { cookie });
    expect(withCookie.status).toBe(200);
    expect((await api(s, 'app-info')).status).toBe(200);
    const controller = new AbortController();
    const sse = await fetch(new URL('/api/events', s.url), { headers: { Cookie: cookie }, signal: controller.signal });
    expect(sse.status).toBe(200);
    controller.abort();
    expectRefused(await api(s, 'app-info', undefined, { cookie: `gpt2-studio-${s.port}=forged` }), 401, 'UNAUTHORIZED');

    // the failures were logged with their request ids, and the token nowhere
    expect(logs.some((l) => l.includes(`[${none.json?.error?.requestId}]`) && l.includes('401 UNAUTHORIZED'))).toBe(
      true,
    );
    expect(logs.join('\n')).not.toContain(s.token);
    expect(logs.join('\n')).not.toContain(encodeURIComponent(s.token));
  });

  it('takes the token from --token or GPT2_STUDIO_TOKEN (kept out of ps), and refuses a short one', async () => {
    expect(parseServeArgs([], { GPT2_STUDIO_TOKEN: 'from-the-environment-123' }).token).toBe(
      'from-the-environment-123',
    );
    expect(parseServeArgs(['--token', 'from-the-flag-1234567'], { GPT2_STUDIO_TOKEN: 'x' }).token).toBe(
      'from-the-flag-1234567',
    );
    expect(parseServeArgs([], {}).token).toBeUndefined();
    expect(parseServeArgs(['--rate-limit', '5/2'], {}).rateLimit).toEqual({ requests: 5, windowMs: 2000 });
    expect(parseServeArgs(['--rate-limit', 'off'], {}).rateLimit).toBe(false);
    expect(() => parseServeArgs(['--rate-limit', 'lots'], {})).toThrow(/rate-limit/);
    await expect(start({ token: 'hunter2hunter2' })).rejects.toThrow(/too short/);
  });
});

describe('serve: file access', () => {
  it('refuses paths outside the workspace: absolute, traversal, symlinks, the settings file', async () => {
    const s = await start();
    const secret = path.join(outside, 'secret.txt');
    fs.symlinkSync(outside, path.join(home, 'escape'));
    fs.symlinkSync(secret, path.join(home, 'secret-link.txt'));

    const browse = expectRefused(await api(s, 'files-browse', { path: '/etc' }), 403, 'FORBIDDEN');
    expect(browse.message).toContain('"/etc"');
    expect(browse.message).toContain(`the workspace ${home}`);
    expect(browse.hint).toContain('Settings → Allowed folders');
    expectRefused(await api(s, 'files-browse', { path: `${home}/../outside` }), 403, 'FORBIDDEN');
    expectRefused(await api(s, 'files-browse', { path: path.join(home, 'escape') }), 403, 'FORBIDDEN');

    // the attack: prepare a root-only file as a dataset, then preview it
    for (const file of [
      secret,
      path.join(home, 'escape', 'secret.txt'),
      path.join(home, 'secret-link.txt'),
      `${home}/../outside/secret.txt`,
    ]) {
      expectRefused(await api(s, 'datasets-prepare', { source: 'local', file, name: 'loot' }), 403, 'FORBIDDEN');
      expectRefused(await api(s, 'datasets-estimate', { source: 'local', file }), 403, 'FORBIDDEN');
    }
    expect((await api(s, 'datasets-list')).json?.value).toEqual([]);
    // the HF token lives in the workspace's settings file: no request may read it
    expect(
      expectRefused(
        await api(s, 'datasets-prepare', { source: 'local', file: path.join(home, 'settings.json') }),
        403,
        'FORBIDDEN',
      ).message,
    ).toContain('settings file');

    // writing: an export into any folder, overwriting a config.json there
    expectRefused(
      await api(s, 'checkpoints-export', { runId: 'run-a', step: 1, dest: outside, overwrite: true }),
      403,
      'FORBIDDEN',
    );
    expectRefused(
      await api(s, 'checkpoints-export', { runId: 'run-a', step: 1, dest: path.join(home, 'escape', 'new') }),
      403,
      'FORBIDDEN',
    );
    expect(fs.readFileSync(path.join(outside, 'config.json'), 'utf8')).toBe('{"mine": true}\n');
    expect(fs.existsSync(path.join(outside, 'model.safetensors'))).toBe(false);

    // every other request that names a file
    expectRefused(await api(s, 'models-import', { path: outside }), 403, 'FORBIDDEN');
    expectRefused(await api(s, 'evals-hellaswag', { target: { modelId: 'gpt2' }, data: secret }), 403, 'FORBIDDEN');
    expectRefused(await api(s, 'generate-start', { target: { weightsPath: outside }, prompt: 'hi' }), 403, 'FORBIDDEN');
    expectRefused(
      await api(s, 'generate-sample', { targets: [{ weightsPath: outside }], prompt: 'hi' }),
      403,
      'FORBIDDEN',
    );
    expectRefused(await api(s, 'chats-create', { target: { weightsPath: outside } }), 403, 'FORBIDDEN');
    expectRefused(await api(s, 'tokens-score', { target: { weightsPath: outside }, text: 'hi' }), 403, 'FORBIDDEN');
    expectRefused(
      await api(s, 'evals-val-loss', { target: { weightsPath: outside }, dataset: 'builtin' }),
      403,
      'FORBIDDEN',
    );
    const initFromOutside = { model: { preset: 'nano' }, dataset: 'builtin', init_from: 'weights', init_path: outside };
    expectRefused(await api(s, 'runs-create', { config: initFromOutside }), 403, 'FORBIDDEN');
    expectRefused(await api(s, 'config-validate', { config: initFromOutside }), 403, 'FORBIDDEN');
    expectRefused(
      await api(s, 'runs-shape', { config: { ...initFromOutside, init_path: '../outside' } }),
      403,
      'FORBIDDEN',
    );
  });

  it('allows the workspace and the folders added in Settings, and the picker starts at them', async () => {
    const s = await start();
    const first = await api(s, 'files-browse');
    expect(first.status).toBe(200);
    const listing = first.json?.value as {
      path: string;
      parent: string | null;
      roots: Array<{ path: string; label: string }>;
    };
    expect(listing.path).toBe(home);
    expect(listing.parent).toBeNull();
    expect(listing.roots).toEqual([{ path: home, label: 'the workspace' }]);

    expectRefused(await api(s, 'files-browse', { path: allowed }), 403, 'FORBIDDEN');
    // not the root, nor a system folder
    expectRefused(await api(s, 'settings-set', { allowedFolders: ['/'] }), 422, 'BAD_ARGUMENT');
    expectRefused(await api(s, 'settings-set', { allowedFolders: ['/etc'] }), 422, 'BAD_ARGUMENT');
    const set = await api(s, 'settings-set', { allowedFolders: [allowed] });
    expect(set.status).toBe(200);
    expect(set.json?.value).toMatchObject({ allowedFolders: [allowed], allowPrivateUrls: false });

    const inside = await api(s, 'files-browse', { path: allowed });
    expect(inside.status).toBe(200);
    const l = inside.json?.value as {
      path: string;
      parent: string | null;
      entries: Array<{ name: string }>;
      roots: Array<{ path: string }>;
    };
    expect(l.entries.map((e) => e.name)).toEqual(['corpus.txt']);
    expect(l.parent).toBeNull();
    expect(l.roots.map((r) => r.path)).toEqual([home, allowed]);
    const est = await api(s, 'datasets-estimate', { source: 'local', file: path.join(allowed, 'corpus.txt') });
    expect(est.status, est.text).toBe(200);
    // still not the rest of the machine
    expectRefused(
      await api(s, 'datasets-estimate', { source: 'local', file: path.join(outside, 'secret.txt') }),
      403,
      'FORBIDDEN',
    );

    // preparing an allowed file works end to end
    const statuses = datasetStatuses(s.studio);
    const started = await api(s, 'datasets-prepare', {
      source: 'local',
      file: path.join(allowed, 'corpus.txt'),
      name: 'corpus',
      valTokens: 10,
    });
    expect(started.status, started.text).toBe(200);
    const { jobId } = started.json?.value as { jobId: string };
    const done = await statuses.ended(jobId);
    expect(done.status, JSON.stringify(done.error)).toBe('done');
  });
});

describe('serve: URL fetches', () => {
  it('go only to http(s), and not to private addresses unless Settings allow them', async () => {
    const text = 'A line of a corpus served on loopback.\n'.repeat(300);
    const lb = await startLoopback({
      '/input.txt': { body: Buffer.from(text), contentType: 'text/plain' },
      '/api/datasets/HuggingFaceFW/fineweb-edu/tree/main/sample/10BT': { body: Buffer.from('[]') },
    });
    loopbacks.push(lb);
    const port = new URL(lb.url).port;
    const s = await start();
    const statuses = datasetStatuses(s.studio);

    for (const url of ['file:///etc/passwd', `file://${path.join(outside, 'secret.txt')}`, 'ftp://127.0.0.1/x']) {
      const e = expectRefused(await api(s, 'datasets-prepare', { source: 'local', url }), 403, 'FORBIDDEN');
      expect(e.message).toContain('not an http(s) URL');
    }
    for (const url of [
      `${lb.url}/input.txt`,
      `http://localhost:${port}/input.txt`,
      `http://[::1]:${port}/input.txt`,
      'http://169.254.169.254/latest/meta-data/',
      'http://10.1.2.3/x.txt',
      'http://0.0.0.0/x.txt',
    ]) {
      const e = expectRefused(
        await api(s, 'datasets-prepare', { source: 'local', url, name: 'loot' }),
        403,
        'FORBIDDEN',
      );
      expect(e.hint).toContain('Allow private and loopback URLs');
    }
    expectRefused(
      await api(s, 'datasets-prepare', { source: 'fineweb-edu-10bt', endpoint: lb.url, maxFiles: 1 }),
      403,
      'FORBIDDEN',
    );

    // the Hub endpoint from Settings is checked where the Hub is fetched: the job fails, nothing is requested
    expect((await api(s, 'settings-set', { hfEndpoint: lb.url })).status).toBe(200);
    const controller = new AbortController();
    const sse = await fetch(new URL('/api/events', s.url), {
      headers: { Authorization: `Bearer ${s.token}` },
      signal: controller.signal,
    });
    const reader = sse.body!.getReader();
    const hub = await api(s, 'datasets-prepare', { source: 'fineweb-edu-10bt', maxFiles: 1 });
    expect(hub.status, hub.text).toBe(200);
    const failed = await statuses.ended((hub.json?.value as { jobId: string }).jobId);
    expect(failed.status).toBe('failed');
    expect(failed.error?.code).toBe('FORBIDDEN');
    // the same event over SSE carries no stack
    let streamed = '';
    while (!/"status":"failed"/.test(streamed)) streamed += new TextDecoder().decode((await reader.read()).value);
    controller.abort();
    expect(streamed).toContain('FORBIDDEN');
    expect(streamed).not.toContain('"stack"');
    expect(lb.requests).toEqual([]);

    // with the setting, a loopback mirror works, and the preview reads it back
    expect((await api(s, 'settings-set', { allowPrivateUrls: true, hfEndpoint: null })).status).toBe(200);
    const ok = await api(s, 'datasets-prepare', {
      source: 'local',
      url: `${lb.url}/input.txt`,
      name: 'mirror',
      valTokens: 10,
    });
    expect(ok.status, ok.text).toBe(200);
    const done = await statuses.ended((ok.json?.value as { jobId: string }).jobId);
    expect(done.status, JSON.stringify(done.error)).toBe('done');
    const preview = await api(s, 'datasets-preview', { id: 'mirror', chars: 200 });
    expect(JSON.stringify(preview.json?.value)).toContain('A line of a corpus');
    // schemes stay refused with it
    expectRefused(await api(s, 'datasets-prepare', { source: 'local', url: 'file:///etc/passwd' }), 403, 'FORBIDDEN');
  });
});

describe('serve: error answers', () => {
  it('never carry a stack: the log has it, with the request id', async () => {
    const studio = new Studio({ home });
    // a bug deep in the service: a plain Error, whose stack names source files
    const remove = studio.registry.add('test-boom', {
      schema: noArgument,
      run: async () => {
        throw new Error('boom in the service');
      },
    });
    onTestFinished(remove);
    const s = await start({ studio });
    const bug = await api(s, 'test-boom');
    const e = expectRefused(bug, 500, 'INTERNAL');
    expect(e.message).toBe('boom in the service');
    expect(bug.text).not.toMatch(/\.ts:\d+/);
    const line = logs.findIndex((l) => l.includes(`[${e.requestId}]`));
    expect(line).toBeGreaterThanOrEqual(0);
    expect(logs.slice(line).join('\n')).toMatch(/boom in the service[\s\S]*at /);

    expectRefused(await api(s, 'runs-get', { id: 'run-nope' }), 422, 'NOT_FOUND');
    expectRefused(await api(s, 'runs-explode'), 404, 'NOT_FOUND');
    expectRefused(await api(s, 'app-info', 42), 400, 'BAD_ARGUMENT');
    expectRefused(
      await raw(s, '/api/invoke/app-info', {
        method: 'POST',
        headers: { 'Content-Type': 'text/plain', Authorization: `Bearer ${s.token}` },
        body: '{}',
      }),
      415,
      'BAD_ARGUMENT',
    );
    expectRefused(await raw(s, '/api/nothing', { headers: { Authorization: `Bearer ${s.token}` } }), 404, 'NOT_FOUND');
    expectRefused(await api(s, 'files-browse', { path: '/' }), 403, 'FORBIDDEN');
    await studio.shutdown();
  });
});

describe('serve: rate limit', () => {
  it('answers 429 with Retry-After once a client has sent its burst of changes; reads and other clients go on', async () => {
    const s = await start({ rateLimit: { requests: 3, windowMs: 60_000 } });
    for (let i = 0; i < 3; i++) expect((await api(s, 'settings-set', {})).status).toBe(200);
    const limited = await api(s, 'settings-set', {});
    const e = expectRefused(limited, 429, 'RATE_LIMITED');
    expect(Number(limited.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(e.message).toContain('more than 3 changes in 60 s');
    expect(e.hint).toMatch(/Wait \d+ s/);
    // reads are not limited
    for (let i = 0; i < 10; i++) expect((await api(s, 'settings-get')).status).toBe(200);
    // another credential is another client
    expect((await api(s, 'settings-set', {}, { cookie: await login(s) })).status).toBe(200);
  });

  it('allows 30 changes in a burst by default', async () => {
    const s = await start();
    const statuses: number[] = [];
    // sent at once, so that the bucket (refilled at 3 a second) cannot refill between them on a loaded machine
    statuses.push(
      ...(await Promise.all(Array.from({ length: 31 }, () => api(s, 'settings-set', {})))).map((a) => a.status),
    );
    expect(statuses.filter((x) => x === 200).length).toBe(30);
    expect(statuses.filter((x) => x === 429).length).toBe(1);
  });
});
