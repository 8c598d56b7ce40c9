import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Locator, Page } from '@playwright/test';
import { openStore } from '../src/node/store';
import { expect, screenshotDir, snap, test, watchErrors } from './fixtures';

/**
 * Writes finished runs straight into the workspace's store, as training would have left them: a train loss
 * falling from 11 to 6 over `steps` steps (0..steps-1), with its lr, and val loss every 10 steps.
 */
function seedRuns(workspace: string, runs: { name: string; steps: number }[]): string[] {
  const store = openStore(workspace);
  try {
    const db = store.database;
    const insert = db.prepare(
      'INSERT INTO metrics (run_id, name, step, value, wall_time, tokens_seen) VALUES (?, ?, ?, ?, ?, ?)',
    );
    const finish = db.prepare(
      "UPDATE runs SET status = 'done', steps_done = ?, tokens_seen = ?, best_val_loss = ?, started_at = ?, ended_at = ?, engine = 'tfjs' WHERE id = ?",
    );
    const t0 = Date.now() - 3_600_000;
    return runs.map((r, k) => {
      const run = store.createRun({
        name: r.name,
        config: {
          model: { preset: 'nano', n_layer: 4, n_head: 4, n_embd: 128 },
          dataset: 'builtin',
          max_steps: r.steps,
          warmup_steps: 2,
          batch_size: 8,
          seq_len: 128,
          total_batch_size: 1024,
        },
        preset: 'nano',
      });
      const start = t0 + k * 600_000;
      let best = Infinity;
      db.transaction(() => {
        for (let s = 0; s < r.steps; s++) {
          const wall = start + s * 250;
          const tokens = (s + 1) * 1024;
          // from 11 down to 6, with a little noise
          const loss = 6 + 5 * Math.exp(-s / (r.steps / 4)) + 0.05 * Math.sin(s + k);
          insert.run(run.id, 'train/loss', s, loss, wall, tokens);
          insert.run(run.id, 'train/lr', s, 6e-4 * Math.min(1, (s + 1) / 2), wall, tokens);
          if (s % 10 === 0 || s === r.steps - 1) {
            best = Math.min(best, loss + 0.1);
            insert.run(run.id, 'val/loss', s, loss + 0.1, wall, tokens);
          }
        }
        finish.run(r.steps, r.steps * 1024, best, start, start + r.steps * 250, run.id);
      })();
      return run.id;
    });
  } finally {
    store.close();
  }
}

/** The drawn lines' vertical extents on a chart's plot, and the plot's height, in CSS pixels. */
async function extents(chart: Locator): Promise<{ height: number; lines: ([number, number] | null)[] }> {
  const plot = chart.locator('.chart-plot');
  const height = Number(await plot.getAttribute('data-plot-height'));
  const attr = (await plot.getAttribute('data-line-extents')) ?? '';
  const lines = attr.split('|').map((e) => (e ? (e.split(',').map(Number) as [number, number]) : null));
  return { height, lines };
}

/** How much of the plot's height the tallest line spans (0 to 1). */
async function filled(chart: Locator): Promise<number> {
  const { height, lines } = await extents(chart);
  if (!(height > 0)) return 0;
  return Math.max(0, ...lines.map((l) => (l ? l[1] - l[0] : 0))) / height;
}

/** The text of a chart legend's row for a line (by its label). */
const legendRow = (chart: Locator, label: string) => chart.locator('.u-legend .u-series').filter({ hasText: label });

/** Moves the mouse over a chart's plot, `fx` of the way across. */
async function hover(page: Page, chart: Locator, fx: number): Promise<void> {
  const box = (await chart.locator('.u-over').boundingBox())!;
  await page.mouse.move(box.x + box.width * fx, box.y + box.height * 0.5);
}

