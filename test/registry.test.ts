/**
 * A handler is declared once: one added to the registry alone (no transport, contract or confinement table edited)
 * answers over HTTP, over IPC and from the CLI, each validating its argument with the handler's own schema.
 */
import fs from 'node:fs';
import { request } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { IPC_INVOKE_CHANNEL, type InvokeResult } from '../src/shared/contract';
import { main } from '../src/cli/main';
import { registerStudioIpc, type InvokeEventLike, type IpcMainLike } from '../src/main/ipc';
import { startServer } from '../src/node/serve/server';
import { Studio } from '../src/node/studio';
import { studioRegistry } from '../src/node/studio/handlers';
import { Registry, noArgument } from '../src/node/studio/registry';

let tmp: string;
let removeEcho: () => void;
let calls: unknown[];

beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-registry-'));
  calls = [];
  removeEcho = studioRegistry.add('test-echo', {
    schema: z.object({ word: z.string().max(10), times: z.number().int().min(1).max(3).default(1) }).strict(),
    run: async (arg, studio) => {
      calls.push(arg);
      return { echo: Array(arg.times).fill(arg.word).join(' '), home: studio.home };
    },
  });
});

afterEach(() => {
  removeEcho();
  fs.rmSync(tmp, { recursive: true, force: true });
});

function post(
  port: number,
  token: string,
  name: string,
  body: unknown,
): Promise<{ status: number; json: InvokeResult }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: `/api/invoke/${name}`,
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            json: JSON.parse(Buffer.concat(chunks).toString('utf8')) as InvokeResult,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

describe('a handler added through the registry alone', () => {
  it('answers over HTTP, validated by its schema', async () => {
    const rendererDir = path.join(tmp, 'renderer');
    fs.mkdirSync(rendererDir);
    fs.writeFileSync(path.join(rendererDir, 'index.html'), '<!doctype html>');
    const s = await startServer({ home: tmp, rendererDir, log: () => {} });
    try {
      const ok = await post(s.port, s.token, 'test-echo', { arg: { word: 'hi', times: 2 } });
      expect(ok.status).toBe(200);
      expect(ok.json).toEqual({ ok: true, value: { echo: 'hi hi', home: tmp } });
      const bad = await post(s.port, s.token, 'test-echo', { arg: { word: 'hi', times: 9 } });
      expect(bad.status).toBe(400);
      expect(bad.json.ok).toBe(false);
      if (!bad.json.ok) expect(bad.json.error.message).toMatch(/Bad argument for "test-echo".*times/s);
    } finally {
      await s.close();
    }
  });

  it('answers over IPC (through a fake ipcMain)', async () => {
    const handlers = new Map<string, (event: InvokeEventLike, ...args: unknown[]) => unknown>();
    const ipcMain: IpcMainLike = {
      handle: (c, l) => void handlers.set(c, l),
      removeHandler: (c) => void handlers.delete(c),
    };
    const studio = new Studio({ home: tmp });
    const url = 'file:///app/out/renderer/index.html';
    const dispose = registerStudioIpc({ ipcMain, studio, isTrustedUrl: (u) => u === url, broadcast: () => {} });
    try {
      const invoke = (name: string, arg: unknown) =>
        handlers.get(IPC_INVOKE_CHANNEL)!({ senderFrame: { url, parent: null } }, name, arg) as Promise<InvokeResult>;
      expect(await invoke('test-echo', { word: 'ipc' })).toEqual({ ok: true, value: { echo: 'ipc', home: tmp } });
      const bad = await invoke('test-echo', { word: 'ipc', extra: 1 });
      expect(bad.ok).toBe(false);
      if (!bad.ok) expect(bad.error.code).toBe('BAD_ARGUMENT');
    } finally {
      dispose();
      studio.close();
    }
  });

  it('answers from the CLI (gpt2-studio call), validated the same way', async () => {
    let out = '';
    let err = '';
    const io = { out: (t: string) => void (out += t), err: (t: string) => void (err += t) };
    expect(await main(['call', 'test-echo', '{"word": "cli", "times": 3}', '--home', tmp], io)).toBe(0);
    expect(JSON.parse(out)).toEqual({ echo: 'cli cli cli', home: tmp });
    out = '';
    expect(await main(['call', 'test-echo', '{"word": "much too long"}', '--home', tmp], io)).toBe(2);
    expect(err).toMatch(/Bad argument for "test-echo"/);
    expect(await main(['call', 'list', '--home', tmp], io)).toBe(0);
    expect(out.split('\n')).toContain('test-echo');
    expect(out.split('\n')).toContain('runs-get');
    expect(calls).toEqual([{ word: 'cli', times: 3 }]);
  });
});

describe('the registry', () => {
  it('refuses a name declared twice, and one that is not <domain>-<verb>', () => {
    const r = new Registry();
    r.add('a-b', { schema: noArgument, run: async () => 1 });
    expect(() => r.add('a-b', { schema: noArgument, run: async () => 2 })).toThrow(/declared twice/);
    expect(() => r.add('Nope', { schema: noArgument, run: async () => 2 })).toThrow(/kebab-case/);
  });

  it('holds every request of the contract, each taking one object argument or none', () => {
    const names = studioRegistry.names().filter((n) => n !== 'test-echo');
    expect(names.length).toBe(56);
    for (const n of names) {
      const req = studioRegistry.parse(n, 'a-bare-string');
      // a bare string is never a request's argument (config-validate takes {config})
      expect(req.ok, n).toBe(false);
    }
  });
});
