/**
 * Each test gets a fresh workspace (removed afterwards) and its own real server on a free loopback port, started
 * in-process with startServer, serving the built renderer (out/renderer, built by global-setup.ts).
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test as base, expect, type Page } from '@playwright/test';
import { type RunningServer, startServer } from '../src/node/server';
import { resolveHome } from '../src/node/workspace';

const repo = fileURLToPath(new URL('..', import.meta.url));
export const rendererDir = join(repo, 'out', 'renderer');
export const screenshotDir = join(repo, 'e2e', '__screenshots__');

interface Fixtures {
  /** the token the server requires; none by default (set with test.use({ token })) */
  token: string | undefined;
  /** a fresh workspace folder, removed after the test */
  workspace: string;
  /** the running server of this test */
  server: RunningServer;
  /** the URL to open: the server's, with ?token= when one is set */
  appUrl: string;
}

export const test = base.extend<Fixtures>({
  token: [undefined, { option: true }],

  // eslint-disable-next-line no-empty-pattern
  workspace: async ({}, use) => {
    const dir = mkdtempSync(join(tmpdir(), 'gpt2-e2e-'));
    try {
      await use(resolveHome({ flag: join(dir, 'home'), env: {} }));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },

  server: async ({ workspace, token }, use) => {
    const server = await startServer({ home: workspace, host: '127.0.0.1', port: 0, token, rendererDir });
    try {
      await use(server);
    } finally {
      await server.close();
    }
  },

  appUrl: async ({ server, token }, use) => {
    await use(token ? `${server.url}?token=${encodeURIComponent(token)}` : server.url);
  },
});

export { expect };

/** Saves a full-page screenshot as e2e/__screenshots__/<name>.png. */
export async function snap(page: Page, name: string): Promise<void> {
  mkdirSync(screenshotDir, { recursive: true });
  await page.screenshot({ path: join(screenshotDir, `${name}.png`), fullPage: true });
}
