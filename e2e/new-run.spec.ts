import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from '@playwright/test';
import { expect, invoke, prepareBuiltin, screenshotDir, test, watchErrors } from './fixtures';

/** Saves what the window shows (not the full page): the action bar sits where the user sees it. */
async function snap(page: Page, name: string): Promise<void> {
  mkdirSync(screenshotDir, { recursive: true });
  await page.screenshot({ path: join(screenshotDir, `${name}.png`) });
}

const field = (page: Page, path: string) =>
  page.locator(`[data-field="${path}"]`).locator('input, select, textarea').first();

const runCount = async (server: Parameters<typeof invoke>[0]) =>
  ((await invoke(server, 'runs-list')) as unknown[]).length;

/** Opens New run on the nano preset and waits until the workspace has checked its config. */
async function openNano(page: Page, appUrl: string): Promise<void> {
  await page.goto(appUrl + '#/new-run');
  await expect(page.getByRole('heading', { level: 1, name: 'New run' })).toBeVisible();
  await page.locator('[data-preset="nano"]').click();
  await expect(page.getByTestId('validation-state')).toHaveText('Valid');
}

/** The Create and start button lies wholly inside the viewport, without scrolling. */
async function expectStartInView(page: Page): Promise<void> {
  const vp = page.viewportSize()!;
  expect(await page.evaluate<number>('window.scrollY')).toBe(0);
  const box = await page.getByRole('button', { name: 'Create and start' }).boundingBox();
  expect(box).not.toBeNull();
  expect(box!.y).toBeGreaterThanOrEqual(0);
  expect(box!.y + box!.height).toBeLessThanOrEqual(vp.height);
  expect(box!.x + box!.width).toBeLessThanOrEqual(vp.width);
}

