/**
 * Layout and wording checks at 1024 and 1440 px: the HellaSwag example browser keeps Previous and Next on one
 * line and shows accuracies as percents; the Chat header stays on one line and its model select shows its whole
 * text. And the server does not log the event stream that a page closes when it navigates.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Locator } from '@playwright/test';
import { startServer } from '../src/node/serve/server';
import { resolveHome } from '../src/node/workspace';
import { expect, invoke, rendererDir, snap, test, watchErrors } from './fixtures';

const repo = fileURLToPath(new URL('..', import.meta.url));
const shared = path.resolve(process.env.GPT2_STUDIO_SHARED ?? path.resolve(repo, '..', 'shared'));
const tiny = path.join(shared, 'fixtures', 'gpt2-tiny');
const dataFile = path.join(shared, 'data', 'hellaswag_val_1000.jsonl');

const WIDTHS = [
  { width: 1024, height: 700 },
  { width: 1440, height: 900 },
] as const;

/** The element's box, or a failure that names it. */
async function box(l: Locator): Promise<{ x: number; y: number; width: number; height: number }> {
  const b = await l.boundingBox();
  if (!b) throw new Error(`no box for ${l.toString()}`);
  return b;
}

/** What the page-side functions below use of the browser's globals (this config type-checks without the DOM). */
interface Box {
  height: number;
}
interface Styled {
  getComputedStyle(el: unknown): Record<string, string>;
  document: { createElement(tag: 'canvas'): { getContext(kind: '2d'): Measure | null } };
}
interface Measure {
  font: string;
  measureText(text: string): { width: number };
}
interface SelectLike {
  clientWidth: number;
  selectedOptions: ArrayLike<{ textContent: string | null }>;
}

/** The height of one line of a button's text: its height without the padding and borders, over the line height. */
async function textLines(l: Locator): Promise<number> {
  return l.evaluate((el) => {
    const cs = (globalThis as unknown as Styled).getComputedStyle(el);
    const inner =
      (el as unknown as { getBoundingClientRect(): Box }).getBoundingClientRect().height -
      parseFloat(cs.paddingTop!) -
      parseFloat(cs.paddingBottom!) -
      parseFloat(cs.borderTopWidth!) -
      parseFloat(cs.borderBottomWidth!);
    const line = parseFloat(cs.lineHeight!) || parseFloat(cs.fontSize!) * 1.4;
    return Math.round(inner / line);
  });
}

/** Whether the chosen option's text fits in the select (its width without the padding and the arrow). */
async function selectTextFits(select: Locator): Promise<{ fits: boolean; text: string; need: number; room: number }> {
  return select.evaluate((el) => {
    const g = globalThis as unknown as Styled;
    const s = el as unknown as SelectLike;
    const text = s.selectedOptions[0]?.textContent ?? '';
    const cs = g.getComputedStyle(s);
    const ctx = g.document.createElement('canvas').getContext('2d')!;
    ctx.font = `${cs.fontWeight} ${cs.fontSize} ${cs.fontFamily}`;
    const need = ctx.measureText(text).width;
    // the drop-down arrow takes about 20 px inside the padding box
    const room = s.clientWidth - parseFloat(cs.paddingLeft!) - parseFloat(cs.paddingRight!) - 20;
    return { fits: need <= room, text, need, room };
  });
}

