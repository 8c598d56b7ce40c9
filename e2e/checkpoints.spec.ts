import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from '@playwright/test';
import type { RunningServer } from '../src/node/serve/server';
import { expect, invoke, prepareBuiltin, snap, test, watchErrors } from './fixtures';

const repo = fileURLToPath(new URL('..', import.meta.url));
const sharedDir = process.env.GPT2_STUDIO_SHARED ?? resolve(repo, '..', 'shared');

/** A small model, 12 steps, a checkpoint with a val loss every 4 (steps 4, 8, 12), all kept. */
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
  sample_interval: 0,
  checkpoint_interval: 4,
  keep_last: 0,
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

const rowOf = (page: Page, runId: string, step: number) => page.locator(`tr[data-key="ckpt:${runId}:${step}"]`);
const stepsShown = async (page: Page) =>
  await page
    .locator('.ckpt-table tbody tr[data-step]')
    .evaluateAll((rows) => rows.map((r) => Number(r.getAttribute('data-step'))));

test.describe('checkpoints', () => {
  test.afterEach(async ({ server }, testInfo) => {
    if (testInfo.status === testInfo.expectedStatus) return;
    try {
      for (const r of (await invoke(server, 'runs-list')) as RunInfo[]) {
        console.log(`run ${r.id}: ${r.status}, error ${JSON.stringify(r.error)}`);
        for (const l of (await invoke(server, 'runs-logs', { id: r.id })) as { level: string; message: string }[])
          console.log(`  ${l.level} ${l.message}`);
      }
    } catch (e) {
      console.log(`could not read the runs: ${String(e)}`);
    }
  });

  test('an empty workspace explains where checkpoints come from', async ({ page, appUrl }) => {
    await page.goto(appUrl + '#/checkpoints');
    await expect(page.getByRole('heading', { level: 1, name: 'Checkpoints' })).toBeVisible();
    await expect(page.getByRole('heading', { level: 2, name: 'No checkpoints yet' })).toBeVisible();
    await expect(page.getByText('checkpoint_interval')).toBeVisible();
    await expect(page.getByRole('link', { name: 'New run' }).last()).toHaveAttribute('href', '#/new-run');
  });

  test('list, sort and filter; sample; a gallery of two; export; HellaSwag; resume from here; delete', async ({
    page,
    appUrl,
    server,
    workspace,
  }) => {
    test.setTimeout(180_000);
    const failed = watchErrors(page);
    await prepareBuiltin(server);
    // a short HellaSwag file where the workspace keeps it, so that Evaluate runs in seconds
    const hsFixture = join(sharedDir, 'data', 'hellaswag_val_1000.jsonl');
    const hasHellaswag = existsSync(hsFixture);
    if (hasHellaswag) {
      const hsFile = join(workspace, 'datasets', 'hellaswag', 'hellaswag_val.jsonl');
      mkdirSync(dirname(hsFile), { recursive: true });
      writeFileSync(hsFile, readFileSync(hsFixture, 'utf8').split('\n').slice(0, 12).join('\n') + '\n');
    }
    const run = await trainedRun(server, 'e2e ckpt');

    await page.goto(appUrl + '#/checkpoints');
    await expect(page.getByRole('heading', { level: 1, name: 'Checkpoints' })).toBeVisible();
    // newest first, each with its val loss and size
    await expect.poll(() => stepsShown(page)).toEqual([12, 8, 4]);
    for (const step of [4, 8, 12]) {
      const row = rowOf(page, run.id, step);
      // 4 and 8 were evaluated on their own weights; the final checkpoint's value was measured at the last step's
      // index (11, before its update), and says so
      await expect(row.locator('[data-col="val-loss"]')).toHaveText(
        step === 12 ? /^\d+\.\d{4} @ step 11$/ : /^\d+\.\d{4}$/,
      );
      await expect(row.locator('[data-col="size"]')).toHaveText(/^\d+(\.\d)? (KiB|MiB)$/);
      await expect(row.getByRole('link', { name: 'e2e ckpt' })).toHaveAttribute('href', `#/run/${run.id}`);
    }
    await expect(rowOf(page, run.id, 12).locator('.ckpt-latest')).toHaveText('latest');
    await expect(rowOf(page, run.id, 4).locator('.ckpt-latest')).toHaveCount(0);
    await expect(rowOf(page, run.id, 8).getByRole('link', { name: 'Chat' })).toHaveAttribute(
      'href',
      `#/chat?model=${encodeURIComponent(`ckpt:${run.id}:8`)}`,
    );
    await snap(page, 'checkpoints');

    // sortable: by step ascending, then back
    await page.getByRole('button', { name: 'Step', exact: true }).click();
    await expect.poll(() => stepsShown(page)).toEqual([12, 8, 4]);
    await page.getByRole('button', { name: 'Step', exact: true }).click();
    await expect.poll(() => stepsShown(page)).toEqual([4, 8, 12]);
    await expect(page.locator('th[aria-sort="ascending"]')).toContainText('Step');
    await page.getByRole('button', { name: 'Created', exact: true }).click();
    await expect.poll(() => stepsShown(page)).toEqual([12, 8, 4]);

    // filter by run through the address; an unknown run says so
    await page.goto(appUrl + '#/checkpoints?run=run-nope');
    await expect(page.locator('.table-empty')).toContainText('No run "run-nope" with checkpoints');
    await page.goto(appUrl + `#/checkpoints?run=${run.id}`);
    await expect.poll(() => stepsShown(page)).toEqual([12, 8, 4]);
    await expect(page.getByLabel('Run', { exact: true })).toHaveValue(run.id);

    // Sample, from the keyboard
    await rowOf(page, run.id, 12).getByRole('button', { name: 'Sample' }).focus();
    await page.keyboard.press('Enter');
    const sample = page.getByTestId('sample-dialog');
    await expect(sample).toBeVisible();
    // it starts from the prompt the run samples with (the config's sample.prompt, here its default)
    await expect(sample.getByLabel('Prompt')).toHaveValue("Hello, I'm a language model,");
    await sample.getByLabel('Prompt').fill('Once upon a time');
    await sample.getByLabel('Max tokens').fill('16');
    await sample.getByRole('button', { name: 'Generate' }).click();
    const text = sample.getByTestId('sample-text');
    await expect(text).toBeVisible({ timeout: 60_000 });
    await expect(text).toContainText('Once upon a time');
    expect(((await text.textContent()) ?? '').length).toBeGreaterThan('Once upon a time'.length);
    await expect(sample).toContainText(/\d+ tokens · [\d.]+ tokens\/s/);
    await sample.getByRole('button', { name: 'Close' }).click();
    await expect(sample).toHaveCount(0);

    // the gallery: two checkpoints side by side, same prompt and seed
    await expect(page.getByRole('button', { name: /^Compare samples/ })).toBeDisabled();
    await page.getByRole('checkbox', { name: `Choose step 4 of e2e ckpt for the sample gallery` }).check();
    await page.getByRole('checkbox', { name: `Choose step 12 of e2e ckpt for the sample gallery` }).check();
    await page.getByRole('button', { name: 'Compare samples (2)' }).click();
    const gallery = page.getByTestId('sample-gallery');
    // it starts from the same prompt as the Sample dialog: the run's own
    await expect(gallery.getByLabel('Prompt')).toHaveValue("Hello, I'm a language model,");
    await gallery.getByLabel('Prompt').fill('Once upon a time');
    await gallery.getByLabel('Max tokens').fill('24');
    await gallery.getByRole('button', { name: 'Generate 2 samples' }).click();
    const cols = gallery.locator('.ckpt-gallery-col');
    await expect(cols).toHaveCount(2);
    await expect(cols.nth(0).getByTestId('sample-text')).toBeVisible({ timeout: 60_000 });
    await expect(cols.nth(1).getByTestId('sample-text')).toBeVisible({ timeout: 60_000 });
    await expect(cols.nth(0)).toContainText('step 4');
    await expect(cols.nth(1)).toContainText('step 12');
    await expect(cols.nth(0)).toContainText(/val loss \d+\.\d{4}/);
    const [a, b] = [
      await cols.nth(0).getByTestId('sample-text').textContent(),
      await cols.nth(1).getByTestId('sample-text').textContent(),
    ];
    expect(a).toMatch(/^Once upon a time/);
    expect(b).toMatch(/^Once upon a time/);
    const boxes = [await cols.nth(0).boundingBox(), await cols.nth(1).boundingBox()];
    expect(boxes[1]!.x, 'side by side').toBeGreaterThan(boxes[0]!.x + boxes[0]!.width - 1);
    expect(Math.abs(boxes[1]!.y - boxes[0]!.y)).toBeLessThan(2);
    await snap(page, 'checkpoints-gallery');
    await gallery.getByRole('button', { name: 'Close gallery' }).click();

    // export to an HF folder
    const dest = join(workspace, 'exports', 'e2e-step8');
    await rowOf(page, run.id, 8).getByRole('button', { name: 'Export' }).click();
    const exp = page.getByTestId('export-dialog');
    await expect(exp.getByLabel('Destination folder')).toHaveValue(/exports[\\/]e2e-ckpt-step8$/);
    await exp.getByLabel('Destination folder').fill(dest);
    await exp.getByRole('button', { name: 'Export', exact: true }).click();
    await expect(exp.getByTestId('export-dir')).toHaveText(dest);
    expect(existsSync(join(dest, 'model.safetensors'))).toBe(true);
    expect(JSON.parse(readFileSync(join(dest, 'config.json'), 'utf8'))).toMatchObject({
      model_type: 'gpt2',
      n_layer: 2,
      n_embd: 64,
    });
    await snap(page, 'checkpoints-export');
    await exp.getByRole('button', { name: 'Done' }).click();
    // again into the same, now non-empty folder: refused with the reason and the way out
    await rowOf(page, run.id, 8).getByRole('button', { name: 'Export' }).click();
    await exp.getByLabel('Destination folder').fill(dest);
    await exp.getByRole('button', { name: 'Export', exact: true }).click();
    await expect(exp.getByRole('alert')).toContainText('is not empty');
    await expect(exp.getByRole('alert')).toContainText('allow overwriting');
    await exp.getByRole('button', { name: 'Cancel' }).click();

    // HellaSwag: progress, then the result in the row
    if (hasHellaswag) {
      const row = rowOf(page, run.id, 12);
      await row.getByRole('button', { name: 'Evaluate' }).click();
      await expect(row.locator('[data-col="hellaswag"]')).toHaveText(/^\d+\.\d%/, { timeout: 90_000 });
      await expect(row.getByRole('button', { name: 'Evaluate' })).toBeEnabled();
    }

    // delete: the dialog says what keep_last does; the row goes
    await rowOf(page, run.id, 8).getByRole('button', { name: 'Delete step 8 of e2e ckpt' }).click();
    const del = page.getByTestId('delete-checkpoint-dialog');
    await expect(del).toContainText('keep_last is 0 for this run');
    await del.getByRole('button', { name: 'Delete checkpoint' }).click();
    await expect(del).toHaveCount(0);
    await expect(rowOf(page, run.id, 8)).toHaveCount(0);
    await expect(page.getByRole('status').filter({ hasText: 'Deleted checkpoint step 8' })).toBeVisible();
    expect(existsSync(join(workspace, 'runs', run.id, 'checkpoints', 'step_000008'))).toBe(false);
    await expect.poll(() => stepsShown(page)).toEqual([12, 4]);

    // the end of the run: nothing left to train, and the dialog says so
    // (the button is aria-disabled but stays focusable, so that its dialog can say why)
    const endButton = rowOf(page, run.id, 12).getByRole('button', { name: 'Resume from here' });
    await expect(endButton).toHaveAttribute('aria-disabled', 'true');
    await endButton.focus();
    await page.keyboard.press('Enter');
    const atEnd = page.getByTestId('branch-dialog');
    await expect(atEnd).toContainText('nothing left to train');
    await expect(atEnd.getByRole('button', { name: 'Create and start' })).toBeDisabled();
    await atEnd.getByRole('button', { name: 'Cancel' }).click();
    await expect(atEnd).toHaveCount(0);

    // resume from here: a new run, opened at once; the original stays
    await rowOf(page, run.id, 4).getByRole('button', { name: 'Resume from here' }).click();
    const br = page.getByTestId('branch-dialog');
    await expect(br).toContainText('The original run and its checkpoints stay as they are');
    await expect(br.getByLabel('Name of the new run')).toHaveValue('e2e ckpt from step 4');
    await br.getByRole('button', { name: 'Create and start' }).click();
    await expect(page).toHaveURL(/#\/run\/run-[\w-]+$/);
    const newId = decodeURIComponent(page.url().split('#/run/')[1]!);
    expect(newId).not.toBe(run.id);
    await expect(page.getByRole('heading', { level: 1, name: 'e2e ckpt from step 4' })).toBeVisible();
    await expect(page.getByTestId('run-log')).toContainText('resuming from checkpoint step 4', { timeout: 60_000 });
    const runs = (await invoke(server, 'runs-list')) as RunInfo[];
    expect(runs.map((r) => r.id).sort()).toEqual([newId, run.id].sort());

    // back on the page, the new run's checkpoints are listed with the original's
    await page.goto(appUrl + '#/checkpoints');
    await expect(rowOf(page, newId, 4)).toBeVisible();
    await expect(rowOf(page, run.id, 4)).toBeVisible();
    await expect(rowOf(page, run.id, 12)).toBeVisible();

    // dark theme
    await page.getByRole('button', { name: /Switch to dark theme/ }).click();
    await expect(page.locator('html')).toHaveAttribute('data-theme', 'dark');
    await snap(page, 'checkpoints-dark');

    // the refused export is the one failed request (the service answers 422 with the reason shown above)
    expect(failed.filter((m) => /status of 422/.test(m)).length).toBe(1);
    expect(
      failed.filter((m) => !/status of 422/.test(m)),
      'no page errors and no other console errors',
    ).toEqual([]);
  });
});
