/**
 * The Runs and Checkpoints tables at the widths people use (1024 × 700, 1440 × 900): every header whole and in
 * view (or the table visibly scrolls), the sticky actions column over nothing, columns chosen and kept across a
 * reload, the status filter's counts, and groups.
 */
import type { Locator, Page } from '@playwright/test';
import type { RunningServer } from '../src/node/serve/server';
import { expect, invoke, prepareBuiltin, snap, test, watchErrors } from './fixtures';

/** A small model, 12 steps, a checkpoint every 4 (steps 4, 8, 12), all kept. */
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
  status: string;
  error: unknown;
}

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

interface Box {
  text: string;
  left: number;
  right: number;
  scrollWidth: number;
  clientWidth: number;
}

/**
 * The header cells of a table (their text, box and widths), and whether the table scrolls sideways in a scroller
 * whose scrollbar is in the window.
 */
async function headerLayout(table: Locator) {
  return await table.evaluate((t) => {
    // the columns a narrow table leaves out (display: none) have no box
    const shown = [...t.querySelectorAll('thead th')].filter((th) => th.getClientRects().length > 0);
    const cells = shown.map((th) => {
      const r = th.getBoundingClientRect();
      return {
        text: (th.textContent ?? '').trim(),
        left: r.left,
        right: r.right,
        scrollWidth: th.scrollWidth,
        clientWidth: th.clientWidth,
      };
    });
    const wrap = t.closest('.table-wrap')!;
    const w = wrap.getBoundingClientRect();
    // the page's window (the e2e typecheck has no DOM library)
    const win = globalThis as unknown as { innerWidth: number; innerHeight: number };
    return {
      cells,
      viewport: win.innerWidth,
      scrolls: wrap.scrollWidth > wrap.clientWidth + 1 && w.bottom <= win.innerHeight && w.right <= win.innerWidth,
    };
  });
}

/** Every header cell whole, in view (or the table scrolls), and the sticky last one clear of the one before it. */
async function expectHeadersWhole(table: Locator, what: string): Promise<Box[]> {
  const { cells, viewport, scrolls } = await headerLayout(table);
  expect(cells.length, `${what}: header cells`).toBeGreaterThan(3);
  for (const c of cells) {
    expect(c.scrollWidth, `${what}: header "${c.text}" is cut (scrollWidth > clientWidth)`).toBeLessThanOrEqual(
      c.clientWidth,
    );
    if (!scrolls) expect(c.right, `${what}: header "${c.text}" is past the window`).toBeLessThanOrEqual(viewport);
  }
  const last = cells[cells.length - 1]!;
  const before = cells[cells.length - 2]!;
  expect(last.left, `${what}: the sticky actions column covers "${before.text}"`).toBeGreaterThanOrEqual(
    before.right - 0.5,
  );
  return cells;
}

const headerTexts = async (table: Locator) =>
  (await table.locator('thead th').allTextContents()).map((t) => t.trim()).filter(Boolean);

async function openRuns(page: Page, appUrl: string) {
  await page.goto(appUrl + '#/runs');
  const table = page.getByRole('table', { name: 'Runs' });
  await expect(table.locator('tbody tr[data-run-id]').first()).toBeVisible();
  return table;
}

