/**
 * Import GPT-2: weights picked by path (a folder with config.json, or a .safetensors file) are checked, copied
 * into the workspace and listed; malformed weights are refused with the file and the cause.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, invoke, snap, test } from './fixtures';

const repo = fileURLToPath(new URL('..', import.meta.url));
const shared = resolve(process.env.GPT2_STUDIO_SHARED ?? join(repo, '..', 'shared'));
const tiny = join(shared, 'fixtures', 'gpt2-tiny');

test.skip(!existsSync(join(tiny, 'model.safetensors')), `no fixture at ${tiny}`);

test('imports GPT-2 weights from Settings with the keyboard, lists them, and removes them', async ({
  page,
  appUrl,
  server,
  workspace,
}) => {
  await page.goto(appUrl + '#/settings');
  const card = page.getByRole('region', { name: 'Imported weights' });
  await expect(card.getByText('No imported weights yet.')).toBeVisible();

  await card.getByRole('button', { name: 'Import GPT-2 weights…' }).focus();
  await page.keyboard.press('Enter');
  const dialog = page.getByTestId('import-model-dialog');
  await expect(dialog).toBeVisible();
  // a malformed file: the error names it and says what to do
  await page.keyboard.type(join(shared, 'fixtures', 'bad-inputs', 'st_offsets_past_end.safetensors'));
  await page.keyboard.press('Enter');
  await expect(dialog.getByRole('alert')).toContainText('st_offsets_past_end.safetensors');
  // the file picker: go to the fixture's folder and pick its model.safetensors
  await dialog.getByRole('button', { name: 'Browse…' }).click();
  const picker = page.getByRole('dialog', { name: 'Choose GPT-2 weights' });
  await picker.getByLabel('Folder path').fill(tiny);
  await picker.getByLabel('Folder path').press('Enter');
  await picker.getByRole('option', { name: /model\.safetensors/ }).click();
  await snap(page, 'import-file-picker');
  await picker.getByRole('button', { name: 'Select', exact: true }).click();
  await expect(picker).toHaveCount(0);
  await expect(dialog.getByLabel('File or folder')).toHaveValue(join(tiny, 'model.safetensors'));
  await dialog.getByLabel('Name').fill('GPT-2 tiny');
  await snap(page, 'import-dialog');
  await page.keyboard.press('Enter');
  await expect(dialog.getByRole('status')).toContainText('2 layers, context 128');
  // the same weights cannot be imported twice by pressing Import again
  await expect(dialog.getByRole('button', { name: 'Imported' })).toBeDisabled();
  await dialog.getByRole('button', { name: 'Close' }).click();

  const row = card.getByRole('row').filter({ has: page.getByRole('rowheader', { name: 'GPT-2 tiny' }) });
  await expect(row).toContainText('1.6M');
  expect(existsSync(join(workspace, 'models', 'gpt-2-tiny', 'model.safetensors'))).toBe(true);
  await snap(page, 'settings-models');

  // it is now offered wherever a model is chosen
  const models = (await invoke(server, 'models-list')) as { key: string }[];
  expect(models.map((m) => m.key)).toEqual(['model:gpt-2-tiny']);
  await expect(row.getByRole('link', { name: 'Chat' })).toHaveAttribute('href', '#/chat?model=model%3Agpt-2-tiny');

  // New run offers it to fine-tune from: init_path becomes its folder in the workspace
  await page.goto(appUrl + '#/new-run');
  await page.getByLabel('Initialize from').selectOption('weights');
  await page.getByLabel('Start from a model of this workspace').selectOption('model:gpt-2-tiny');
  await expect(page.getByLabel('Weights or checkpoint path')).toHaveValue('models/gpt-2-tiny');
  await page.goto(appUrl + '#/settings');

  await row.getByRole('button', { name: /^Remove/ }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Remove' }).click();
  await expect(card.getByText('No imported weights yet.')).toBeVisible();
  expect(existsSync(join(workspace, 'models', 'gpt-2-tiny'))).toBe(false);
});