test.describe('charts', () => {
  test('a log y axis fits the losses: the curve fills most of the plot, ticks within the decade', async ({
    page,
    appUrl,
    workspace,
  }) => {
    const failed = watchErrors(page);
    const [id] = seedRuns(workspace, [{ name: 'loss 6 to 11', steps: 60 }]);
    await page.setViewportSize({ width: 1440, height: 900 });
    await page.goto(appUrl + `#/run/${id}`);
    const loss = page.getByTestId('chart-loss');
    await expect(loss).toHaveAttribute('data-points', '60');
    await page.getByRole('checkbox', { name: 'Log y' }).check();
    // the train loss (6 to 11) spans at least half of the plot's height, not a sliver of 10 to 100
    await expect.poll(() => filled(loss)).toBeGreaterThanOrEqual(0.5);
    // the axis is labelled inside the decade (uPlot draws its tick labels on the canvas; the legend is text)
    await expect(loss.locator('.u-legend')).toContainText(/Step\s*\d+/);
    await expect(loss.locator('.u-legend .u-series').first().locator('.u-label')).toHaveAttribute(
      'title',
      /counted from 0/,
    );
    await snap(page, 'charts-logy');
    await page.setViewportSize({ width: 1024, height: 700 });
    await expect.poll(() => filled(loss)).toBeGreaterThanOrEqual(0.5);
    await snap(page, 'charts-logy-1024');
    expect(failed).toEqual([]);
  });

  test('Compare: the hover shows nothing for a run past its last step; the PNG is at least 2x', async ({
    page,
    appUrl,
    workspace,
  }) => {
    const failed = watchErrors(page);
    const [short, long] = seedRuns(workspace, [
      { name: 'short run', steps: 27 },
      { name: 'long run', steps: 60 },
    ]);
    await page.goto(appUrl + `#/compare?runs=${short},${long}`);
    const trainLoss = page.getByTestId('chart-train-loss');
    await expect(trainLoss).toHaveAttribute('data-line-points', /^(27,60|60,27)$/);

    // within both runs: both have a value
    await hover(page, trainLoss, 0.2);
    await expect(trainLoss.locator('.u-legend')).toContainText(/Step\s*1\d/);
    await expect(legendRow(trainLoss, 'short run')).toContainText(/\d+\.\d+/);
    await expect(legendRow(trainLoss, 'long run')).toContainText(/\d+\.\d+/);
    // at the end: the long run's last value, nothing for the short run (it ended at step 26)
    await hover(page, trainLoss, 0.995);
    await expect(trainLoss.locator('.u-legend')).toContainText(/Step\s*59/);
    await expect(legendRow(trainLoss, 'long run')).toContainText(/\d+\.\d+/);
    await expect(legendRow(trainLoss, 'short run')).toContainText('—');
    await expect(legendRow(trainLoss, 'short run')).not.toContainText(/\d+\.\d+/);
    await page.mouse.move(0, 0);

    // the PNG: at the screen's pixel ratio and at least twice the chart's CSS size
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Download the Train loss chart as PNG' }).click(),
    ]);
    const png = readFileSync(await download.path());
    await download.saveAs(join(screenshotDir, 'charts-export-2x.png'));
    expect(png.subarray(0, 8).toString('hex')).toBe('89504e470d0a1a0a');
    const canvas = (await trainLoss.locator('canvas').boundingBox())!;
    const dpr = await page.evaluate<number>('window.devicePixelRatio');
    const ratio = Math.max(2, dpr);
    // IHDR: the plot and its margins, then the title and legend
    expect(png.readUInt32BE(16)).toBeGreaterThanOrEqual(Math.floor(canvas.width * ratio));
    expect(png.readUInt32BE(20)).toBeGreaterThanOrEqual(Math.floor((canvas.height + 40) * ratio));
    expect(failed).toEqual([]);
  });

  test('the New run lr preview draws the peak of a short schedule', async ({ page, appUrl }) => {
    const failed = watchErrors(page);
    await page.goto(appUrl + '#/new-run');
    await expect(page.getByRole('heading', { level: 1, name: 'New run' })).toBeVisible();
    await page.locator('[data-preset="nano"]').click();
    const preview = page.getByTestId('lr-preview');
    for (const [steps, warmup] of [
      ['60', '5'],
      ['20', '2'],
    ] as const) {
      await page.locator('[data-field="max_steps"]').locator('input').first().fill(steps);
      await page.locator('[data-field="warmup_steps"]').locator('input').first().fill(warmup);
      await expect(preview).toContainText(`${steps} steps`);
      const points = ((await preview.locator('polyline').getAttribute('points')) ?? '')
        .trim()
        .split(' ')
        .map((p) => p.split(',').map(Number) as [number, number]);
      expect(points).toHaveLength(Number(steps));
      const peakY = Number(await preview.getAttribute('data-peak-y'));
      const top = Math.min(...points.map(([, y]) => y));
      // the line reaches max_lr, and the peak lies inside the box with room for the line's width
      expect(top).toBeCloseTo(peakY, 1);
      expect(top).toBeGreaterThanOrEqual(2);
      // at the last warm-up step (steps - 1 points over the width)
      const peakAt = points.findIndex(([, y]) => Math.abs(y - top) < 0.05);
      expect(peakAt).toBe(Number(warmup) - 1);
    }
    await preview.scrollIntoViewIfNeeded();
    await preview.screenshot({ path: join(screenshotDir, 'new-run-lr-preview.png') });
    expect(failed).toEqual([]);
  });
});