test.describe('new run', () => {
  test('Enter in a field never creates a run', async ({ page, appUrl, server }) => {
    const failed = watchErrors(page);
    await prepareBuiltin(server);
    await openNano(page, appUrl);

    await field(page, 'name').fill('pressed enter');
    await field(page, 'name').press('Enter');
    await field(page, 'max_steps').fill('30');
    await field(page, 'max_steps').press('Enter');
    await field(page, 'max_lr').press('Enter');
    await page.waitForTimeout(1500);

    await expect(page).toHaveURL(/#\/new-run$/);
    expect(await runCount(server)).toBe(0);
    await expect(field(page, 'name')).toHaveValue('pressed enter');
    expect(failed).toEqual([]);
  });

  test('a long run asks first, naming its estimate; Cancel creates nothing', async ({ page, appUrl, server }) => {
    const failed = watchErrors(page);
    await prepareBuiltin(server);
    await page.goto(appUrl + '#/new-run');
    await page.locator('[data-preset="gpt2-124m"]').click();
    // its FineWeb-edu is not in this workspace: the form starts on the dataset that is
    await expect(field(page, 'dataset')).toHaveValue('builtin');
    await expect(page.getByTestId('validation-state')).toHaveText('Valid');
    const estimate = page.getByTestId('action-estimate');
    await expect(estimate).toContainText('19,073 steps');

    // on the CPU its plan (hundreds of GiB) does not fit in this machine's memory either: one dialog says both
    const engines = (await invoke(server, 'engines-list')) as { name: string; available: boolean }[];
    const onCpu = !engines.some((e) => e.name === 'native-cuda' && e.available);
    await page.getByRole('button', { name: 'Create and start' }).click();
    const dialog = page.getByTestId('confirm-start');
    await expect(dialog).toBeVisible();
    const title = onCpu ? 'Start a long run that may not fit in memory?' : 'Start a long run?';
    await expect(dialog.getByRole('heading', { name: title })).toBeVisible();
    const reason = dialog.getByTestId('confirm-reason');
    // gpt2-124m's 10B tokens take hours even on the fastest hardware
    await expect(reason).toContainText(/(about|at least) \d+ (h|d) \d+ (min|h)/);
    expect(Number(await reason.getAttribute('data-seconds'))).toBeGreaterThan(3600);
    await expect(dialog).toContainText('19,073 steps of 524,288 tokens');
    if (onCpu) {
      await expect(dialog.getByTestId('confirm-memory')).toContainText(/needs about [\d.]+ GiB .* this machine has/);
      await expect(dialog.getByRole('button', { name: 'Create anyway' })).toBeVisible();
    }
    await snap(page, 'new-run-confirm');

    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await expect(dialog).toHaveCount(0);
    await page.waitForTimeout(500);
    expect(await runCount(server)).toBe(0);
    await expect(page).toHaveURL(/#\/new-run$/);
    expect(failed).toEqual([]);
  });

  test('Create and start is in view at 1024 x 700 and 1440 x 900; labels are read whole', async ({
    page,
    appUrl,
    server,
  }) => {
    const failed = watchErrors(page);
    await prepareBuiltin(server);

    await page.setViewportSize({ width: 1024, height: 700 });
    await openNano(page, appUrl);
    await expectStartInView(page);
    await snap(page, 'new-run-1024');

    await page.setViewportSize({ width: 1440, height: 900 });
    await page.evaluate('window.scrollTo(0, 0)');
    await expectStartInView(page);
    // every folded section open, so that every label is laid out
    for (const summary of await page.locator('details.form-section:not([open]) > summary').all()) await summary.click();
    const clipped = await page.evaluate<(string | null)[]>(`
      [...document.querySelectorAll('.new-run .field label')]
        .filter((l) => l.scrollWidth > l.clientWidth + 0.5 || l.scrollHeight > l.clientHeight + 0.5)
        .map((l) => l.textContent)
    `);
    expect(clipped).toEqual([]);
    await page.evaluate('window.scrollTo(0, 0)');
    await snap(page, 'new-run-1440');
    expect(failed).toEqual([]);
  });

  test('an empty workspace offers to prepare the builtin dataset, then the form is usable', async ({
    page,
    appUrl,
    server,
  }) => {
    test.setTimeout(180_000);
    const failed = watchErrors(page);
    await page.setViewportSize({ width: 1024, height: 700 });
    await page.goto(appUrl + '#/new-run');
    const offer = page.getByTestId('prepare-builtin');
    await expect(offer).toBeVisible();
    await expect(offer).toContainText('no dataset to train on yet');
    // no red error for the dataset: the offer explains it
    await expect(page.locator('[data-field="dataset"] .field-error')).toHaveCount(0);
    await expect(page.getByTestId('validation-state')).toHaveText('No dataset yet');
    await expect(page.getByRole('button', { name: 'Create and start' })).toBeDisabled();
    await snap(page, 'new-run-empty');

    await offer.getByRole('button', { name: /^Prepare/ }).click();
    await expect(offer.getByRole('button', { name: 'Preparing…' })).toBeDisabled();
    await expect(offer).toHaveCount(0, { timeout: 150_000 });

    await expect(field(page, 'dataset')).toHaveValue('builtin');
    await expect(page.getByTestId('validation-state')).toHaveText('Valid');
    await expect(page.locator('.new-run .field-error')).toHaveCount(0);
    await expect(page.getByRole('button', { name: 'Create and start' })).toBeEnabled();
    const list = (await invoke(server, 'datasets-list')) as { id: string; status: string }[];
    expect(list.filter((d) => d.status === 'ready').map((d) => d.id)).toEqual(['builtin']);
    expect(failed).toEqual([]);
  });

  test('the problems counter follows JSON edits', async ({ page, appUrl, server }) => {
    const failed = watchErrors(page);
    await prepareBuiltin(server);
    await openNano(page, appUrl);
    const counter = page.getByTestId('validation-state');
    const start = page.getByRole('button', { name: 'Create and start' });

    await page.getByRole('radio', { name: 'JSON', exact: true }).click();
    const json = page.getByRole('textbox', { name: 'Run config (JSON)' });
    const base = {
      model: { preset: 'nano' },
      dataset: 'builtin',
      total_batch_size: 1024,
      batch_size: 8,
      seq_len: 128,
      max_steps: 10,
      warmup_steps: 2,
    };
    await json.fill(JSON.stringify({ ...base, max_lr: 2 }));
    await expect(counter).toHaveText('1 problem');
    await json.fill(JSON.stringify({ ...base, max_lr: 2, total_batch_size: 1000 }));
    await expect(counter).toHaveText('2 problems');
    await expect(start).toBeDisabled();
    await json.fill('{ "dataset": ');
    await expect(counter).toHaveText('The JSON does not parse');
    await expect(start).toBeDisabled();
    await json.fill(JSON.stringify({ ...base, dataset: 'nope' }));
    await expect(counter).toHaveText('1 problem in the workspace');
    await json.fill(JSON.stringify(base));
    await expect(counter).toHaveText('Valid');
    await expect(start).toBeEnabled();
    expect(failed).toEqual([]);
  });
});
