/**
 * Run-end notifications in serve mode: the user turns them on in Settings (the browser's permission is granted by
 * the test); while a short run trains, the Runs badge and the window title count it; when it is done a notification
 * and a toast say so; a second run started meanwhile is counted again, and stopping it says so too. Headless
 * Chromium shows no real notifications, so an init script records every Notification the page constructs.
 */
import type { Page } from '@playwright/test';
import { expect, invoke, prepareBuiltin, snap, test, watchErrors } from './fixtures';

/** A tiny model: a step takes milliseconds on the CPU. */
const config = (maxSteps: number) => ({
  model: { n_layer: 2, n_head: 2, n_embd: 64, block_size: 128 },
  dataset: 'builtin',
  total_batch_size: 1024,
  batch_size: 8,
  seq_len: 128,
  max_steps: maxSteps,
  warmup_steps: 1,
  eval_interval: 0,
  eval_iters: 1,
  hellaswag_interval: 0,
  sample_interval: 0,
  checkpoint_interval: 0,
});

interface Recorded {
  title: string;
  body: string;
}

/**
 * An init script (page-side JavaScript): wraps window.Notification so that every notification the page constructs
 * is pushed, title and body, to window.__notes, then made as usual.
 */
const RECORD_NOTIFICATIONS = `
  window.__notes = [];
  const Real = window.Notification;
  class Recording extends Real {
    constructor(title, options) {
      window.__notes.push({ title, body: (options && options.body) || '' });
      super(title, options);
    }
  }
  Object.defineProperty(Recording, 'permission', { get: () => Real.permission });
  Object.defineProperty(Recording, 'requestPermission', { value: (...a) => Real.requestPermission(...a) });
  window.Notification = Recording;
`;

const recorded = (page: Page) => page.evaluate('window.__notes') as Promise<Recorded[]>;

test.describe('run-end notifications', () => {
  test('opt in, a run finishes: a notification and a toast say done; the badge and the title count active runs', async ({
    page,
    appUrl,
    server,
  }) => {
    test.setTimeout(420_000);
    const failed = watchErrors(page);
    await page.context().grantPermissions(['notifications'], { origin: new URL(appUrl).origin });
    // every Notification the page makes, recorded (title and body) before the real one is made
    await page.addInitScript(RECORD_NOTIFICATIONS);
    await prepareBuiltin(server);

    // opt in (off by default in a browser)
    await page.goto(appUrl + '#/settings');
    const toggle = page.getByRole('switch', { name: 'Notify me when a run ends' });
    await expect(toggle).not.toBeChecked();
    await toggle.check();
    await expect(page.getByTestId('notify-state')).toHaveText('This browser shows the notifications.');
    // kept across a reload
    await page.reload();
    await expect(page.getByRole('switch', { name: 'Notify me when a run ends' })).toBeChecked();

    await page.goto(appUrl + '#/runs');
    await expect(page.getByRole('heading', { level: 1, name: 'Runs' })).toBeVisible();
    const badge = page.getByTestId('runs-badge');
    await expect(badge).toHaveCount(0);
    await expect(page).toHaveTitle('Runs · GPT-2 Studio');

    // during the run: the badge on Runs and the count in the title
    const short = (await invoke(server, 'runs-create', { config: config(4), name: 'short run' })) as { id: string };
    await expect(badge).toHaveText(/^1/);
    await expect(page.getByRole('link', { name: /Runs.*1 active run/ })).toBeVisible();
    await expect(page).toHaveTitle('(1) Runs · GPT-2 Studio');

    // it ends: a notification and a toast say done, with the final loss; nothing is active any more
    await expect
      .poll(() => recorded(page), { timeout: 240_000 })
      .toContainEqual({
        title: 'short run done',
        body: expect.stringMatching(/^Final loss \d+\.\d+$/) as unknown as string,
      });
    const toast = page.getByTestId('run-toasts').locator(`[data-run-id="${short.id}"]`);
    await expect(toast).toContainText('short run done');
    await expect(toast).toHaveAttribute('data-kind', 'done');
    await expect(badge).toHaveCount(0);
    await expect(page).toHaveTitle('Runs · GPT-2 Studio');

    // another run starts while the toast is up: the badge and the title count it
    const long = (await invoke(server, 'runs-create', { config: config(1_000_000), name: 'background' })) as {
      id: string;
    };
    await expect(badge).toHaveText(/^1/);
    await expect(page).toHaveTitle('(1) Runs · GPT-2 Studio');
    await expect(toast).toBeVisible();
    await snap(page, 'notification');

    // the toast opens the run; the title keeps the count on the run's page
    await toast.getByRole('button', { name: /^short run done/ }).click();
    await expect(page).toHaveURL(new RegExp(`#/run/${short.id}$`));
    await expect(page.getByRole('heading', { level: 1, name: 'short run' })).toBeVisible();
    await expect(page).toHaveTitle(/^\(1\) /);

    // stopping the other one: "stopped", and nothing active any more
    await invoke(server, 'runs-stop', { id: long.id });
    await expect
      .poll(() => recorded(page), { timeout: 120_000 })
      .toContainEqual({
        title: 'background stopped',
        body: expect.stringMatching(/^Stopped/) as unknown as string,
      });
    await expect(badge).toHaveCount(0);
    await expect(page).not.toHaveTitle(/^\(\d+\) /);
    expect(failed).toEqual([]);
  });

  test('without the opt-in a browser page shows no notification', async ({ page, appUrl, server }) => {
    test.setTimeout(300_000);
    await page.context().grantPermissions(['notifications'], { origin: new URL(appUrl).origin });
    await page.addInitScript(RECORD_NOTIFICATIONS);
    await prepareBuiltin(server);
    await page.goto(appUrl + '#/runs');
    const run = (await invoke(server, 'runs-create', { config: config(3), name: 'quiet run' })) as { id: string };
    await expect
      .poll(async () => ((await invoke(server, 'runs-get', { id: run.id })) as { status: string }).status, {
        timeout: 240_000,
      })
      .toBe('done');
    // the page learns the end from the event stream a moment later
    await page.waitForTimeout(1500);
    await expect(page.getByTestId('runs-badge')).toHaveCount(0);
    expect(await recorded(page)).toEqual([]);
    await expect(page.getByTestId('run-toasts').locator('.toast')).toHaveCount(0);
  });
});
