import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IPC_INVOKE_CHANNEL, type InvokeResult } from '../shared/contract';
import { Studio } from '../node/studio';
import { type InvokeEventLike, type IpcMainLike, makeRendererUrlCheck, registerStudioIpc } from './ipc';
import { isNavigationAllowed, isOwnOrigin, isPermissionAllowed } from './security';

const RENDERER = 'file:///opt/GPT-2%20Studio/resources/app.asar/out/renderer/index.html';

class FakeIpcMain implements IpcMainLike {
  handlers = new Map<string, (event: InvokeEventLike, ...args: unknown[]) => unknown>();
  handle(channel: string, listener: (event: InvokeEventLike, ...args: unknown[]) => unknown): void {
    if (this.handlers.has(channel)) throw new Error(`second handler for ${channel}`);
    this.handlers.set(channel, listener);
  }
  removeHandler(channel: string): void {
    this.handlers.delete(channel);
  }
  async invoke(frameUrl: string | null, ...args: unknown[]): Promise<InvokeResult> {
    const h = this.handlers.get(IPC_INVOKE_CHANNEL);
    if (!h) throw new Error('no handler');
    return (await h(
      { senderFrame: frameUrl === null ? null : { url: frameUrl, parent: null } },
      ...args,
    )) as InvokeResult;
  }
}

let tmp: string;
let studio: Studio;
let ipc: FakeIpcMain;
let sent: Array<[string, unknown]>;
let dispose: () => void;

beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), 'gpt2-ipc-'));
  studio = new Studio({ home: tmp });
  ipc = new FakeIpcMain();
  sent = [];
  dispose = registerStudioIpc({
    ipcMain: ipc,
    studio,
    isTrustedUrl: makeRendererUrlCheck({ rendererFileUrl: RENDERER }),
    broadcast: (name, payload) => sent.push([name, payload]),
  });
});
afterEach(() => {
  dispose();
  rmSync(tmp, { recursive: true, force: true });
});

describe('registerStudioIpc', () => {
  it('answers the app own renderer', async () => {
    const reply = await ipc.invoke(`${RENDERER}#/settings`, 'app-info');
    expect(reply.ok).toBe(true);
    expect(reply.ok && reply.value).toMatchObject({ home: tmp, node: process.versions.node });
  });

  it('refuses other frames before doing anything', async () => {
    for (const url of [
      'https://evil.example/',
      'file:///tmp/evil/index.html',
      'file:///opt/GPT-2%20Studio/resources/app.asar/out/renderer/other.html',
      'not a url',
      null,
    ]) {
      const reply = await ipc.invoke(url, 'app-info');
      expect(reply.ok, String(url)).toBe(false);
      expect(!reply.ok && reply.error.message).toMatch(/untrusted frame/);
    }
    // a subframe of the right URL is refused too
    const h = ipc.handlers.get(IPC_INVOKE_CHANNEL)!;
    const sub = (await h({ senderFrame: { url: RENDERER, parent: {} } }, 'app-info')) as InvokeResult;
    expect(sub.ok).toBe(false);
  });

  it('validates the name and the argument', async () => {
    const unknown = await ipc.invoke(RENDERER, 'runs-explode');
    expect(!unknown.ok && unknown.error.message).toContain('Unknown request');
    const bad = await ipc.invoke(RENDERER, 'app-info', { sneaky: true });
    expect(!bad.ok && bad.error).toMatchObject({ code: 'BAD_ARGUMENT' });
    expect(!bad.ok && bad.error.message).toContain('app-info');
    const notString = await ipc.invoke(RENDERER, 42);
    expect(notString.ok).toBe(false);
  });

  it('relays push events until disposed', () => {
    studio.emit('run-step', {
      runId: 'r',
      step: 1,
      loss: 10.9,
      lr: 6e-4,
      norm: 1.2,
      dtMs: 100,
      tokensPerSec: 5000,
      tokensSeen: 1024,
      skipped: false,
    });
    expect(sent).toEqual([
      [
        'run-step',
        {
          runId: 'r',
          step: 1,
          loss: 10.9,
          lr: 6e-4,
          norm: 1.2,
          dtMs: 100,
          tokensPerSec: 5000,
          tokensSeen: 1024,
          skipped: false,
        },
      ],
    ]);
    dispose();
    expect(ipc.handlers.size).toBe(0);
    studio.emit('run-status', { runId: 'r', status: 'done' });
    expect(sent).toHaveLength(1);
    dispose = () => {};
  });
});

describe('makeRendererUrlCheck', () => {
  it('trusts the dev server origin only when one is given', () => {
    const withDev = makeRendererUrlCheck({ rendererFileUrl: RENDERER, devServerUrl: 'http://localhost:5173/' });
    expect(withDev('http://localhost:5173/#/runs')).toBe(true);
    expect(withDev('http://localhost:5174/')).toBe(false);
    expect(makeRendererUrlCheck({ rendererFileUrl: RENDERER })('http://localhost:5173/')).toBe(false);
  });
});

describe('security helpers', () => {
  it('allows only same-document navigation', () => {
    expect(isNavigationAllowed(`${RENDERER}#/runs`, `${RENDERER}#/settings`)).toBe(true);
    expect(isNavigationAllowed(RENDERER, 'https://example.com/')).toBe(false);
    expect(isNavigationAllowed(RENDERER, 'file:///etc/passwd')).toBe(false);
  });
  it('adds the CSP only to the app own origin', () => {
    expect(isOwnOrigin(RENDERER)).toBe(true);
    expect(isOwnOrigin('http://localhost:5173/x', 'http://localhost:5173')).toBe(true);
    expect(isOwnOrigin('https://huggingface.co/x', 'http://localhost:5173')).toBe(false);
  });
  it('grants only clipboard writes (the copy buttons) and notifications (a run that ends)', () => {
    expect(isPermissionAllowed('clipboard-sanitized-write')).toBe(true);
    expect(isPermissionAllowed('notifications')).toBe(true);
    for (const p of ['clipboard-read', 'media', 'geolocation', 'openExternal', 'fullscreen', 'pointerLock', 'midi'])
      expect(isPermissionAllowed(p)).toBe(false);
  });
});
