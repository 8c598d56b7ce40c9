/**
 * The dataset preview, token by token: Tiny Shakespeare prepared from the shared fixture file, its preview drawn
 * in alternating bands, a token's id shown when it is pointed at or reached with the arrow keys. And the wizard's
 * input chooser, whose chosen segment stands apart in both themes.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Page } from '@playwright/test';
import { expect, invoke, screenshotDir, sharedDir, snap, test, watchErrors } from './fixtures';
import type { RunningServer } from '../src/node/serve/server';

const shakespearePath = path.join(sharedDir, 'data', 'tinyshakespeare.txt');
const present = existsSync(shakespearePath);

async function prepareShakespeare(server: RunningServer): Promise<void> {
  await invoke(server, 'datasets-prepare', { source: 'tinyshakespeare', file: shakespearePath, workers: 1 });
  const deadline = Date.now() + 90_000;
  for (;;) {
    const list = (await invoke(server, 'datasets-list')) as { id: string; status: string }[];
    if (list.some((d) => d.id === 'tinyshakespeare' && d.status === 'ready')) return;
    if (Date.now() > deadline)
      throw new Error(`tinyshakespeare was not ready within 90 s: datasets-list = ${JSON.stringify(list)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** A style of an element, read in the page (this file's own typecheck has no DOM). */
type Styled = { getComputedStyle(el: unknown): { backgroundColor: string; color: string } };
const BACKGROUND = (el: unknown): string => (globalThis as unknown as Styled).getComputedStyle(el).backgroundColor;
const COLOUR = (el: unknown): string => (globalThis as unknown as Styled).getComputedStyle(el).color;

/** The computed background of the chosen and of an unchosen input segment. */
async function segmentColours(page: Page): Promise<{ on: string; off: string; onText: string }> {
  const on = page.locator('.ds-origin-on');
  const off = page.locator('.ds-origin-item:not(.ds-origin-on)').first();
  return {
    on: await on.evaluate(BACKGROUND),
    onText: await on.evaluate(COLOUR),
    off: await off.evaluate(BACKGROUND),
  };
}

test.describe('dataset tokens', () => {
  test.skip(!present, `the Tiny Shakespeare fixture is absent (${shakespearePath})`);

  test('the preview shows token bands and a token id on hover', async ({ page, appUrl, server }) => {
    test.setTimeout(150_000);
    const failed = watchErrors(page);
    await prepareShakespeare(server);
    const preview = (await invoke(server, 'datasets-preview', { id: 'tinyshakespeare' })) as {
      ids: number[];
      pieces: string[];
    };

    await page.setViewportSize({ width: 1024, height: 700 });
    await page.goto(appUrl + '#/datasets');
    const row = page.locator('tr[data-dataset="tinyshakespeare"]');
    await expect(row).toHaveAttribute('data-status', 'ready');
    await row.getByRole('button', { name: 'Preview tinyshakespeare' }).click();
    const dialog = page.getByTestId('dataset-preview');
    const text = dialog.getByTestId('preview-text');
    await expect(text).toBeVisible();
    await expect(dialog).toContainText('Alternating bands mark the tokens');

    // one band a token (Shakespeare is ASCII: no token shares a band), in alternating colours
    const bands = text.locator('.ds-tok');
    await expect(bands).toHaveCount(preview.ids.length);
    const bg = (i: number) => bands.nth(i).evaluate(BACKGROUND);
    expect(await bg(0)).not.toBe(await bg(1));
    expect(await bg(0)).toBe(await bg(2));

    // pointing at a word's token shows its id, in the readout and the tooltip
    const at = preview.pieces.findIndex((p, i) => i > 5 && /^ [A-Za-z]{3,}$/.test(p));
    expect(at).toBeGreaterThan(0);
    const band = bands.nth(at);
    await band.hover();
    const readout = dialog.getByTestId('token-readout');
    await expect(readout).toContainText(`token ${at + 1}: id ${preview.ids[at]} “␣${preview.pieces[at]!.slice(1)}”`);
    await expect(band).toHaveClass(/is-active/);
    await expect(band).toHaveAttribute('title', new RegExp(`id ${preview.ids[at]}\\b`));
    await expect(band).toHaveAttribute('data-token-id', String(preview.ids[at]));
    await snap(page, 'datasets-tokens');

    // the arrow keys move to the next token
    await text.focus();
    await page.keyboard.press('ArrowRight');
    await expect(readout).toContainText(`token ${at + 2}: id ${preview.ids[at + 1]}`);

    await page.setViewportSize({ width: 1440, height: 900 });
    await expect(text).toBeVisible();
    await snap(page, 'datasets-tokens-1440');
    expect(failed).toEqual([]);
  });

  test('the chosen input segment of the wizard stands apart, in both themes', async ({ page, appUrl }) => {
    await page.setViewportSize({ width: 1024, height: 700 });
    await page.goto(appUrl + '#/datasets');
    await expect(page.getByRole('radio', { name: 'Download', exact: true })).toBeChecked();
    const light = await segmentColours(page);
    expect(light.on).not.toBe(light.off);
    expect(light.onText).not.toBe('rgb(95, 103, 120)');
    await page.locator('.ds-origin').screenshot({ path: path.join(screenshotDir, 'datasets-origin-light.png') });

    await page.getByRole('button', { name: 'Switch to dark theme' }).click();
    await expect(page.locator('html')).toHaveAttribute('data-theme', 'dark');
    const dark = await segmentColours(page);
    expect(dark.on).not.toBe(dark.off);
    expect(dark.on).not.toBe(light.on);
    await page.locator('.ds-origin').screenshot({ path: path.join(screenshotDir, 'datasets-origin-dark.png') });
  });
});
