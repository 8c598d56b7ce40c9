/**
 * The engines as Settings lists them, native-webgpu among them with its adapter, and the engine picker of the New
 * run page, at 1024 and 1440 px.
 */
import { expect, snap, test, watchErrors } from './fixtures';

test('Settings lists native-webgpu with its adapter, backend, limits and parity; New run offers it', async ({
  page,
  appUrl,
}) => {
  test.setTimeout(120_000);
  const errors = watchErrors(page);
  await page.setViewportSize({ width: 1024, height: 800 });
  await page.goto(appUrl + '#/settings');
  const row = page.locator('tr[data-engine="native-webgpu"]');
  await expect(row).toBeVisible({ timeout: 90_000 });
  // on a machine with an adapter (CI installs lavapipe) it says which; elsewhere it says why not
  const available = (await row.locator('.pill').textContent()) === 'Available';
  if (available) {
    await expect(row).toContainText(/\((Vulkan|Metal|D3D12)(, software)?\)/);
    await expect(row).toContainText(/limits: \d+ MiB per binding/);
    await expect(row).toContainText(/parity: pass/);
  } else {
    await expect(row).toContainText(/native-webgpu engine is not available/);
  }
  await snap(page, 'settings-engines-1024');
  await page.setViewportSize({ width: 1440, height: 900 });
  await snap(page, 'settings-engines-1440');

  await page.goto(appUrl + '#/new-run');
  for (const summary of await page.locator('details.form-section:not([open]) > summary').all()) await summary.click();
  const engine = page.getByRole('combobox', { name: /^Engine/ });
  await expect(engine.locator('option[value="native-webgpu"]')).toHaveText(/native-webgpu/);
  expect(errors).toEqual([]);
});