test.describe('small fixes', () => {
  test('HellaSwag: Previous and Next on one line, accuracies as percents', async ({ page, appUrl, server }) => {
    test.setTimeout(120_000);
    const failed = watchErrors(page);
    const model = (await invoke(server, 'models-import', { path: tiny, name: 'gpt2-tiny' })) as { key: string };
    const ev = (await invoke(server, 'evals-hellaswag', {
      target: { modelId: 'gpt2-tiny' },
      data: dataFile,
      limit: 20,
    })) as { id: string };
    await expect
      .poll(async () => ((await invoke(server, 'evals-get', { id: ev.id })) as { status: string }).status, {
        timeout: 60_000,
      })
      .toBe('done');

    for (const size of WIDTHS) {
      await page.setViewportSize(size);
      await page.goto(`${appUrl}#/evals?model=${encodeURIComponent(model.key)}`);
      const results = page.getByRole('table', { name: 'HellaSwag results' });
      const row = results.locator(`tr[data-eval-id="${ev.id}"]`);
      await expect(row).toHaveAttribute('data-status', 'done');
      // one form everywhere: a percent with one decimal
      await expect(row.locator('td.num').nth(1)).toHaveText(/^\d{1,3}\.\d%$/);
      await expect(row.locator('td.num').nth(2)).toHaveText(/^\d{1,3}\.\d%$/);
      await expect(results.getByRole('row', { name: /^GPT-2 124M/ })).toContainText('29.6%');
      await expect(results.getByRole('row', { name: /^Random/ })).toContainText('25.0%');
      await expect(page.getByText(/\b0\.\d{4}\b/)).toHaveCount(0);

      await row.getByRole('button', { name: /^Examples of/ }).click();
      const summary = page.getByTestId('eval-summary');
      await expect(summary.locator('.stat-value').first()).toHaveText(/^\d{1,3}\.\d% \d+\/20$/);
      await expect(summary).toContainText(/vs GPT-2 124M[+−]\d+\.\d pts/);
      const browser = page.getByTestId('example-browser');
      const prev = browser.getByRole('button', { name: 'Previous', exact: true });
      const next = browser.getByRole('button', { name: 'Next', exact: true });
      await expect(next).toBeVisible();
      // each on one line, and side by side
      expect(await textLines(prev)).toBe(1);
      expect(await textLines(next)).toBe(1);
      const [p, n] = [await box(prev), await box(next)];
      expect(Math.abs(p.y - n.y)).toBeLessThan(2);
      expect(n.x).toBeGreaterThan(p.x);
      const prevPage = browser.getByRole('button', { name: 'Previous page' });
      const nextPage = browser.getByRole('button', { name: 'Next page' });
      expect(await textLines(prevPage)).toBe(1);
      expect(await textLines(nextPage)).toBe(1);
      expect(Math.abs((await box(prevPage)).y - (await box(nextPage)).y)).toBeLessThan(2);
      if (size.width === 1024) await snap(page, 'evals-1024');
    }
    expect(failed).toEqual([]);
  });

  test('Chat: the header on one line and the whole model name in the select', async ({ page, appUrl, server }) => {
    test.setTimeout(90_000);
    const failed = watchErrors(page);
    const model = (await invoke(server, 'models-import', { path: tiny, name: 'gpt2-tiny' })) as { key: string };
    for (const size of WIDTHS) {
      await page.setViewportSize(size);
      await page.goto(`${appUrl}#/chat?model=${encodeURIComponent(model.key)}`);
      const picker = page.getByLabel('Model', { exact: true });
      await expect(picker).toHaveValue(model.key);
      const head = page.locator('.chat-main-head');
      const title = head.getByTestId('chat-title');
      const label = head.getByTestId('chat-model-label');
      const pill = head.locator('.pill');
      await expect(label).toHaveText('gpt2-tiny (imported)');
      // one line: the title, the model and the pill share a row
      const [t, l, p] = [await box(title), await box(label), await box(pill)];
      expect(Math.abs(t.y + t.height / 2 - (l.y + l.height / 2))).toBeLessThan(4);
      expect(Math.abs(t.y + t.height / 2 - (p.y + p.height / 2))).toBeLessThan(4);
      expect(await textLines(title)).toBe(1);
      // the select shows its whole text; the size and val loss are below it
      const fit = await selectTextFits(picker);
      expect(fit, `"${fit.text}" needs ${fit.need} px, the select has ${fit.room}`).toMatchObject({ fits: true });
      await expect(page.getByTestId('model-picker-detail')).toHaveText(/params/);
      if (size.width === 1024) await snap(page, 'chat-1024');
    }
    expect(failed).toEqual([]);
  });

  test('navigating between pages does not log the event streams the page closes', async ({ page }) => {
    test.setTimeout(60_000);
    const dir = mkdtempSync(path.join(tmpdir(), 'gpt2-e2e-log-'));
    const logs: string[] = [];
    const server = await startServer({
      home: resolveHome({ flag: path.join(dir, 'home'), env: {} }),
      host: '127.0.0.1',
      port: 0,
      rendererDir,
      log: (line) => logs.push(line),
    });
    try {
      await page.goto(server.openUrl + '#/runs');
      await expect(page.getByRole('heading', { level: 1, name: 'Runs' })).toBeVisible();
      for (const p of ['chat', 'evals', 'runs', 'settings', 'checkpoints', 'runs']) {
        await page.goto(server.url + `#/${p}`);
        await page.waitForTimeout(200);
        // a full load too: the browser drops the old page's stream
        await page.reload();
        await page.waitForTimeout(200);
      }
      await page.goto('about:blank');
      await page.waitForTimeout(500);
      expect(logs).toEqual([]);
    } finally {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
