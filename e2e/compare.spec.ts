import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from '@playwright/test';
import { openStore } from '../src/node/store';
import { expect, invoke, prepareBuiltin, screenshotDir, snap, test, watchErrors } from './fixtures';

interface SeedRun {
  name: string;
  config: Record<string, unknown>;
  /** train steps 0..steps-1 (train/loss, lr, norm, tok/s unless trainOnly) */
  steps: number;
  /** the level of its loss curve, so that the runs' curves lie apart */
  offset: number;
  valEvery?: number;
  hellaswag?: number[];
  /** only train/loss (for the redraw measurement) */
  trainOnly?: boolean;
}

/**
 * Writes runs and their metrics straight into the workspace's store (one transaction per run), as a finished
 * training run would have left them: loss falling from about 11, a warmup-cosine lr, norms, throughput, val
 * loss every `valEvery` steps and HellaSwag at the given steps.
 */
function seedRuns(workspace: string, runs: SeedRun[]): string[] {
  const store = openStore(workspace);
  try {
    const db = store.database;
    const insert = db.prepare(
      'INSERT INTO metrics (run_id, name, step, value, wall_time, tokens_seen) VALUES (?, ?, ?, ?, ?, ?)',
    );
    const finish = db.prepare(
      "UPDATE runs SET status = 'done', steps_done = ?, tokens_seen = ?, best_val_loss = ?, started_at = ?, ended_at = ?, engine = 'tfjs' WHERE id = ?",
    );
    const ids: string[] = [];
    const t0 = Date.now() - 3_600_000;
    runs.forEach((r, k) => {
      const run = store.createRun({ name: r.name, config: r.config, preset: 'nano' });
      ids.push(run.id);
      const start = t0 + k * 600_000;
      db.transaction(() => {
        let best: number | null = null;
        for (let s = 0; s < r.steps; s++) {
          const wall = start + s * 250;
          const tokens = (s + 1) * 1024;
          const loss = r.offset + 7 * Math.exp(-s / (r.steps / 8)) + 0.15 * Math.sin(s / 7 + k);
          insert.run(run.id, 'train/loss', s, loss, wall, tokens);
          if (!r.trainOnly) {
            const lr = 6e-4 * Math.min(1, (s + 1) / 10) * (0.1 + 0.9 * 0.5 * (1 + Math.cos((Math.PI * s) / r.steps)));
            insert.run(run.id, 'train/lr', s, lr, wall, tokens);
            insert.run(run.id, 'train/norm', s, 0.5 + 2 * Math.exp(-s / 50) + 0.05 * Math.cos(s), wall, tokens);
            insert.run(run.id, 'train/tok_per_sec', s, 4000 + 500 * k + 50 * Math.sin(s), wall, tokens);
          }
          if (r.valEvery && (s % r.valEvery === 0 || s === r.steps - 1)) {
            const val = loss + 0.1;
            best = best === null ? val : Math.min(best, val);
            insert.run(run.id, 'val/loss', s, val, wall, tokens);
          }
        }
        for (const [i, step] of (r.hellaswag ?? []).entries())
          insert.run(
            run.id,
            'hellaswag/acc_norm',
            step,
            0.25 + 0.02 * (i + 1) + 0.01 * k,
            start + step * 250,
            (step + 1) * 1024,
          );
        finish.run(r.steps, r.steps * 1024, best, start, start + r.steps * 250, run.id);
      })();
    });
    return ids;
  } finally {
    store.close();
  }
}

const nanoConfig = (maxLr: number, extra: Record<string, unknown> = {}) => ({
  model: { preset: 'nano', n_layer: 4, n_head: 4, n_embd: 128 },
  dataset: 'builtin',
  max_lr: maxLr,
  min_lr_ratio: 0.1,
  warmup_steps: 10,
  batch_size: 8,
  seq_len: 128,
  total_batch_size: 1024,
  ...extra,
});

const linePoints = async (page: Page, testId: string) => {
  const attr = await page.getByTestId(testId).getAttribute('data-line-points');
  return attr ? attr.split(',').map(Number) : [];
};
/** (Browser code as strings: this file is type-checked without the DOM library.) */
const swatchColour = (page: Page, runId: string) =>
  page.evaluate<string>(
    `getComputedStyle(document.querySelector('.compare-legend [data-run-id="${runId}"] .compare-swatch')).backgroundColor`,
  );
/** The colours of a chart's legend markers, one per line. */
const markerColours = (page: Page, testId: string) =>
  page.evaluate<string[]>(
    `[...document.querySelectorAll('[data-testid="${testId}"] .u-legend .u-series:not(:first-child) .u-marker')].map((el) => getComputedStyle(el).backgroundColor)`,
  );
