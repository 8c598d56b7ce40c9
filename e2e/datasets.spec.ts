/**
 * The Datasets page against the real server and real files: Tiny Shakespeare served by a loopback HTTP server of
 * this spec (with a download held half-way, so that it can be seen, paused and resumed), the local source through
 * the file picker, and a download error.
 */
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from '@playwright/test';
import { expect, invoke, snap, test, watchErrors } from './fixtures';

const repo = fileURLToPath(new URL('..', import.meta.url));
const shared = process.env.GPT2_STUDIO_SHARED ?? path.resolve(repo, '..', 'shared');
const shakespearePath = path.join(shared, 'data', 'tinyshakespeare.txt');
const present = existsSync(shakespearePath);
const shakespeare = present ? readFileSync(shakespearePath) : Buffer.alloc(0);

/** Bytes sent of a held download before it waits. */
const HELD_BYTES = 400_000;

interface TextServer {
  url: string;
  requests: { path: string; range?: string }[];
  /** lets held downloads of /input.txt finish (requests after this are served at once) */
  release(): void;
  close(): Promise<void>;
}

/**
 * Serves Tiny Shakespeare with Range support: /input.txt sends HELD_BYTES and then waits until release() (or until
 * the client goes away), /hold.txt always waits, anything else is a 404.
 */
