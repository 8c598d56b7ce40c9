/**
 * The Evals page with the real tiny GPT-2 (imported through models-import) and real HellaSwag examples, prepared
 * through the page from a loopback server: a run with progress and its result against the reference points, the
 * per-example browser (keys, wrong only, paging), cancel, a link to an eval, and the token-loss view.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, invoke, snap, test, watchErrors } from './fixtures';

const repo = fileURLToPath(new URL('..', import.meta.url));
const shared = path.resolve(process.env.GPT2_STUDIO_SHARED ?? path.resolve(repo, '..', 'shared'));
const tiny = path.join(shared, 'fixtures', 'gpt2-tiny');
const dataFile = path.join(shared, 'data', 'hellaswag_val_1000.jsonl');

interface Line {
  ind: number;
  ctx: string;
  endings: string[];
  label: number;
}
interface Expected {
  ind: number;
  label: number;
  pred: number;
  pred_norm: number;
}

const lines: Line[] = readFileSync(dataFile, 'utf8')
  .split('\n')
  .filter(Boolean)
  .map((l) => JSON.parse(l) as Line);
/** the reference scores of the first 40 lines (fixtures/gpt2-tiny/expected.json) */
const expected = (
  JSON.parse(readFileSync(path.join(tiny, 'expected.json'), 'utf8')) as { hellaswag: { examples: Expected[] } }
).hellaswag.examples;
const N = 20;
const first = expected.slice(0, N);
const correctNorm = first.filter((e) => e.pred_norm === e.label).length;
const correct = first.filter((e) => e.pred === e.label).length;
const wrong = N - correctNorm;
/** the examples in the order the browser shows them (by HellaSwag ind) */
const byInd = [...first].sort((a, b) => a.ind - b.ind);