/** How many opaque pixels of a chart's canvas have each of the colours (rgb(r, g, b)), give or take anti-aliasing. */
const colourPixels = (page: Page, testId: string, colours: string[]) =>
  page.evaluate<number[]>(`(() => {
    const canvas = document.querySelector('[data-testid="${testId}"] canvas');
    const want = ${JSON.stringify(colours)}.map((c) => c.match(/\\d+/g).map(Number));
    const img = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    const found = want.map(() => 0);
    for (let i = 0; i < img.length; i += 4) {
      if (img[i + 3] < 200) continue;
      want.forEach((w, k) => {
        if (Math.abs(img[i] - w[0]) + Math.abs(img[i + 1] - w[1]) + Math.abs(img[i + 2] - w[2]) < 30) found[k]++;
      });
    }
    return found;
  })()`);
const baselines = (page: Page, testId: string) =>
  page.getByTestId(testId).locator('[data-baselines]').getAttribute('data-baselines');

test.describe('compare', () => {
  test('says what to do with fewer than two runs, and with fewer than two selected', async ({
    page,
    appUrl,
    workspace,
  }) => {
    const failed = watchErrors(page);
    await page.goto(appUrl + '#/compare');
    await expect(page.getByRole('heading', { level: 1, name: 'Compare' })).toBeVisible();
    await expect(page.getByRole('heading', { name: 'No runs to compare yet' })).toBeVisible();
    await expect(page.getByRole('link', { name: 'New run' }).last()).toHaveAttribute('href', '#/new-run');
    await snap(page, 'compare-empty');

    seedRuns(workspace, [{ name: 'only', config: nanoConfig(6e-4), steps: 20, offset: 3 }]);
    await page.reload();
    await expect(page.getByRole('heading', { name: 'Only one run so far' })).toBeVisible();

    seedRuns(workspace, [{ name: 'second', config: nanoConfig(1e-3), steps: 20, offset: 3 }]);
    await page.reload();
    await expect(page.getByRole('heading', { name: 'Pick at least two runs' })).toBeVisible();
    await page.getByRole('list', { name: 'Runs to compare' }).getByLabel('only').check();
    await expect(page.getByRole('heading', { name: 'Pick one more run' })).toBeVisible();
    await expect(page.getByTestId('chart-train-loss')).toHaveCount(0);
    expect(failed).toEqual([]);
  });

  test('overlays the curves of the picked runs with reference lines, a config table, CSV and PNG exports', async ({
    page,
    appUrl,
    workspace,
  }) => {
    test.setTimeout(90_000);
    const failed = watchErrors(page);
    const [a, b, c] = seedRuns(workspace, [
      { name: 'lr 6e-4', config: nanoConfig(6e-4), steps: 500, offset: 3.0, valEvery: 50, hellaswag: [249, 499] },
      {
        name: 'lr 1e-3, warm',
        config: nanoConfig(1e-3, { warmup_steps: 20 }),
        steps: 400,
        offset: 3.4,
        valEvery: 50,
        hellaswag: [249, 399],
      },
      { name: 'lr 3e-4', config: nanoConfig(3e-4, { seed: 7 }), steps: 300, offset: 3.8, valEvery: 100 },
    ]);

    // pick two runs from the searchable list: the selection goes into the URL
    await page.goto(appUrl + '#/compare');
    const list = page.getByRole('list', { name: 'Runs to compare' });
    await expect(list.locator('li[data-run-id]')).toHaveCount(3);
    const search = page.getByRole('searchbox', { name: 'Search runs' });
    await search.fill('1e-3');
    await expect(list.locator('li[data-run-id]')).toHaveCount(1);
    await list.getByLabel('lr 1e-3, warm').check();
    await search.fill('');
    await list.getByLabel('lr 6e-4').check();
    await expect(page).toHaveURL(new RegExp(`#/compare\\?runs=${b}(%2C|,)${a}$`));
    await expect(page.getByTestId('selection-count')).toHaveText('2 of 10 selected');

    // one chart per metric, one line per run with all its points; HellaSwag since the runs have it
    const trainLoss = page.getByTestId('chart-train-loss');
    await expect(trainLoss).toHaveAttribute('data-line-points', '400,500');
    await expect(page.getByTestId('chart-val-loss')).toHaveAttribute('data-line-points', '9,11');
    await expect(page.getByTestId('chart-lr')).toHaveAttribute('data-line-points', '400,500');
    await expect(page.getByTestId('chart-norm')).toHaveAttribute('data-line-points', '400,500');
    await expect(page.getByTestId('chart-tok-per-sec')).toHaveAttribute('data-line-points', '400,500');
    await expect(page.getByTestId('chart-hellaswag')).toHaveAttribute('data-line-points', '2,2');
    await expect(trainLoss.locator('.u-legend')).toContainText('lr 1e-3, warm');
    await expect(trainLoss.locator('.u-legend')).toContainText('lr 6e-4');

    // each run has its own colour, the same in the page legend and in every chart's legend
    const [colourA, colourB] = [await swatchColour(page, a!), await swatchColour(page, b!)];
    expect(colourA).not.toBe(colourB);
    for (const id of ['chart-train-loss', 'chart-val-loss', 'chart-hellaswag'])
      expect(await markerColours(page, id)).toEqual([colourB, colourA]);

    // hover: each run's value at the cursor
    const box = (await trainLoss.locator('.u-over').boundingBox())!;
    await page.mouse.move(box.x + box.width * 0.4, box.y + box.height * 0.5);
    await expect(trainLoss.locator('.u-legend')).toContainText(/Step\s*\d+/);
    await expect(trainLoss.locator('.u-legend .u-series').nth(1)).toContainText(/\d+\.\d+/);
    await expect(trainLoss.locator('.u-legend .u-series').nth(2)).toContainText(/\d+\.\d+/);

    // the reference lines: drawn and labelled, each switchable
    await expect.poll(() => baselines(page, 'chart-val-loss')).toBe('GPT-2 124M · 3.2924');
    await expect.poll(() => baselines(page, 'chart-hellaswag')).toBe('GPT-2 124M · 29.55%|GPT-3 124M · 33.7%');
    await snap(page, 'page-compare');
    const gpt3 = page.getByRole('checkbox', { name: 'GPT-3 124M HellaSwag (0.337)' });
    await gpt3.uncheck();
    await expect.poll(() => baselines(page, 'chart-hellaswag')).toBe('GPT-2 124M · 29.55%');
    await page.getByRole('checkbox', { name: 'GPT-2 124M val loss on FineWeb-edu (3.2924)' }).uncheck();
    await expect.poll(() => baselines(page, 'chart-val-loss')).toBe('');
    await page.getByRole('checkbox', { name: 'GPT-2 124M val loss on FineWeb-edu (3.2924)' }).check();
    await gpt3.check();
    await expect.poll(() => baselines(page, 'chart-val-loss')).toBe('GPT-2 124M · 3.2924');

    // the run page's chart options
    await page.getByRole('radio', { name: 'Tokens', exact: true }).click();
    await expect(trainLoss.locator('.u-legend')).toContainText('Tokens');
    await page.getByRole('radio', { name: 'Wall time', exact: true }).click();
    await expect(trainLoss.locator('.u-legend')).toContainText('Time');
    await page.getByRole('checkbox', { name: 'Log y' }).check();
    await page.getByRole('checkbox', { name: 'Clip outliers' }).check();
    await page.getByRole('slider', { name: 'Smoothing' }).focus();
    await page.keyboard.press('Home');
    await expect(page.locator('.slider output')).toHaveText('0.00');
    await expect(trainLoss).toHaveAttribute('data-line-points', '400,500');
    await expect.poll(() => baselines(page, 'chart-val-loss')).toBe('GPT-2 124M · 3.2924');
    await page.getByRole('radio', { name: 'Step', exact: true }).click();
    await page.getByRole('checkbox', { name: 'Log y' }).uncheck();
    await page.getByRole('checkbox', { name: 'Clip outliers' }).uncheck();

    // the config table: every key, or the differences only
    const table = page.getByRole('table', { name: 'Config of the selected runs' });
    await expect(table.locator('thead th')).toHaveText(['Key', 'lr 1e-3, warm', 'lr 6e-4']);
    await expect(table.locator('tr[data-key="model.n_layer"]')).toContainText('4');
    const maxLr = table.locator('tr[data-key="max_lr"]');
    await expect(maxLr.locator('td')).toHaveText(['0.001', '0.0006']);
    await page.getByRole('switch', { name: /Differences only/ }).check();
    await expect(table.locator('tbody tr[data-key]')).toHaveCount(2);
    await expect(table.locator('tr[data-key="warmup_steps"] td')).toHaveText(['20', '10']);
    await expect(table.locator('tr[data-key="model.n_layer"]')).toHaveCount(0);
    await page.getByRole('switch', { name: /Differences only/ }).uncheck();
    await expect(table.locator('tr[data-key="model.n_layer"]')).toHaveCount(1);

    // CSV: one row per run, metric and step
    const [csvDownload] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Export CSV' }).click(),
    ]);
    expect(csvDownload.suggestedFilename()).toMatch(/^compare-2-runs-\d{8}-\d{6}\.csv$/);
    const csv = readFileSync(await csvDownload.path(), 'utf8')
      .trimEnd()
      .split('\r\n');
    expect(csv[0]).toBe('run_id,run_name,metric,step,value,wall_time,tokens_seen');
    // run b: 4 x 400 train points, 9 val, 2 HellaSwag; run a: 4 x 500, 11 val, 2 HellaSwag
    expect(csv.length).toBe(1 + (4 * 400 + 9 + 2) + (4 * 500 + 11 + 2));
    expect(csv[1]).toMatch(
      new RegExp(`^${b},"lr 1e-3, warm",hellaswag/acc_norm,249,0\\.28\\d*,\\d{10}(\\.\\d+)?,256000$`),
    );
    expect(csv.filter((l) => l.startsWith(`${a},lr 6e-4,train/loss,`)).length).toBe(500);

    // PNG: the chart with its title and legend
    const [pngDownload] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Download the Val loss chart as PNG' }).click(),
    ]);
    expect(pngDownload.suggestedFilename()).toMatch(/^compare-val-loss-\d{8}-\d{6}\.png$/);
    const png = readFileSync(await pngDownload.path());
    await pngDownload.saveAs(join(screenshotDir, 'compare-chart-export.png'));
    expect(png.subarray(0, 8).toString('hex')).toBe('89504e470d0a1a0a');
    const plotBox = (await page.getByTestId('chart-val-loss').locator('canvas').boundingBox())!;
    expect(png.readUInt32BE(16)).toBeGreaterThan(plotBox.width); // IHDR width: the plot and margins
    expect(png.readUInt32BE(20)).toBeGreaterThan(plotBox.height + 40); // and the title and legend

    // a link with the selection opens it; a run that is not there is named, the others compared
    await page.goto(appUrl + `#/compare?runs=${a},${c},run-gone`);
    await expect(page.getByRole('status').filter({ hasText: 'not in this workspace' })).toContainText('run-gone');
    await expect(page.getByTestId('chart-train-loss')).toHaveAttribute('data-line-points', '500,300');
    await expect(page.getByTestId('chart-hellaswag')).toHaveAttribute('data-line-points', '2,0');
    await expect(page.getByTestId('chart-val-loss')).toHaveAttribute('data-line-points', '11,4');

    // dark theme: the run colours and the reference lines follow it
    await page.getByRole('button', { name: 'Switch to dark theme' }).click();
    await expect(page.locator('html')).toHaveAttribute('data-theme', 'dark');
    await expect.poll(() => baselines(page, 'chart-val-loss')).toBe('GPT-2 124M · 3.2924');
    await snap(page, 'compare-dark');
    await page.getByRole('button', { name: 'Switch to light theme' }).click();

    // unticking a run leaves one: the page says to pick another
    await page.getByRole('list', { name: 'Runs to compare' }).getByLabel('lr 3e-4').uncheck();
    await expect(page.getByRole('heading', { name: 'Pick one more run' })).toBeVisible();
    expect(page.url()).toContain(`runs=${a}`);
    expect(failed).toEqual([]);
  });

  test('redraws 5 runs of 100,000 points each (measured)', async ({ page, appUrl, workspace }) => {
    test.setTimeout(120_000);
    const failed = watchErrors(page);
    const t = Date.now();
    const ids = seedRuns(
      workspace,
      Array.from({ length: 5 }, (_, k) => ({
        name: `long ${k + 1}`,
        config: nanoConfig(6e-4, { seed: k }),
        steps: 100_000,
        offset: 2 + k * 1.5,
        trainOnly: true,
      })),
    );
    console.log(`seeded 5 runs x 100,000 train/loss points in ${Date.now() - t} ms`);

    const t1 = Date.now();
    await page.goto(appUrl + `#/compare?runs=${ids.join(',')}`);
    const chart = page.getByTestId('chart-train-loss');
    await expect.poll(() => linePoints(page, 'chart-train-loss'), { timeout: 60_000 }).toHaveLength(5);
    await expect.poll(async () => Math.min(...(await linePoints(page, 'chart-train-loss')))).toBeGreaterThan(500);
    console.log(`loaded and drew 5 x 100,000 points in ${Date.now() - t1} ms (from navigation)`);
    const counts = await linePoints(page, 'chart-train-loss');
    console.log(`points drawn per run after decimation to the chart's width: ${counts.join(', ')}`);

    // every run's line is on the canvas in its colour
    const colours = await Promise.all(ids.map((id) => swatchColour(page, id)));
    expect(new Set(colours).size).toBe(5);
    const pixels = await colourPixels(page, 'chart-train-loss', colours);
    console.log(`canvas pixels of each run's colour: ${pixels.join(', ')}`);
    for (const n of pixels) expect(n).toBeGreaterThan(100);

    // a full redraw: a smoothing change (EMA of 5 x 100,000 points, decimation to the chart's width, the join, and
    // uPlot's draw), timed in the page from the change until the chart has drawn, and until the next frame
    const times = await page.evaluate<{ drawn: number; frame: number }[]>(`(async () => {
      const slider = document.querySelector('input[type="range"]');
      const plot = document.querySelector('[data-testid="chart-train-loss"] [data-draws]');
      const setValue = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set;
      const frame = () => new Promise((r) => requestAnimationFrame(r));
      const out = [];
      for (let i = 0; i < 12; i++) {
        await frame();
        let drawnAt = 0;
        const drawn = new Promise((resolve) => {
          const mo = new MutationObserver(() => {
            drawnAt = performance.now();
            mo.disconnect();
            resolve();
          });
          mo.observe(plot, { attributes: true, attributeFilter: ['data-draws'] });
        });
        const start = performance.now();
        setValue.call(slider, String(i % 2 ? 0.6 : 0.9));
        slider.dispatchEvent(new Event('input', { bubbles: true }));
        await drawn;
        await frame();
        out.push({ drawn: drawnAt - start, frame: performance.now() - start });
      }
      return out;
    })()`);
    const median = (xs: number[]) => xs.slice().sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
    const runs = times.slice(2); // the first two warm the code paths up
    const drawMs = await chart.locator('[data-draw-ms]').getAttribute('data-draw-ms');
    console.log(
      `full redraw of 5 runs x 100,000 points (smoothing change): median ${median(runs.map((t) => t.drawn)).toFixed(1)} ms until drawn, ` +
        `${median(runs.map((t) => t.frame)).toFixed(1)} ms until the next frame, over ${runs.length} redraws ` +
        `[drawn: ${runs.map((t) => t.drawn.toFixed(1)).join(', ')}]; uPlot's own draw of the last one: ${drawMs} ms`,
    );
    expect(await linePoints(page, 'chart-train-loss')).toHaveLength(5);
    for (const n of await linePoints(page, 'chart-train-loss')) expect(n).toBeGreaterThan(500);
    expect(failed).toEqual([]);
  });

  test('compares two real nano runs trained on the builtin dataset', async ({ page, appUrl, server }) => {
    test.setTimeout(240_000);
    const failed = watchErrors(page);
    await prepareBuiltin(server);
    const config = (maxLr: number) => ({
      model: { preset: 'nano' },
      dataset: 'builtin',
      total_batch_size: 1024,
      batch_size: 8,
      seq_len: 128,
      max_steps: 6,
      warmup_steps: 2,
      max_lr: maxLr,
      eval_interval: 3,
      eval_iters: 1,
      sample_interval: 0,
      checkpoint_interval: 0,
    });
    const ids: string[] = [];
    for (const [name, lr] of [
      ['real 6e-4', 6e-4],
      ['real 2e-3', 2e-3],
    ] as const) {
      const run = (await invoke(server, 'runs-create', { config: config(lr), name, preset: 'nano' })) as { id: string };
      ids.push(run.id);
      await expect
        .poll(async () => ((await invoke(server, 'runs-get', { id: run.id })) as { status: string }).status, {
          timeout: 100_000,
        })
        .toMatch(/done|failed|stopped|interrupted/);
      expect(((await invoke(server, 'runs-get', { id: run.id })) as { status: string }).status).toBe('done');
    }
    await page.goto(appUrl + `#/compare?runs=${ids.join(',')}`);
    await expect(page.getByTestId('chart-train-loss')).toHaveAttribute('data-line-points', '6,6');
    await expect(page.getByTestId('chart-lr')).toHaveAttribute('data-line-points', '6,6');
    await expect(page.getByTestId('chart-val-loss')).toHaveAttribute('data-line-points', /^[1-9]\d*,[1-9]\d*$/);
    await page.getByRole('switch', { name: /Differences only/ }).check();
    await expect(page.locator('tr[data-key="max_lr"] td')).toHaveText(['0.0006', '0.002']);
    await snap(page, 'compare-real-runs');
    expect(failed).toEqual([]);
  });
});