async function startTextServer(body: Buffer): Promise<TextServer> {
  const requests: TextServer['requests'] = [];
  const sockets = new Set<Socket>();
  let released = false;
  const waiting: Array<() => void> = [];
  const server = http.createServer((req, res) => {
    const p = new URL(req.url ?? '/', 'http://x').pathname;
    requests.push({ path: p, range: req.headers.range });
    if (p !== '/input.txt' && p !== '/hold.txt') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = m ? Number(m[1]) : 0;
    const slice = body.subarray(start);
    res.writeHead(m ? 206 : 200, {
      'content-type': 'text/plain',
      'content-length': String(slice.length),
      'accept-ranges': 'bytes',
      etag: '"ts-1"',
      ...(m ? { 'content-range': `bytes ${start}-${body.length - 1}/${body.length}` } : {}),
    });
    const hold = p === '/hold.txt' || !released;
    if (!hold) {
      res.end(slice);
      return;
    }
    res.write(slice.subarray(0, HELD_BYTES));
    if (p === '/input.txt') waiting.push(() => res.end(slice.subarray(HELD_BYTES)));
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    release() {
      released = true;
      for (const w of waiting.splice(0)) w();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

const fmt = (n: number) => n.toLocaleString('en-US');

/** The download bar's byte count (data-bytes). */
const downloaded = async (page: Page) =>
  Number((await page.getByTestId('download-progress').getAttribute('data-bytes')) ?? 0);

test.describe('datasets', () => {
  test.skip(!present, `the Tiny Shakespeare fixture is absent (${shakespearePath})`);

  let srv: TextServer;
  test.beforeEach(async () => {
    srv = await startTextServer(shakespeare);
  });
  test.afterEach(async ({ server }, testInfo) => {
    await srv.close();
    if (testInfo.status !== testInfo.expectedStatus) {
      try {
        console.log('datasets-list', JSON.stringify(await invoke(server, 'datasets-list')));
        console.log('datasets-jobs', JSON.stringify(await invoke(server, 'datasets-jobs')));
      } catch (e) {
        console.log(`could not read the datasets: ${String(e)}`);
      }
    }
  });

  test('Tiny Shakespeare through the wizard: estimate, progress, reload, pause, resume, ready with its tokens, preview, delete', async ({
    page,
    appUrl,
  }) => {
    test.setTimeout(180_000);
    const failed = watchErrors(page, { ignore: /Failed to load resource/ });
    await page.goto(appUrl + '#/datasets');
    await expect(page.getByRole('heading', { level: 1, name: 'Datasets' })).toBeVisible();
    await expect(page.getByRole('heading', { name: 'No datasets yet' })).toBeVisible();

    // the wizard, by keyboard: Tiny Shakespeare is the default source; move the input from "Download" to "From a URL"
    const tsRadio = page.getByRole('radio', { name: /^Tiny Shakespeare/ });
    await expect(tsRadio).toBeChecked();
    const fromDownload = page.getByRole('radio', { name: 'Download', exact: true });
    await expect(fromDownload).toBeChecked();
    // the estimate of the default download: 1.1 MB for 338,025 tokens
    const estimate = page.getByTestId('dataset-estimate');
    await expect(estimate.getByTestId('estimate-tokens')).toHaveText('≈ 338,025');
    await expect(estimate.getByTestId('estimate-download')).toHaveText('≈ 1.1 MiB');
    await fromDownload.focus();
    await page.keyboard.press('ArrowRight');
    await page.keyboard.press('ArrowRight');
    await expect(page.getByRole('radio', { name: 'From a URL', exact: true })).toBeChecked();
    await page.keyboard.press('Tab');
    const url = page.getByLabel('URL', { exact: true });
    await expect(url).toBeFocused();
    await page.keyboard.type(`${srv.url}/input.txt`);
    await expect(estimate).toContainText(`if ${srv.url}/input.txt serves Tiny Shakespeare`);
    await expect(estimate).toContainText('not included in the time');
    await expect(page.getByTestId('dataset-start')).toHaveText('Download and prepare');
    await snap(page, 'datasets-wizard');

    // Enter in the field starts it; the download is held half-way by the server, and its progress shows
    await page.keyboard.press('Enter');
    const job = page.getByTestId('dataset-job');
    await expect(job).toHaveAttribute('data-dataset', 'tinyshakespeare');
    await expect(job.getByTestId('job-state')).toContainText('Running');
    await expect.poll(() => downloaded(page), { timeout: 30_000 }).toBeGreaterThan(0);
    await expect(job.getByTestId('download-progress')).toContainText('of 1.1 MiB');
    await expect(job.getByTestId('job-state')).toHaveText('Running · Downloading');
    await expect(job.getByRole('progressbar', { name: 'Download' })).toHaveAttribute('aria-valuenow', /\d+/);
    await snap(page, 'datasets-progress');

    // a reload while it runs still shows it
    await page.reload();
    await expect(job).toHaveAttribute('data-state', 'running');
    await expect(job.getByTestId('job-state')).toContainText('Downloading');

    // pause: it stops, and stays paused across a reload (nothing was tokenized yet: no dataset in the list)
    await job.getByRole('button', { name: 'Pause' }).click();
    await expect(job).toHaveAttribute('data-state', 'paused');
    await expect(job).toContainText('Paused. What was downloaded and tokenized is kept');
    await page.reload();
    await expect(job).toHaveAttribute('data-state', 'paused');
    await expect(page.getByRole('heading', { name: 'No datasets yet' })).toBeVisible();

    // resume: the download continues from where it stopped (a Range request), then tokenizes to the known counts
    srv.release();
    await job.getByRole('button', { name: 'Resume' }).click();
    await expect(job).toHaveCount(0, { timeout: 60_000 });
    const row = page.locator('tr[data-dataset="tinyshakespeare"]');
    await expect(row).toHaveAttribute('data-status', 'ready');
    await expect(row.getByTestId('train-tokens')).toHaveText(fmt(301_966));
    await expect(row.getByTestId('val-tokens')).toHaveText(fmt(36_059));
    await expect(row.getByTestId('dataset-status')).toHaveText('Ready');
    const gets = srv.requests.filter((r) => r.path === '/input.txt');
    expect(gets[0]!.range).toBeUndefined();
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(gets.at(-1)!.range ?? '')?.[1]);
    expect(resumedAt).toBeGreaterThan(0);
    expect(resumedAt).toBeLessThanOrEqual(HELD_BYTES);
    await snap(page, 'datasets-list');

    // the preview: the start of the val split (the last 10% of the characters), decoded
    await row.getByRole('button', { name: 'Preview tinyshakespeare' }).click();
    const preview = page.getByTestId('dataset-preview');
    await expect(preview).toBeVisible();
    const text = shakespeare.toString('utf8');
    const valStart = text.slice(Math.floor(text.length * 0.9), Math.floor(text.length * 0.9) + 80);
    await expect(preview.getByTestId('preview-text')).toContainText(valStart.trim().split('\n')[0]!);
    await expect(preview).toContainText('tokens of the val shard, decoded');
    await snap(page, 'datasets-preview');
    await page.keyboard.press('Escape');
    await expect(preview).toHaveCount(0);

    // delete, after a confirmation
    await row.getByRole('button', { name: 'Delete tinyshakespeare' }).click();
    const confirm = page.getByTestId('delete-dataset-dialog');
    await expect(confirm).toContainText('datasets/tinyshakespeare/');
    await confirm.getByRole('button', { name: 'Delete dataset' }).click();
    await expect(page.getByRole('heading', { name: 'No datasets yet' })).toBeVisible();
    expect(failed).toEqual([]);
  });

  test('the local source through the file picker: allow the folder, browse by keyboard, pick a text file, prepare it', async ({
    page,
    appUrl,
    server,
  }) => {
    test.setTimeout(120_000);
    const failed = watchErrors(page, { ignore: /Failed to load resource/ });
    const dir = realpathSync(mkdtempSync(path.join(tmpdir(), 'gpt2-e2e-pick-')));
    try {
      mkdirSync(path.join(dir, 'more'));
      writeFileSync(path.join(dir, 'corpus.txt'), shakespeare.subarray(0, 200_000));
      writeFileSync(path.join(dir, 'picture.png'), Buffer.alloc(10));
      // the folder is outside the workspace: the studio may not read it until it is allowed in Settings
      await page.goto(appUrl + '#/settings');
      const allowedCard = page.getByTestId('allowed-folders');
      await allowedCard.getByLabel('Folder to allow').fill('/etc');
      await allowedCard.getByRole('button', { name: 'Add folder' }).click();
      await expect(allowedCard.getByRole('alert')).toContainText('system folder /etc');
      await allowedCard.getByLabel('Folder to allow').fill(dir);
      await page.keyboard.press('Enter');
      await expect(allowedCard.getByRole('status')).toContainText(`Allowed ${dir}.`);
      await expect(allowedCard.getByRole('list', { name: 'Allowed folders' })).toContainText(dir);
      await expect(allowedCard.getByLabel('Folder to allow')).toHaveValue('');
      await snap(page, 'settings-allowed-folders');

      await page.goto(appUrl + '#/datasets');
      const local = page.getByRole('radio', { name: /^Your own text/ });
      await local.focus();
      await page.keyboard.press('Space');
      await expect(local).toBeChecked();
      await expect(page.getByRole('radio', { name: 'From this machine', exact: true })).toBeChecked();

      await page.getByRole('button', { name: 'Browse…' }).click();
      const picker = page.getByTestId('file-picker');
      await expect(picker).toBeVisible();
      // it starts in the workspace, offers the allowed folders, and refuses the rest of the machine
      const roots = picker.getByRole('group', { name: 'Folders the studio may open' });
      await expect(roots.getByRole('button', { name: 'Workspace' })).toHaveAttribute('aria-pressed', 'true');
      await expect(roots.getByRole('button', { name: path.basename(dir) })).toBeVisible();
      const pathField = picker.getByLabel('Folder path');
      await pathField.fill('/etc');
      await pathField.press('Enter');
      await expect(picker.getByRole('alert')).toContainText('outside the folders the studio may use');
      await expect(picker.getByRole('alert')).toContainText('Settings → Allowed folders');
      await pathField.fill(dir);
      await pathField.press('Enter');
      const list = picker.getByRole('listbox');
      await expect(list).toHaveAttribute('aria-label', `Contents of ${dir}`);
      // folders first; the .png is filtered out by the extension filter until it is turned off
      await expect(list.getByRole('option')).toHaveText(['more', /^corpus\.txt/]);
      await picker.getByLabel(/^Only \.txt/).uncheck();
      await expect(list.getByRole('option')).toHaveText(['more', /^corpus\.txt/, /^picture\.png/]);
      await picker.getByLabel(/^Only \.txt/).check();
      await expect(list.getByRole('option')).toHaveCount(2);
      // into the sub-folder and back up with the keyboard, then highlight the file
      await list.focus();
      await expect(list.getByRole('option', { name: 'more' })).toHaveAttribute('aria-selected', 'true');
      await page.keyboard.press('Enter');
      await expect(list).toHaveAttribute('aria-label', `Contents of ${path.join(dir, 'more')}`);
      await expect(list).toContainText('No folders or .txt, .md, .jsonl, .parquet, .bin, .npy files here.');
      await page.keyboard.press('Backspace');
      await expect(list).toHaveAttribute('aria-label', `Contents of ${dir}`);
      await page.keyboard.press('ArrowDown');
      await expect(list.getByRole('option', { name: /^corpus\.txt/ })).toHaveAttribute('aria-selected', 'true');
      await expect(picker).toContainText(path.join(dir, 'corpus.txt'));
      await snap(page, 'file-picker');
      await page.keyboard.press('Enter');
      await expect(picker).toHaveCount(0);
      await expect(page.getByLabel('File or folder')).toHaveValue(path.join(dir, 'corpus.txt'));

      // the estimate says it is one; the dataset is named after the file
      const estimate = page.getByTestId('dataset-estimate');
      await expect(estimate).toContainText('an estimate from');
      await expect(estimate.getByTestId('estimate-download')).toHaveText('none');
      await expect(estimate.getByTestId('estimate-tokens')).toHaveText(`≈ ${fmt(Math.round(200_000 / 4.2))}`);
      await expect(estimate).toContainText('datasets/corpus/');
      await page.getByTestId('dataset-start').click();
      const row = page.locator('tr[data-dataset="corpus"]');
      await expect(row).toHaveAttribute('data-status', 'ready', { timeout: 60_000 });
      const listed = (await invoke(server, 'datasets-list')) as {
        id: string;
        tokens: { train: number; val: number };
        shards: number;
      }[];
      const corpus = listed.find((d) => d.id === 'corpus')!;
      expect(corpus.tokens.train).toBeGreaterThan(40_000);
      expect(corpus.shards).toBe(2);
      await expect(row.getByTestId('train-tokens')).toHaveText(fmt(corpus.tokens.train));
      await expect(row.getByTestId('val-tokens')).toHaveText(fmt(corpus.tokens.val));
      // its preview starts with the val part's text (the last 10% of the file)
      await row.getByRole('button', { name: 'Preview corpus' }).click();
      const text = shakespeare.subarray(0, 200_000).toString('utf8');
      const valLine = text
        .slice(Math.floor(text.length * 0.9))
        .split('\n')
        .find((l) => l.trim().length > 10)!;
      await expect(page.getByTestId('preview-text')).toContainText(valLine);
      expect(failed).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a download error shows its message and hint; Cancel stops a running preparation and deletes it', async ({
    page,
    appUrl,
    server,
    workspace,
  }) => {
    test.setTimeout(120_000);
    await page.goto(appUrl + '#/datasets');
    await page.locator('label', { hasText: 'From a URL' }).click();
    await expect(page.getByRole('radio', { name: 'From a URL', exact: true })).toBeChecked();
    const url = page.getByLabel('URL', { exact: true });
    await url.fill(`${srv.url}/missing.txt`);
    await url.press('Enter');
    const job = page.getByTestId('dataset-job');
    await expect(job).toHaveAttribute('data-state', 'failed', { timeout: 30_000 });
    const note = job.getByRole('alert');
    await expect(note).toContainText(`${srv.url}/missing.txt does not exist on the server (HTTP 404).`);
    await expect(note).toContainText('Check the URL');
    await job.getByRole('button', { name: 'Dismiss' }).click();
    await expect(job).toHaveCount(0);

    // a held download, cancelled: after the confirmation, nothing of it is left
    await url.fill(`${srv.url}/hold.txt`);
    await page.getByLabel('Dataset name').fill('held');
    await page.getByTestId('dataset-start').click();
    await expect(job).toHaveAttribute('data-state', 'running');
    await expect.poll(() => downloaded(page), { timeout: 30_000 }).toBeGreaterThan(0);
    await job.getByRole('button', { name: 'Cancel…' }).click();
    const confirm = page.getByTestId('cancel-job-dialog');
    await expect(confirm).toContainText('deletes what was downloaded');
    await confirm.getByRole('button', { name: 'Cancel and delete' }).click();
    await expect(job).toHaveCount(0);
    expect(await invoke(server, 'datasets-jobs')).toEqual([]);
    expect(await invoke(server, 'datasets-list')).toEqual([]);
    expect(existsSync(path.join(workspace, 'downloads', 'held'))).toBe(false);
    expect(existsSync(path.join(workspace, 'datasets', '.held.partial'))).toBe(false);
    await expect(page.getByRole('heading', { name: 'No datasets yet' })).toBeVisible();
  });
});
