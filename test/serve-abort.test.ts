/**
 * A client that goes away is normal for the HTTP server: a page closes its event stream (and any pending request)
 * whenever it navigates or reloads. Nothing of it is logged, and the server goes on answering.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isClientAbort, type RunningServer, startServer } from '../src/node/serve/server';
import { Studio } from '../src/node/studio';
import { resolveHome } from '../src/node/workspace';

let tmp: string;
let home: string;
let rendererDir: string;
let logs: string[];
const servers: RunningServer[] = [];

beforeEach(() => {
  tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-serve-abort-')));
  home = resolveHome({ flag: path.join(tmp, 'home'), env: {} });
  rendererDir = path.join(tmp, 'renderer');
  fs.mkdirSync(rendererDir);
  fs.writeFileSync(path.join(rendererDir, 'index.html'), '<!doctype html><title>GPT-2 Studio</title>');
  logs = [];
});

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function start(studio?: Studio): Promise<RunningServer> {
  const s = await startServer({ home, rendererDir, heartbeatMs: 10, log: (line) => logs.push(line), studio });
  servers.push(s);
  return s;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Sends the start of a raw HTTP request, waits, then resets the connection (as a closed tab does). */
async function sendAndReset(s: RunningServer, head: string, body = '', waitMs = 80): Promise<string> {
  const sock = net.connect(s.port, '127.0.0.1');
  await new Promise<void>((r) => sock.once('connect', () => r()));
  let received = '';
  sock.on('data', (d: Buffer) => (received += d.toString('utf8')));
  sock.on('error', () => undefined);
  sock.write(`${head}\r\nHost: 127.0.0.1:${s.port}\r\nAuthorization: Bearer ${s.token}\r\n`);
  sock.write(body);
  await sleep(waitMs);
  sock.resetAndDestroy();
  await sleep(50);
  return received;
}

describe('a client that goes away', () => {
  it('closes event streams (reset or aborted) without a log line, while events and heartbeats go on', async () => {
    const studio = new Studio({ home });
    const s = await start(studio);
    for (let i = 0; i < 5; i++) {
      const got = await sendAndReset(s, 'GET /api/events HTTP/1.1', '\r\n');
      expect(got).toContain(': connected');
      studio.emit('run-status', { runId: `r${i}`, status: 'running' });
    }
    for (let i = 0; i < 5; i++) {
      const controller = new AbortController();
      const res = await fetch(new URL('/api/events', s.url), {
        signal: controller.signal,
        headers: { Authorization: `Bearer ${s.token}` },
      });
      const reader = res.body!.getReader();
      await reader.read();
      controller.abort();
      studio.emit('run-status', { runId: `f${i}`, status: 'done' });
      await sleep(30);
    }
    // events after every stream closed, and heartbeats, write to nobody and fail nothing
    await sleep(50);
    studio.emit('run-status', { runId: 'after', status: 'done' });
    const ok = await fetch(new URL('/api/invoke/runs-list', s.url), {
      method: 'POST',
      headers: { Authorization: `Bearer ${s.token}`, 'Content-Type': 'application/json' },
      body: '{}',
    });
    expect(ok.status).toBe(200);
    expect(logs).toEqual([]);
  });

  it('drops a request whose body never came in full, without a log line', async () => {
    const s = await start();
    const head = 'POST /api/invoke/runs-list HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 200';
    const got = await sendAndReset(s, head, '\r\n{"arg"');
    expect(got).toBe('');
    await sleep(50);
    expect(logs).toEqual([]);
    // and still answers the next one
    const ok = await fetch(new URL('/api/invoke/runs-list', s.url), {
      method: 'POST',
      headers: { Authorization: `Bearer ${s.token}`, 'Content-Type': 'application/json' },
      body: '{}',
    });
    expect(ok.status).toBe(200);
  });

  it('still logs a request that fails for another reason', async () => {
    const s = await start();
    const res = await fetch(new URL('/api/invoke/no-such-request', s.url), {
      method: 'POST',
      headers: { Authorization: `Bearer ${s.token}`, 'Content-Type': 'application/json' },
      body: '{}',
    });
    expect(res.status).toBe(404);
    expect(logs).toHaveLength(1);
    expect(logs[0]).toMatch(/POST \/api\/invoke\/no-such-request -> 404/);
  });
});

describe('isClientAbort', () => {
  it('knows the errors of a closed connection from the others', () => {
    const coded = (message: string, code: string) => Object.assign(new Error(message), { code });
    expect(isClientAbort(new Error('aborted'))).toBe(true);
    expect(isClientAbort(coded('read ECONNRESET', 'ECONNRESET'))).toBe(true);
    expect(isClientAbort(coded('write EPIPE', 'EPIPE'))).toBe(true);
    expect(isClientAbort(coded('Premature close', 'ERR_STREAM_PREMATURE_CLOSE'))).toBe(true);
    expect(isClientAbort(new TypeError('x is undefined'))).toBe(false);
    expect(isClientAbort(coded('no such file', 'ENOENT'))).toBe(false);
    expect(isClientAbort('aborted')).toBe(false);
  });
});