test.describe('tables', () => {
  test('Runs and Checkpoints: headers at 1024 and 1440, columns kept, status counts, groups', async ({
    page,
    appUrl,
    server,
  }) => {
    test.setTimeout(300_000);
    const failed = watchErrors(page);
    await prepareBuiltin(server);
    await prepareBuiltin(server, 'stories-b');

    // a finished run with checkpoints; a branch of it with a long note (its name and note are the widest); two
    // runs not started, one on another dataset, one tagged
    const base = await trainedRun(server, 'e2e base');
    const branch = (await invoke(server, 'checkpoints-branch', { runId: base.id, step: 4, start: false })) as RunInfo;
    await invoke(server, 'runs-update', {
      id: branch.id,
      tags: ['branch'],
      notes: 'a branch from step 4, to see whether a lower learning rate keeps the val loss going down for longer',
    });
    await invoke(server, 'runs-create', {
      config: { ...config, dataset: 'stories-b' },
      name: 'alpha',
      start: false,
    });
    const bravo = (await invoke(server, 'runs-create', { config, name: 'bravo', start: false })) as RunInfo;
    await invoke(server, 'runs-update', { id: bravo.id, tags: ['baseline'] });

    // ---- Runs at 1024 × 700
    await page.setViewportSize({ width: 1024, height: 700 });
    let table = await openRuns(page, appUrl);
    await expect(table.locator('tbody tr[data-run-id]')).toHaveCount(4);
    await snap(page, 'runs-1024');
    await expectHeadersWhole(table, 'Runs at 1024');

    // the status filter counts each status
    const statusFilter = page.getByRole('group', { name: 'Status' });
    await expect(statusFilter).toHaveText(/All\s*4\s*Created\s*3\s*Done\s*1/);
    await statusFilter.getByRole('button', { name: /^Done/ }).click();
    await expect(table.locator('tbody tr[data-run-id]')).toHaveCount(1);
    await expect(table.locator(`tr[data-run-id="${base.id}"]`)).toBeVisible();
    await statusFilter.getByRole('button', { name: /^All/ }).click();
    await expect(table.locator('tbody tr[data-run-id]')).toHaveCount(4);

    // group by dataset: a header per dataset, its runs under it
    await page.getByLabel('Group by').selectOption('dataset');
    const groups = table.locator('tr.group-row');
    await expect(groups).toHaveCount(2);
    await expect(groups.nth(0)).toContainText('builtin');
    await expect(groups.nth(0)).toContainText('3 runs');
    await expect(groups.nth(1)).toContainText('stories-b');
    await expect(table.locator('tbody[data-group="stories-b"] tr[data-run-id]')).toHaveCount(1);
    await expectHeadersWhole(table, 'Runs grouped at 1024');
    await page.getByLabel('Group by').selectOption('none');
    await expect(groups).toHaveCount(0);

    // the Columns menu: hide Tokens, move Started before Steps; both kept across a reload
    await page.getByRole('button', { name: /^Columns/ }).click();
    const menu = page.getByRole('group', { name: 'Columns of the runs table' });
    await expect(menu).toBeVisible();
    await menu.getByRole('checkbox', { name: 'Tokens', exact: true }).uncheck();
    for (let i = 0; i < 5; i++) await menu.getByRole('button', { name: 'Move Started left' }).click();
    await snap(page, 'runs-columns-menu');
    await page.keyboard.press('Escape');
    await expect(menu).toHaveCount(0);
    let headers = await headerTexts(table);
    expect(headers).not.toContain('Tokens');
    expect(headers.indexOf('Started')).toBeLessThan(headers.indexOf('Steps'));
    await page.reload();
    table = await openRuns(page, appUrl);
    headers = await headerTexts(table);
    expect(headers).not.toContain('Tokens');
    expect(headers.indexOf('Started')).toBeLessThan(headers.indexOf('Steps'));
    await page.getByRole('button', { name: /^Columns/ }).click();
    await expect(menu.getByRole('checkbox', { name: 'Tokens', exact: true })).not.toBeChecked();
    await menu.getByRole('button', { name: 'Reset', exact: true }).click();
    await page.keyboard.press('Escape');
    expect(await headerTexts(table)).toContain('Tokens');

    // ---- Runs at 1440 × 900: the branch's note does not squeeze a header
    await page.setViewportSize({ width: 1440, height: 900 });
    await expect(table.locator(`tr[data-run-id="${branch.id}"]`)).toContainText('lower learning rate');
    const wide = await expectHeadersWhole(table, 'Runs at 1440');
    for (const c of wide) expect(c.right, `"${c.text}" in view at 1440`).toBeLessThanOrEqual(1440);
    await snap(page, 'runs-1440');

    // ---- Checkpoints at 1024 × 700
    await page.setViewportSize({ width: 1024, height: 700 });
    await page.goto(appUrl + '#/checkpoints');
    const ckpts = page.getByRole('table', { name: 'Checkpoints' });
    await expect(ckpts.locator('tbody tr[data-step]')).toHaveCount(4);
    await snap(page, 'checkpoints-1024');
    await expectHeadersWhole(ckpts, 'Checkpoints at 1024');

    // its Columns menu: hide Size, kept across a reload
    await page.getByRole('button', { name: /^Columns/ }).click();
    await page
      .getByRole('group', { name: 'Columns of the checkpoints table' })
      .getByRole('checkbox', { name: 'Size' })
      .uncheck();
    await page.keyboard.press('Escape');
    await expect(ckpts.locator('thead th[data-col="size"]')).toHaveCount(0);
    await page.reload();
    await expect(ckpts.locator('tbody tr[data-step]')).toHaveCount(4);
    await expect(ckpts.locator('thead th[data-col="size"]')).toHaveCount(0);
    await expect(ckpts.locator('tbody td[data-col="size"]')).toHaveCount(0);

    expect(failed).toEqual([]);
  });

  test('no runs yet: the way starts at Datasets', async ({ page, appUrl }) => {
    await page.setViewportSize({ width: 1024, height: 700 });
    await page.goto(appUrl + '#/runs');
    const empty = page.getByRole('region', { name: 'No runs yet' });
    await expect(empty).toContainText('Prepare one on Datasets first');
    await expect(empty.getByRole('link', { name: 'Prepare a dataset' })).toHaveAttribute('href', '#/datasets');
    await expect(empty.getByRole('link', { name: 'New run' })).toHaveAttribute('href', '#/new-run');
  });
});
