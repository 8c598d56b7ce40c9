import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from '@playwright/test';
import { expect, invoke, prepareBuiltin, snap, test, watchErrors } from './fixtures';

/** Sets a New run field by its config path (e.g. "max_steps"). */
async function setField(page: Page, path: string, value: string): Promise<void> {
  const input = page.locator(`[data-field="${path}"]`).locator('input, select, textarea').first();
  await input.fill(value);
}

const stepOf = async (page: Page) => Number(await page.getByTestId('step-counter').getAttribute('data-step'));
const lossPoints = async (page: Page) => Number(await page.getByTestId('chart-loss').getAttribute('data-points'));

test.describe('runs', () => {
  // On a failure, print what the service knows of each run (status, error, log), before the server closes.
  test.afterEach(async ({ server }, testInfo) => {
    if (testInfo.status === testInfo.expectedStatus) return;
    try {
      const runs = (await invoke(server, 'runs-list')) as {
        id: string;
        status: string;
        stepsDone: number;
        error: unknown;
      }[];
      for (const r of runs) {
        console.log(`run ${r.id}: ${r.status}, ${r.stepsDone} steps, error ${JSON.stringify(r.error)}`);
        const logs = (await invoke(server, 'runs-logs', { id: r.id })) as {
          time: number;
          level: string;
          message: string;
        }[];
        for (const l of logs) console.log(`  ${new Date(l.time).toISOString()} ${l.level} ${l.message}`);
      }
    } catch (e) {
      console.log(`could not read the runs: ${String(e)}`);
    }
  });

  test('create a nano run on the builtin dataset, watch it train live, stop it, resume it, find it in the Runs table', async ({
    page,
    appUrl,
    server,
  }) => {
    test.setTimeout(240_000);
    const failed = watchErrors(page);
    await prepareBuiltin(server);

    await page.goto(appUrl + '#/new-run');
    await expect(page.getByRole('heading', { level: 1, name: 'New run' })).toBeVisible();
    await page.locator('[data-preset="nano"]').click();
    await expect(page.locator('[data-preset="nano"]')).toHaveClass(/preset-selected/);
    await expect(page.locator('[data-field="dataset"] select')).toHaveValue('builtin');

    await setField(page, 'name', 'e2e nano');
    await setField(page, 'max_steps', '30');
    await setField(page, 'eval_interval', '10');
    await setField(page, 'checkpoint_interval', '10');
    await setField(page, 'sample_interval', '10');
    await setField(page, 'warmup_steps', '2');
    await setField(page, 'eval_iters', '2');

    // the planner: nano has 7,265,024 parameters (wte padded to 50,304 rows); one micro-step of 8 x 128 per step;
    // no finished run in a fresh workspace, so it times a nano step on this machine by itself (a quick one)
    const planner = page.getByTestId('planner');
    await expect(planner.getByTestId('plan-params')).toHaveAttribute('title', '7,265,024');
    await expect(planner.getByTestId('plan-accum')).toContainText('1 × (8 × 128)');
    await expect(planner.getByTestId('plan-time')).toHaveAttribute('data-source', 'calibration', { timeout: 60_000 });
    await expect(planner.getByTestId('plan-time-source')).toContainText(
      /measured now: \d+ steps? of 8 × 128 on (native-cpu|native-cuda|tfjs)/,
    );
    await expect(page.getByTestId('validation-state')).toHaveText('Valid');
    await snap(page, 'page-new-run');

    await page.getByRole('button', { name: 'Create and start' }).click();
    await expect(page).toHaveURL(/#\/run\/run-[\w-]+$/);
    await expect(page.getByRole('heading', { level: 1, name: 'e2e nano' })).toBeVisible();
    const runId = decodeURIComponent(page.url().split('#/run/')[1]!);

    // live: the step counter and the loss curve advance without a reload
    await expect.poll(() => stepOf(page), { timeout: 90_000 }).toBeGreaterThanOrEqual(3);
    const points = await lossPoints(page);
    expect(points).toBeGreaterThan(0);
    await expect.poll(() => lossPoints(page), { timeout: 60_000 }).toBeGreaterThan(points);
    await expect.poll(() => stepOf(page)).toBeGreaterThanOrEqual(points + 1);
    await expect(page.getByTestId('run-log')).toContainText('step');
    await snap(page, 'page-run');

    // measured, not asserted: how long after the service recorded a step its event reached the page
    const [shownStep, receivedAt] = await page.evaluate<[string, string]>(
      `(() => { const el = document.querySelector('[data-testid="step-counter"]'); return [el.dataset.step, el.dataset.receivedAt]; })()`,
    );
    const metrics = (await invoke(server, 'runs-metrics', { id: runId, names: ['train/loss'] })) as Record<
      string,
      { steps: number[]; wallTimes: number[] }
    >;
    const at = metrics['train/loss']!.steps.indexOf(Number(shownStep) - 1);
    if (at >= 0 && receivedAt)
      console.log(
        `step event latency (recorded -> on the page): ${(Number(receivedAt) - metrics['train/loss']!.wallTimes[at]!).toFixed(0)} ms`,
      );

    // stop: the worker checkpoints and stops
    await page.getByRole('button', { name: 'Stop' }).click();
    await expect(page.locator('.run-title-row [data-status]')).toHaveAttribute('data-status', 'stopped', {
      timeout: 60_000,
    });
    const stoppedAt = await stepOf(page);
    expect(stoppedAt).toBeGreaterThan(0);
    await expect(page.getByTestId('stat-checkpoint')).toContainText(`step ${stoppedAt}`);
    await expect(page.getByRole('button', { name: 'Stop' })).toHaveCount(0);

    // the chart options: hover values, x by tokens and wall time, log y, clipping, smoothing
    const loss = page.getByTestId('chart-loss');
    const box = (await loss.locator('.u-over').boundingBox())!;
    await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.5);
    await expect(loss.locator('.u-legend')).toContainText(/Step\s*\d+/);
    await expect(loss.locator('.u-legend')).toContainText(/train\s*\d+\.\d+/);
    await page.getByRole('radio', { name: 'Tokens', exact: true }).click();
    await expect(loss.locator('.u-legend')).toContainText('Tokens');
    await page.getByRole('radio', { name: 'Wall time', exact: true }).click();
    await expect(loss.locator('.u-legend')).toContainText('Time');
    await page.getByRole('checkbox', { name: 'Log y' }).check();
    await page.getByRole('checkbox', { name: 'Clip outliers' }).check();
    await page.getByRole('slider', { name: 'Smoothing' }).focus();
    await page.keyboard.press('Home');
    await expect(loss.locator('.u-legend')).not.toContainText('raw');
    await expect(loss).toHaveAttribute('data-points', String(stoppedAt));
    await snap(page, 'run-chart-options');
    await page.getByRole('radio', { name: 'Step', exact: true }).click();
    await page.getByRole('checkbox', { name: 'Log y' }).uncheck();
    await page.getByRole('checkbox', { name: 'Clip outliers' }).uncheck();

    // resume from that checkpoint: the counter goes on from where it stopped
    await page.getByRole('button', { name: 'Resume' }).click();
    await expect(page.locator('.run-title-row [data-status]')).toHaveAttribute('data-status', 'running', {
      timeout: 30_000,
    });
    await expect.poll(() => stepOf(page), { timeout: 90_000 }).toBeGreaterThan(stoppedAt);
    await expect(page.getByTestId('run-log')).toContainText(`resuming from checkpoint step ${stoppedAt}`);

    // the run is in the Runs table, reached from the navigation
    await page.getByRole('navigation', { name: 'Pages' }).getByRole('link', { name: 'Runs', exact: true }).click();
    await expect(page.getByRole('heading', { level: 1, name: 'Runs' })).toBeVisible();
    const row = page.locator(`tr[data-run-id="${runId}"]`);
    await expect(row).toBeVisible();
    await expect(row.getByRole('link', { name: 'e2e nano' })).toBeVisible();
    await expect(row).toHaveAttribute('data-status', /running|done/);
    await expect(row.locator('td').nth(3)).toContainText('/30'); // steps column (after the compare tick box): n/30
    await snap(page, 'page-runs');

    // and back to its page from the table
    await row.getByRole('link', { name: 'e2e nano' }).click();
    await expect(page.getByRole('heading', { level: 1, name: 'e2e nano' })).toBeVisible();
    await expect(page.getByTestId('chart-loss')).toHaveAttribute('data-points', /[1-9]/);
    const draw = await page.getByTestId('chart-loss').locator('[data-draw-ms]').getAttribute('data-draw-ms');
    console.log(`loss chart redraw: ${draw} ms`);

    // a new run from this one's config
    await page.getByRole('link', { name: 'New run from this config' }).click();
    await expect(page).toHaveURL(/#\/new-run\?from=/);
    await expect(page.locator('[data-field="name"] input')).toHaveValue('e2e nano (copy)');
    await expect(page.locator('[data-field="max_steps"] input')).toHaveValue('30');

    expect(failed, 'no page errors and no console errors').toEqual([]);
  });

  test('a preset whose dataset is missing starts on a ready one; picking the selected preset again restores its values', async ({
    page,
    appUrl,
    server,
  }) => {
    const failed = watchErrors(page);
    await prepareBuiltin(server, 'stories'); // ready, but not the "builtin" that the nano preset names
    await page.goto(appUrl + '#/new-run');
    await expect(page.locator('[data-preset="nano"]')).toHaveClass(/preset-selected/);
    const dataset = page.locator('[data-field="dataset"]');
    await expect(dataset.locator('select')).toHaveValue('stories');
    await expect(dataset.locator('.field-error')).toHaveCount(0);
    const maxSteps = page.locator('[data-field="max_steps"] input');
    await expect(maxSteps).toHaveValue('300');
    await setField(page, 'max_steps', '77');
    await expect(maxSteps).toHaveValue('77');
    await page.locator('[data-preset="nano"]').click();
    await expect(maxSteps).toHaveValue('300');
    expect(failed).toEqual([]);
  });

  test('a bad config shows its error at the field, from the schema and from the workspace', async ({
    page,
    appUrl,
  }) => {
    const failed = watchErrors(page);
    await page.goto(appUrl + '#/new-run');
    await expect(page.getByRole('heading', { level: 1, name: 'New run' })).toBeVisible();
    await page.locator('[data-preset="nano"]').click();

    // the workspace has no datasets: an offer to prepare one stands for the dataset field's error
    await expect(page.getByTestId('prepare-builtin')).toBeVisible();
    await expect(page.locator('[data-field="dataset"] .field-error')).toHaveCount(0);

    // instant, local checks (the zod run schema): each message sits at its field
    const maxLr = page.locator('[data-field="max_lr"]');
    await maxLr.locator('input').fill('2');
    await expect(maxLr.locator('.field-error')).toHaveText('max_lr must be <= 1');
    await expect(maxLr.locator('input')).toHaveAttribute('aria-invalid', 'true');
    await expect(page.getByRole('button', { name: 'Create and start' })).toBeDisabled();

    const tbs = page.locator('[data-field="total_batch_size"]');
    await tbs.locator('input').fill('1000');
    await expect(tbs.locator('.field-error')).toContainText(
      'not divisible by batch_size * seq_len * world_size = 8 * 128 * 1 = 1024',
    );
    await expect(page.getByTestId('validation-state')).toHaveText('2 problems');
    await snap(page, 'new-run-errors');
    await tbs.locator('input').fill('1024');
    await expect(tbs.locator('.field-error')).toHaveCount(0);

    const warm = page.locator('[data-field="warmup_steps"]');
    await warm.locator('input').fill('abc');
    await expect(warm.locator('.field-error')).toHaveText('warmup_steps must be a number');

    // fixing a field clears its message
    await maxLr.locator('input').fill('0.001');
    await expect(maxLr.locator('.field-error')).toHaveCount(0);

    // the JSON view edits the same config, and lists the problems with their fields
    await page.getByRole('radio', { name: 'JSON', exact: true }).click();
    const json = page.getByRole('textbox', { name: 'Run config (JSON)' });
    await expect(json).toHaveValue(/"max_lr": 0.001/);
    await json.fill(
      JSON.stringify({
        model: { preset: 'nano', n_head: 5 },
        dataset: 'builtin',
        max_steps: 10,
        batch_size: 8,
        seq_len: 128,
        total_batch_size: 1024,
        warmup_steps: 2,
        colour: 'blue',
      }),
    );
    const jsonErrors = page.getByTestId('json-errors');
    await expect(jsonErrors).toContainText('model.n_head');
    await expect(jsonErrors).toContainText('not divisible by model.n_head = 5');
    await expect(jsonErrors).toContainText('unknown field(s): colour');
    await json.fill('{ "dataset": ');
    await expect(jsonErrors).toContainText('JSON:');

    // back in the form, the field errors are where they belong; the unknown key is listed above the form
    await json.fill(
      JSON.stringify({ model: { preset: 'nano', n_head: 5 }, dataset: 'builtin', max_steps: 10, colour: 'blue' }),
    );
    await page.getByRole('radio', { name: 'Form', exact: true }).click();
    await expect(page.locator('[data-field="model.n_head"] .field-error')).toContainText(
      'model.n_embd = 128 is not divisible by model.n_head = 5',
    );
    await expect(page.getByTestId('config-errors')).toContainText('unknown field(s): colour');

    expect(failed).toEqual([]);
  });

  test('the Runs table: search, status filter, tags and notes, delete with confirmation, live status', async ({
    page,
    appUrl,
    server,
    workspace,
  }) => {
    test.setTimeout(120_000);
    const failed = watchErrors(page);
    await prepareBuiltin(server);
    const config = {
      model: { preset: 'nano' },
      dataset: 'builtin',
      total_batch_size: 1024,
      batch_size: 8,
      seq_len: 128,
      max_steps: 200,
      warmup_steps: 2,
      eval_interval: 0,
      sample_interval: 0,
      checkpoint_interval: 10,
      eval_iters: 1,
    };
    const a = (await invoke(server, 'runs-create', { config, name: 'alpha', preset: 'nano', start: false })) as {
      id: string;
    };
    const b = (await invoke(server, 'runs-create', { config, name: 'bravo', preset: 'nano', start: false })) as {
      id: string;
    };
    expect(existsSync(join(workspace, 'runs', b.id))).toBe(true);

    await page.goto(appUrl + '#/runs');
    const table = page.getByRole('table', { name: 'Runs' });
    const rowA = table.locator(`tr[data-run-id="${a.id}"]`);
    const rowB = table.locator(`tr[data-run-id="${b.id}"]`);
    await expect(rowA).toBeVisible();
    await expect(rowB).toBeVisible();
    await expect(rowA.locator('[data-status]').first()).toHaveText('Created');

    // tick both, from the keyboard, to compare them
    await expect(page.getByRole('button', { name: 'Compare' })).toBeDisabled();
    await rowA.getByRole('checkbox', { name: 'Compare alpha' }).focus();
    await page.keyboard.press('Space');
    await rowB.getByRole('checkbox', { name: 'Compare bravo' }).check();
    const compare = page.getByRole('link', { name: 'Compare 2 runs' });
    await expect(compare).toHaveAttribute('href', `#/compare?runs=${encodeURIComponent(`${a.id},${b.id}`)}`);
    await compare.click();
    await expect(page.getByRole('heading', { level: 1, name: 'Compare' })).toBeVisible();
    await expect(page.getByRole('checkbox', { name: /alpha/ })).toBeChecked();
    await page.goBack();

    // tags and notes
    await rowA.getByRole('button', { name: 'Edit name, tags and notes of alpha' }).click();
    const edit = page.getByTestId('edit-run-dialog');
    await expect(edit).toBeVisible();
    await edit.getByLabel('Tags').fill('baseline, e2e');
    await edit.getByLabel('Notes').fill('the first try');
    await edit.getByRole('button', { name: 'Save' }).click();
    await expect(edit).toHaveCount(0);
    await expect(rowA.locator('.tag')).toHaveText(['baseline', 'e2e']);
    await expect(rowA).toContainText('the first try');
    const saved = (await invoke(server, 'runs-get', { id: a.id })) as { tags: string[]; notes: string };
    expect(saved).toMatchObject({ tags: ['baseline', 'e2e'], notes: 'the first try' });

    // search (name, id, tags, notes) and the status filter
    const search = page.getByRole('searchbox', { name: 'Search runs' });
    await search.fill('baseline');
    await expect(rowA).toBeVisible();
    await expect(rowB).toHaveCount(0);
    await search.fill('');
    await expect(rowB).toBeVisible();
    const status = page.getByRole('group', { name: 'Status' });
    await expect(status).toHaveText(/All\s*2\s*Created\s*2/);
    await status.getByRole('button', { name: /^Created/ }).click();
    await expect(table.locator('tbody tr[data-run-id]')).toHaveCount(2);
    await search.fill('no-such-run');
    await expect(table.locator('tbody tr[data-run-id]')).toHaveCount(0);
    await expect(table).toContainText('No run matches');
    await search.fill('');
    await status.getByRole('button', { name: /^All/ }).click();

    // live status: a run started elsewhere (here, through the API) turns running, then stopped, without a reload
    await invoke(server, 'runs-resume', { id: a.id });
    await expect(rowA).toHaveAttribute('data-status', 'running', { timeout: 30_000 });
    await expect(rowA.getByRole('button', { name: 'Delete alpha' })).toBeDisabled();
    await expect(rowA.locator('td.num').first()).not.toHaveText(/^0\//, { timeout: 60_000 }); // a step was taken
    await snap(page, 'runs-table');
    await invoke(server, 'runs-stop', { id: a.id });
    await expect(rowA).toHaveAttribute('data-status', 'stopped', { timeout: 60_000 });

    // delete: cancel keeps it; confirming removes the run and its folder
    await rowB.getByRole('button', { name: 'Delete bravo' }).click();
    const del = page.getByTestId('delete-run-dialog');
    await expect(del).toContainText(`runs/${b.id}/`);
    await snap(page, 'runs-delete-dialog');
    await del.getByRole('button', { name: 'Cancel' }).click();
    await expect(del).toHaveCount(0);
    await expect(rowB).toBeVisible();
    await rowB.getByRole('button', { name: 'Delete bravo' }).click();
    await page.getByTestId('delete-run-dialog').getByRole('button', { name: 'Delete run and files' }).click();
    await expect(rowB).toHaveCount(0);
    expect(existsSync(join(workspace, 'runs', b.id))).toBe(false);
    const left = (await invoke(server, 'runs-list')) as { id: string }[];
    expect(left.map((r) => r.id)).toEqual([a.id]);

    expect(failed).toEqual([]);
  });
});