/** A loopback server with the HellaSwag file at /hellaswag_val.jsonl (and nothing else). */
async function serveHellaswag(): Promise<{ url: string; hits: () => number; close: () => Promise<void> }> {
  const body = readFileSync(dataFile);
  let hits = 0;
  const server = http.createServer((req, res) => {
    if (req.url === '/hellaswag_val.jsonl') {
      hits++;
      res.writeHead(200, { 'Content-Type': 'application/x-ndjson', 'Content-Length': body.length });
      res.end(body);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/hellaswag_val.jsonl`,
    hits: () => hits,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function importTiny(server: Parameters<typeof invoke>[0]): Promise<string> {
  const m = (await invoke(server, 'models-import', { path: tiny, name: 'gpt2-tiny' })) as {
    key: string;
    label: string;
  };
  expect(m.key).toBe('model:gpt2-tiny');
  return m.key;
}

test.describe('evals', () => {
  test('prepare HellaSwag, run it on 20 examples, browse them, cancel a full run, score a text', async ({
    page,
    appUrl,
    server,
  }) => {
    test.setTimeout(180_000);
    const failed = watchErrors(page);
    const mirror = await serveHellaswag();
    try {
      const key = await importTiny(server);
      await page.goto(`${appUrl}#/evals?model=${encodeURIComponent(key)}`);
      await expect(page.getByRole('heading', { level: 1, name: 'Evals' })).toBeVisible();
      await expect(page.getByRole('tab', { name: 'HellaSwag' })).toHaveAttribute('aria-selected', 'true');
      await expect(page.getByLabel('Model', { exact: true })).toHaveValue(key);

      // no data yet: the page says so, and Run waits for it
      const run = page.getByRole('button', { name: 'Run HellaSwag' });
      await expect(page.getByRole('heading', { name: 'HellaSwag data needed' })).toBeVisible();
      await expect(run).toBeDisabled();
      await expect(page.getByText('Prepare the HellaSwag data first.')).toBeVisible();
      await expect(page.getByRole('row', { name: /GPT-2 124M/ })).toContainText('29.6%');

      // prepare it from the mirror (the loopback server)
      await page.getByText('Download from a mirror').click();
      await page.getByLabel('hellaswag_val.jsonl URL').fill(mirror.url);
      await page.getByRole('button', { name: 'Prepare HellaSwag data' }).click();
      await expect(page.getByTestId('hellaswag-data')).toContainText('HellaSwag data: 1,000 validation examples', {
        timeout: 60_000,
      });
      expect(mirror.hits()).toBe(1);
      await expect(run).toBeEnabled();

      // a bad limit is refused with the reason
      const limit = page.getByLabel('Examples', { exact: true });
      await limit.fill('0');
      await expect(page.getByText('“0” is not a number of examples')).toBeVisible();
      await expect(run).toBeDisabled();

      // 20 examples, started from the keyboard (Enter in the form)
      await limit.fill(String(N));
      await limit.press('Enter');
      const results = page.getByRole('table', { name: 'HellaSwag results' });
      const row = results.locator('tr[data-eval-id]').first();
      await expect(row).toHaveAttribute('data-status', 'done', { timeout: 60_000 });
      await expect(row.getByRole('rowheader')).toHaveText('gpt2-tiny');
      // accuracies read as percents with one decimal (N = 20: every value is exact)
      await expect(row).toContainText(`${((correct / N) * 100).toFixed(1)}%`);
      await expect(row).toContainText(`${((correctNorm / N) * 100).toFixed(1)}%`);
      await expect(row.locator('td').first()).toHaveText(String(N));
      // the reference points sit in the same table
      await expect(results.getByRole('row', { name: /^GPT-2 124M/ })).toContainText('29.6%');
      await expect(results.getByRole('row', { name: /^GPT-3 124M/ })).toContainText('33.7%');
      await expect(results.getByRole('row', { name: /^Random/ })).toContainText('25.0%');

      // the new eval is selected: its summary and examples
      const summary = page.getByTestId('eval-summary');
      await expect(summary).toContainText(`${correctNorm}/${N}`);
      await expect(summary.getByRole('figure')).toContainText('GPT-2 124M 29.6%');
      const browser = page.getByTestId('example-browser');
      const range = browser.getByTestId('examples-range');
      const detail = browser.getByTestId('example-detail');
      await expect(range).toHaveText(`1–${N} of ${N}`);
      const showsExample = async (i: number) => {
        const e = byInd[i]!;
        const line = lines.find((l) => l.ind === e.ind)!;
        await expect(detail.getByRole('heading')).toContainText(`Example ${i + 1} of`);
        await expect(detail.getByRole('heading')).toContainText(`#${e.ind}`);
        await expect(detail.getByLabel('Context')).toHaveText(line.ctx);
        const label = detail.locator(`tr[data-ending="${e.label}"]`);
        await expect(label).toContainText(line.endings[e.label]!);
        await expect(label.locator('.tag', { hasText: 'Label' })).toBeVisible();
        await expect(
          detail.locator(`tr[data-ending="${e.pred_norm}"]`).locator('.tag', { hasText: 'Predicted' }),
        ).toBeVisible();
        await expect(detail.getByTestId('example-verdict')).toHaveText(e.pred_norm === e.label ? 'Right' : 'Wrong');
      };
      await showsExample(0);
      await snap(page, 'evals');

      // keys: j / k and the arrows move between examples
      await detail.focus();
      await page.keyboard.press('j');
      await showsExample(1);
      await page.keyboard.press('ArrowDown');
      await showsExample(2);
      await page.keyboard.press('k');
      await showsExample(1);
      await browser.getByRole('button', { name: 'Next', exact: true }).click();
      await showsExample(2);

      // only the wrong ones, ten a page
      await browser.getByLabel('Wrong only').check();
      await expect(range).toHaveText(`1–${wrong} of ${wrong}`);
      await expect(browser.locator('.hs-example-item.is-right')).toHaveCount(0);
      await expect(browser.locator('.hs-example-item.is-wrong')).toHaveCount(wrong);
      await expect(detail.getByTestId('example-verdict')).toHaveText('Wrong');
      await browser.getByLabel('Per page').selectOption('10');
      await expect(range).toHaveText(`1–10 of ${wrong}`);
      await snap(page, 'evals-examples');
      await browser.getByRole('button', { name: 'Next page' }).click();
      await expect(range).toHaveText(`11–${wrong} of ${wrong}`);
      const wrongInds = byInd.filter((e) => e.pred_norm !== e.label).map((e) => e.ind);
      await expect(detail.getByRole('heading')).toContainText(`Example 11 of ${wrong} · HellaSwag #${wrongInds[10]}`);
      // moving back across the page edge lands on the previous page's last example
      await detail.focus();
      await page.keyboard.press('k');
      await expect(range).toHaveText(`1–10 of ${wrong}`);
      await expect(detail.getByRole('heading')).toContainText(`Example 10 of ${wrong} · HellaSwag #${wrongInds[9]}`);

      // every example (1,000): progress with the running acc_norm, the rate and the time left; then cancel
      await limit.fill('');
      await run.click();
      const progress = page.getByTestId('eval-progress');
      await expect(progress.getByTestId('eval-progress-text')).toContainText(
        /\d+ \/ 1,000 examples · acc_norm so far \d+\.\d% · [\d.]+ examples\/s · .* left/,
        { timeout: 60_000 },
      );
      await expect(progress.getByRole('progressbar')).toHaveAttribute('aria-valuemax', '1000');
      await progress.getByRole('button', { name: 'Cancel' }).click();
      const cancelled = results.locator('tr[data-eval-id]').first();
      await expect(cancelled).toHaveAttribute('data-status', 'cancelled');
      await expect(cancelled.getByText('Cancelled')).toBeVisible();
      await expect(progress).toHaveCount(0);
      await expect(results.locator('tr[data-eval-id]')).toHaveCount(2);

      // the token-loss view, with the model already chosen
      await page.getByRole('tab', { name: 'HellaSwag' }).focus();
      await page.keyboard.press('ArrowRight');
      await expect(page.getByRole('tab', { name: 'Token loss' })).toHaveAttribute('aria-selected', 'true');
      await expect(page.getByLabel('Model', { exact: true })).toHaveValue(key);
      const text = 'The quick brown fox jumps over the lazy dog, and then it sleeps in the warm afternoon sun.';
      await page.getByLabel('Text', { exact: true }).fill(text);
      await page.getByLabel('Text', { exact: true }).press('Control+Enter');
      const view = page.getByTestId('token-view');
      const tokens = view.locator('.tl-token');
      await expect(tokens.first()).toBeVisible({ timeout: 30_000 });
      const n = await tokens.count();
      expect(n).toBeGreaterThan(15);
      expect((await tokens.allTextContents()).join('')).toBe(text);
      await expect(tokens.first()).toHaveAttribute('aria-label', /the first token, not predicted/);
      await expect(tokens.nth(1)).toHaveAttribute('title', /token 2 “␣quick”: loss \d+\.\d{3} nats, probability/);
      // every predicted token has a colour class that matches its loss
      for (let i = 1; i < n; i++) {
        const loss = Number(await tokens.nth(i).getAttribute('data-loss'));
        const cls = (await tokens.nth(i).getAttribute('class')) ?? '';
        const want = [1, 2, 4, 6, 8].findIndex((edge) => loss < edge);
        expect(cls).toContain(`tl-c${want < 0 ? 5 : want}`);
      }
      const mean = Number((await page.getByTestId('mean-loss').textContent())?.replace(/[^\d.]/g, ''));
      const ppl = Number((await page.getByTestId('perplexity').textContent())?.replace(/[^\d.]/g, ''));
      expect(mean).toBeGreaterThan(0);
      expect(Math.abs(ppl - Math.exp(mean)) / Math.exp(mean)).toBeLessThan(0.01);
      await expect(page.getByRole('table', { name: 'Most surprising tokens' }).locator('tbody tr')).toHaveCount(10);
      await expect(page.getByTestId('token-loss-truncated')).toHaveCount(0);
      // the value on keyboard focus
      await tokens.nth(1).focus();
      await page.keyboard.press('ArrowRight');
      await expect(tokens.nth(2)).toBeFocused();
      await expect(page.getByTestId('token-readout')).toContainText(/^token 3 “␣brown”: loss \d+\.\d{3} nats/);
      await snap(page, 'evals-token-loss');

      // dark theme, on the example browser
      await page.getByRole('tab', { name: 'HellaSwag' }).click();
      await page.getByRole('button', { name: 'Switch to dark theme' }).click();
      await expect(page.locator('html')).toHaveAttribute('data-theme', 'dark');
      await results
        .locator('tr[data-status="done"]')
        .getByRole('button', { name: /^Examples of gpt2-tiny/ })
        .click();
      await expect(page.getByTestId('example-browser')).toBeVisible();
      await snap(page, 'evals-dark');

      expect(failed, 'no page errors and no console errors').toEqual([]);
    } finally {
      await mirror.close();
    }
  });

  test('a link opens an eval; a long text is cut to the context; deleting an eval asks first', async ({
    page,
    appUrl,
    server,
  }) => {
    test.setTimeout(120_000);
    const failed = watchErrors(page);
    await importTiny(server);
    const ev = (await invoke(server, 'evals-hellaswag', {
      target: { modelId: 'gpt2-tiny' },
      data: dataFile,
      limit: 5,
    })) as { id: string };
    for (;;) {
      const got = (await invoke(server, 'evals-get', { id: ev.id })) as { status: string };
      if (got.status !== 'running') {
        expect(got.status).toBe('done');
        break;
      }
      await new Promise((r) => setTimeout(r, 200));
    }

    await page.goto(`${appUrl}#/evals?eval=${ev.id}`);
    await expect(page.getByTestId('example-browser')).toBeVisible();
    await expect(page.getByTestId('examples-range')).toHaveText('1–5 of 5');
    // the eval's model is chosen for the next run
    await expect(page.getByLabel('Model', { exact: true })).toHaveValue('model:gpt2-tiny');
    await expect(page.locator(`tr[data-eval-id="${ev.id}"]`)).toHaveAttribute('aria-selected', 'true');

    // the token-loss view of a text longer than the model's 128 positions
    await page.getByRole('tab', { name: 'Token loss' }).click();
    const long = Array.from({ length: 50 }, (_, i) => `Line ${i} of a long text.`).join('\n');
    await page.getByLabel('Text', { exact: true }).fill(long);
    await page.getByRole('button', { name: 'Score' }).click();
    await expect(page.getByTestId('token-loss-truncated')).toContainText(
      /The text has [\d,]+ tokens; the model's context is 128, so only the first 129 were scored\./,
    );
    await expect(page.getByTestId('token-view').locator('.tl-token')).toHaveCount(129);

    // delete, after a confirmation
    await page.getByRole('tab', { name: 'HellaSwag' }).click();
    await page.getByRole('button', { name: /^Delete the evaluation of gpt2-tiny/ }).click();
    const dialog = page.getByRole('dialog', { name: 'Delete this evaluation?' });
    await expect(dialog).toBeVisible();
    await dialog.getByRole('button', { name: 'Delete' }).click();
    await expect(page.locator(`tr[data-eval-id="${ev.id}"]`)).toHaveCount(0);
    await expect(page.getByTestId('example-browser')).toHaveCount(0);
    expect(await invoke(server, 'evals-list', { kind: 'hellaswag' })).toEqual([]);
    expect(failed, 'no page errors and no console errors').toEqual([]);
  });
});
