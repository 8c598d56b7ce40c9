/**
 * The run page's Download menu: a short real run with samples, each of its five files downloaded and read back,
 * and the HTML report opened on its own in Chromium (from a file, as whoever it is shared with opens it).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import type { Page } from '@playwright/test';
import type { RunningServer } from '../src/node/serve/server';
import { expect, invoke, prepareBuiltin, snap, test, watchErrors } from './fixtures';

/** A small model, 12 steps, a val loss every 4 steps and two samples every 6. */
const config = {
  model: { n_layer: 2, n_head: 2, n_embd: 64, block_size: 128 },
  dataset: 'builtin',
  total_batch_size: 1024,
  batch_size: 8,
  seq_len: 128,
  max_steps: 12,
  warmup_steps: 2,
  eval_interval: 4,
  eval_iters: 1,
  hellaswag_interval: 0,
  sample_interval: 6,
  sample: { prompt: 'Once upon a time', count: 2, max_tokens: 12 },
  checkpoint_interval: 0,
};

interface RunInfo {
  id: string;
  name: string;
  status: string;
  error: unknown;
}

/** Creates the run through the service and waits for it to finish. */
async function trainedRun(server: RunningServer, name: string): Promise<RunInfo> {
  const run = (await invoke(server, 'runs-create', { config, name })) as RunInfo;
  const deadline = Date.now() + 180_000;
  for (;;) {
    const r = (await invoke(server, 'runs-get', { id: run.id })) as RunInfo;
    if (r.status === 'done') return r;
    if (r.status !== 'running' && r.status !== 'created')
      throw new Error(`run ${run.id} ended ${r.status}: ${JSON.stringify(r.error)}`);
    if (Date.now() > deadline) throw new Error(`run ${run.id} did not finish within 180 s`);
    await new Promise((res) => setTimeout(res, 250));
  }
}

/** Opens the Download menu, picks `item` and returns the downloaded file's suggested name and text. */
async function download(page: Page, item: string): Promise<{ name: string; text: string; path: string }> {
  await page.getByRole('button', { name: 'Download' }).click();
  const menu = page.getByRole('menu', { name: 'Download' });
  await expect(menu).toBeVisible();
  const [file] = await Promise.all([
    page.waitForEvent('download'),
    menu.getByRole('menuitem', { name: new RegExp(`^${item}`) }).click(),
  ]);
  await expect(menu).toBeHidden();
  const path = await file.path();
  return { name: file.suggestedFilename(), text: readFileSync(path, 'utf8'), path };
}

