import { PAGES } from '../src/renderer/pages';
import { expect, snap, test } from './fixtures';

test.describe('serve mode', () => {
  test('opens, reaches Settings with the keyboard, shows the workspace and engines, and switches theme', async ({
    page,
    appUrl,
    workspace,
  }) => {
    const failed: string[] = [];
    page.on('pageerror', (e) => failed.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') failed.push(m.text());
    });

    await page.goto(appUrl);
    await expect(page.getByRole('heading', { level: 1, name: 'Runs' })).toBeVisible();
    await expect(page.getByRole('heading', { name: 'No runs yet' })).toBeVisible();
    await snap(page, 'runs');

    // Tab through the page until the Settings link has focus, then follow it with Enter.
    const settingsLink = page.getByRole('navigation', { name: 'Pages' }).getByRole('link', { name: 'Settings' });
    // (string expressions: this file is type-checked without the DOM library)
    const focusedHref = () => page.evaluate<string | null>('document.activeElement?.getAttribute("href") ?? null');
    for (let i = 0; i < 20 && (await focusedHref()) !== '#/settings'; i++) {
      await page.keyboard.press('Tab');
    }
    await expect(settingsLink).toBeFocused();
    await page.keyboard.press('Enter');

    await expect(page).toHaveURL(/#\/settings$/);
    await expect(page.getByRole('heading', { level: 1, name: 'Settings' })).toBeVisible();
    await expect(settingsLink).toHaveAttribute('aria-current', 'page');
    await expect(page.getByTestId('workspace-path')).toHaveText(workspace);

    const engines = page.getByRole('table', { name: 'Engines' });
    const tfjs = engines.getByRole('row').filter({ has: page.getByRole('rowheader', { name: 'tfjs' }) });
    await expect(tfjs).toHaveCount(1);
    await expect(tfjs.getByText(/^(Available|Unavailable)$/)).toBeVisible();
    await expect(engines.getByRole('rowheader')).not.toHaveCount(0);
    await snap(page, 'settings-light');

    // Theme: starts light (Chromium's default scheme), switches to dark, and stays dark after a reload.
    const html = page.locator('html');
    await expect(html).toHaveAttribute('data-theme', 'light');
    const bodyBackground = () => page.evaluate<string>('getComputedStyle(document.body).backgroundColor');
    const lightBg = await bodyBackground();
    await page.getByRole('button', { name: 'Switch to dark theme' }).click();
    await expect(html).toHaveAttribute('data-theme', 'dark');
    const darkBg = await bodyBackground();
    expect(darkBg).not.toBe(lightBg);
    await expect(tfjs).toHaveCount(1);
    await snap(page, 'settings-dark');

    await page.reload();
    await expect(html).toHaveAttribute('data-theme', 'dark');
    await page.getByRole('button', { name: 'Switch to light theme' }).click();
    await expect(html).toHaveAttribute('data-theme', 'light');

    expect(failed, 'no page errors and no console errors (a CSP violation is one)').toEqual([]);
  });

  test('every page of the navigation opens, with what a fresh workspace shows', async ({ page, appUrl }) => {
    await page.goto(appUrl);
    const nav = page.getByRole('navigation', { name: 'Pages' });
    // what each built page shows in a fresh workspace
    const built: Record<(typeof PAGES)[number]['id'], () => Promise<void>> = {
      runs: () => expect(page.getByRole('heading', { name: 'No runs yet' })).toBeVisible(),
      'new-run': () => expect(page.getByRole('heading', { name: 'Plan' })).toBeVisible(),
      settings: () => expect(page.getByRole('table', { name: 'Engines' })).toBeVisible(),
      compare: () => expect(page.getByRole('heading', { name: 'No runs to compare yet' })).toBeVisible(),
      checkpoints: () => expect(page.getByRole('heading', { name: 'No checkpoints yet' })).toBeVisible(),
      chat: () => expect(page.getByRole('heading', { name: 'No models to chat with' })).toBeVisible(),
      datasets: () => expect(page.getByRole('heading', { name: 'No datasets yet' })).toBeVisible(),
      evals: () => expect(page.getByRole('heading', { name: 'Run HellaSwag' })).toBeVisible(),
    };
    for (const p of PAGES) {
      await nav.getByRole('link', { name: p.title, exact: true }).click();
      await expect(page).toHaveURL(new RegExp(`#/${p.id}$`));
      await expect(page.getByRole('heading', { level: 1, name: p.title, exact: true })).toBeVisible();
      // after a navigation, focus is on the new page's heading (Runs is where the app opens: no navigation)
      if (p.id !== 'runs')
        await expect(page.getByRole('heading', { level: 1, name: p.title, exact: true })).toBeFocused();
      await built[p.id]();
      // the page-runs and page-new-run screenshots are taken with a run in runs.spec.ts
      if (p.id !== 'runs' && p.id !== 'new-run') await snap(page, `page-${p.id}`);
    }
  });

  test('an unknown run shows that it is not there', async ({ page, appUrl }) => {
    await page.goto(appUrl + '#/run/run-nope');
    await expect(page.getByRole('heading', { level: 1, name: 'Run not found' })).toBeVisible();
    await page.getByRole('link', { name: 'Back to the runs' }).click();
    await expect(page).toHaveURL(/#\/runs$/);
  });

  test('Settings keeps the Hugging Face endpoint and token, and never shows the token', async ({
    page,
    appUrl,
    workspace,
  }) => {
    await page.goto(appUrl + '#/settings');
    await page.getByTestId('hf-endpoint').fill('not a url');
    await page.getByRole('button', { name: 'Save' }).click();
    await expect(page.getByRole('status').filter({ hasText: 'is not a URL' })).toBeVisible();
    await page.getByTestId('hf-endpoint').fill('https://hf-mirror.com');
    await page.getByTestId('hf-token').fill('hf_e2e_secret');
    await page.getByRole('button', { name: 'Save' }).click();
    await expect(page.getByText('Token (set)')).toBeVisible();
    await expect(page.getByTestId('hf-token')).toHaveValue('');
    await snap(page, 'settings-hub');
    await page.reload();
    await expect(page.getByTestId('hf-endpoint')).toHaveValue('https://hf-mirror.com');
    await expect(page.locator('body')).not.toContainText('hf_e2e_secret');
    await page.getByRole('button', { name: 'Forget the token' }).click();
    await expect(page.getByText('Token (not set)')).toBeVisible();
    expect(workspace.length).toBeGreaterThan(0);
  });
});

test.describe('serve mode with a token', () => {
  test.use({ token: 'e2e-secret-token-42' });

  test('the token from the URL becomes an HttpOnly cookie, authorises requests and leaves the address bar', async ({
    page,
    appUrl,
    server,
    workspace,
  }) => {
    expect(appUrl).toContain('?token=e2e-secret-token-42');
    await page.goto(appUrl + '#/settings');
    await expect(page.getByTestId('workspace-path')).toHaveText(workspace);
    await expect(page).not.toHaveURL(/token=/);
    await expect(page).toHaveURL(/#\/settings$/);

    // the page holds a cookie that script cannot read, and not the token itself
    const cookies = await page.context().cookies(server.url);
    expect(cookies).toHaveLength(1);
    expect(cookies[0]).toMatchObject({ httpOnly: true, sameSite: 'Strict' });
    expect(cookies[0]!.value).not.toContain('e2e-secret-token-42');
    expect(await page.evaluate<string>('document.cookie')).toBe('');
    expect(
      await page.evaluate<string>('JSON.stringify(Object.assign({}, sessionStorage, localStorage))'),
    ).not.toContain('e2e-secret-token-42');

    // with the cookie (the page's own request context shares it) the API answers; without it, it refuses
    const api = new URL('/api/invoke/app-info', server.url).href;
    expect((await page.request.post(api, { data: {} })).status()).toBe(200);
    const bare = await fetch(api, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' });
    expect(bare.status).toBe(401);
  });

  test('without the token, Settings shows the error and its hint', async ({ page, server }) => {
    await page.goto(server.url + '#/settings');
    await expect(page.getByRole('alert').first()).toContainText('Missing or wrong token');
    await expect(page.getByRole('alert').first()).toContainText('?token=');
    await snap(page, 'settings-no-token');
  });
});
