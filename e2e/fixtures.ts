/**
 * Each test gets a fresh workspace (removed afterwards) and its own real server on a free loopback port, started
 * in-process with startServer, serving the built renderer (out/renderer, built by global-setup.ts).
 *
 * The server always has a token (its own, or the test's `token` option); `appUrl` is the address it prints, with
 * the token, which the first page load exchanges for the session cookie. The workspace's settings allow the shared
 * fixtures folder (the specs import weights and read data from it) and private URLs (the specs serve downloads from
 * loopback servers of their own); a spec that needs another folder adds it, as a user would, in Settings.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test as base, expect, type Page } from '@playwright/test';
import { type RunningServer, startServer } from '../src/node/serve/server';
import { resolveHome } from '../src/node/workspace';
import { updateSettings } from '../src/node/app/settings';

const repo = fileURLToPath(new URL('..', import.meta.url));
/** the built renderer: out/renderer, or GPT2_STUDIO_OUT/renderer when the build went elsewhere */
export const rendererDir = process.env.GPT2_STUDIO_OUT
  ? resolve(process.env.GPT2_STUDIO_OUT, 'renderer')
  : join(repo, 'out', 'renderer');
export const screenshotDir = join(repo, 'e2e', '__screenshots__');
/** The shared fixtures folder: GPT2_STUDIO_SHARED, else ../shared beside the repository. */
export const sharedDir = resolve(process.env.GPT2_STUDIO_SHARED ?? join(repo, '..', 'shared'));

interface Fixtures {
  /** the token the server requires; by default one it makes (set one with test.use({ token })) */
  token: string | undefined;
  /** a fresh workspace folder, removed after the test */
  workspace: string;
  /** the running server of this test */
  server: RunningServer;
  /** the URL to open: the server's, with ?token= (as `gpt2-studio serve` prints it) */
  appUrl: string;
}

export const test = base.extend<Fixtures>({
  token: [undefined, { option: true }],

  // eslint-disable-next-line no-empty-pattern
  workspace: async ({}, use) => {
    const dir = mkdtempSync(join(tmpdir(), 'gpt2-e2e-'));
    try {
      const home = resolveHome({ flag: join(dir, 'home'), env: {} });
      updateSettings(home, { allowedFolders: existsSync(sharedDir) ? [sharedDir] : [], allowPrivateUrls: true });
      await use(home);
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

  appUrl: async ({ server }, use) => {
    await use(server.openUrl);
  },
});

export { expect };

/** Saves a full-page screenshot as e2e/__screenshots__/<name>.png. */
export async function snap(page: Page, name: string): Promise<void> {
  mkdirSync(screenshotDir, { recursive: true });
  // from the top, so that sticky parts (sidebar, planner) sit where a reader expects them
  await page.evaluate('window.scrollTo(0, 0)');
  await page.screenshot({ path: join(screenshotDir, `${name}.png`), fullPage: true });
}

/**
 * Calls the Studio service over the server's HTTP API with its token (as a script would; the page uses its cookie),
 * and returns the value or throws.
 */
export async function invoke(
  server: RunningServer,
  name: string,
  arg?: unknown,
  token: string = server.token,
): Promise<unknown> {
  const res = await fetch(new URL(`/api/invoke/${name}`, server.url), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
    body: JSON.stringify(arg === undefined ? {} : { arg }),
  });
  const body = (await res.json()) as { ok: true; value: unknown } | { ok: false; error: { message: string } };
  if (!body.ok) throw new Error(`${name}: ${body.error.message}`);
  return body.value;
}

/**
 * Prepares the builtin dataset (1 MB of synthetic stories, a few seconds) in the test's workspace through the
 * service (datasets-prepare), and waits until datasets-list has it.
 */
export async function prepareBuiltin(server: RunningServer, name = 'builtin'): Promise<void> {
  const { jobId } = (await invoke(server, 'datasets-prepare', {
    source: 'builtin',
    sizeMb: 1,
    ...(name !== 'builtin' ? { name } : {}),
  })) as { jobId: string };
  const deadline = Date.now() + 60_000;
  for (;;) {
    const list = (await invoke(server, 'datasets-list')) as { id: string; status: string }[];
    if (list.some((d) => d.id === name && d.status === 'ready')) return;
    const jobs = (await invoke(server, 'datasets-jobs')) as { jobId: string }[];
    if (!jobs.some((j) => j.jobId === jobId)) {
      // the job ended: it succeeded (between the two requests) or failed
      const after = (await invoke(server, 'datasets-list')) as { id: string; status: string }[];
      if (after.some((d) => d.id === name && d.status === 'ready')) return;
      throw new Error(`preparing the builtin dataset as "${name}" failed: datasets-list = ${JSON.stringify(after)}`);
    }
    if (Date.now() > deadline) throw new Error(`the builtin dataset "${name}" was not ready within 60 s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * Collects page errors and console errors (a CSP violation is one); a test expects the list to stay empty.
 * `ignore` leaves out console errors a test causes on purpose (e.g. a 404 it asked for).
 */
export function watchErrors(page: Page, opts: { ignore?: RegExp } = {}): string[] {
  const failed: string[] = [];
  page.on('pageerror', (e) => failed.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error' && !opts.ignore?.test(m.text())) failed.push(m.text());
  });
  return failed;
}