test.describe('run downloads', () => {
  test('the log, metrics, config, samples and the HTML report of a run', async ({ page, appUrl, server }) => {
    test.setTimeout(240_000);
    const failed = watchErrors(page);
    await prepareBuiltin(server);
    const run = await trainedRun(server, 'downloads <e2e>');

    await page.setViewportSize({ width: 1440, height: 900 });
    await page.goto(appUrl + `#/run/${run.id}`);
    await expect(page.getByRole('heading', { level: 1, name: 'downloads <e2e>' })).toBeVisible();
    // the counter counts the steps done
    await expect(page.getByTestId('step-counter')).toContainText('12 of 12 steps');

    // the menu: five items, keyboard-reachable, Escape closes it
    const button = page.getByRole('button', { name: 'Download' });
    await expect(button).toHaveAttribute('aria-haspopup', 'menu');
    await button.click();
    const menu = page.getByRole('menu', { name: 'Download' });
    await expect(menu.getByRole('menuitem')).toHaveText([/^Log/, /^Metrics/, /^Config/, /^Samples/, /^Report/]);
    await expect(menu.getByRole('menuitem').first()).toBeFocused();
    await page.keyboard.press('ArrowDown');
    await expect(menu.getByRole('menuitem').nth(1)).toBeFocused();
    await snap(page, 'run-downloads');
    await page.setViewportSize({ width: 1024, height: 700 });
    await expect(menu).toBeVisible();
    await snap(page, 'run-downloads-1024');
    await page.keyboard.press('Escape');
    await expect(menu).toBeHidden();
    await expect(button).toBeFocused();
    await page.setViewportSize({ width: 1440, height: 900 });

    // the log: one line per record, with its time and level
    const log = await download(page, 'Log');
    expect(log.name).toBe('downloads-e2e.log');
    const logLines = log.text.trimEnd().split('\n');
    const records = (await invoke(server, 'runs-logs', { id: run.id, tail: 10_000 })) as unknown[];
    expect(logLines.length).toBe(records.length);
    for (const l of logLines) expect(l).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO |WARN |ERROR) \S/);

    // the metrics: the Compare CSV, with a row per train step
    const csv = await download(page, 'Metrics');
    expect(csv.name).toBe('downloads-e2e-metrics.csv');
    const rows = csv.text.trimEnd().split('\r\n');
    expect(rows[0]).toBe('run_id,run_name,metric,step,value,wall_time,tokens_seen');
    const loss = rows.filter((r) => r.startsWith(`${run.id},downloads <e2e>,train/loss,`));
    expect(loss.length).toBe(12);
    expect(loss[0]).toMatch(new RegExp(`^${run.id},downloads <e2e>,train/loss,0,\\d+\\.\\d+,\\d{10}(\\.\\d+)?,1024$`));
    expect(rows.some((r) => r.includes(',val/loss,'))).toBe(true);

    // the config: JSON of the run's config
    const json = await download(page, 'Config');
    expect(json.name).toBe('downloads-e2e-config.json');
    const stored = ((await invoke(server, 'runs-get', { id: run.id })) as { config: unknown }).config;
    expect(JSON.parse(json.text)).toEqual(stored);

    // the samples: one JSON object a line
    const jsonl = await download(page, 'Samples');
    expect(jsonl.name).toBe('downloads-e2e-samples.jsonl');
    const samples = jsonl.text
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as { step: number; prompt: string; text: string });
    expect(samples.length).toBeGreaterThanOrEqual(2);
    for (const s of samples) {
      expect(s.prompt).toBe('Once upon a time');
      expect(s.text.startsWith('Once upon a time')).toBe(true);
      expect(Number.isInteger(s.step)).toBe(true);
    }

    // the report: one HTML file, opened on its own
    const report = await download(page, 'Report');
    expect(report.name).toBe('downloads-e2e-report.html');
    expect(report.text).not.toMatch(/<script|https?:\/\//);
    expect(report.text).toContain('downloads &#60;e2e&#62;');
    expect(failed).toEqual([]);

    // from disk, as whoever the report is shared with opens it
    const file = test.info().outputPath('run-report.html');
    writeFileSync(file, report.text);
    const viewer = await page.context().newPage();
    await viewer.setViewportSize({ width: 1440, height: 900 });
    const external: string[] = [];
    viewer.on('request', (r) => {
      if (!r.url().startsWith('file:')) external.push(r.url());
    });
    await viewer.goto(pathToFileURL(file).href);
    await expect(viewer.getByRole('heading', { level: 1 })).toHaveText('downloads <e2e>');
    await expect(viewer.locator('[data-status]')).toHaveText('Done');
    const charts = viewer.locator('figure.chart');
    expect(await charts.count()).toBeGreaterThanOrEqual(4);
    for (let i = 0; i < (await charts.count()); i++) {
      const d = await charts.nth(i).locator('svg path.line').first().getAttribute('d');
      expect(d ?? '').toMatch(/^M[\d.]+,[\d.]+L/);
      const box = (await charts.nth(i).locator('svg').boundingBox())!;
      expect(box.width).toBeGreaterThan(300);
    }
    await expect(viewer.locator('li.sample').first()).toContainText('Once upon a time');
    await expect(viewer.locator('pre.config')).toContainText('"max_steps": 12');
    expect(external).toEqual([]);
    await snap(viewer, 'run-report');
    await viewer.emulateMedia({ colorScheme: 'dark' });
    const bg = await viewer.evaluate<string>('getComputedStyle(document.body).backgroundColor');
    expect(bg).toBe('rgb(14, 16, 22)');
    await snap(viewer, 'run-report-dark');
    await viewer.setViewportSize({ width: 1024, height: 700 });
    await viewer.emulateMedia({ colorScheme: 'light' });
    await snap(viewer, 'run-report-1024');
    await viewer.close();
  });
});
