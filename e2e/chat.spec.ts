/**
 * Chat with the real tiny model (the gpt2-tiny fixture, imported into the test's workspace): pick the model, send
 * from the keyboard, watch the answer stream with its rate, stop a long answer (button and Escape), find the
 * conversation again after a reload, change its sampling settings, rename and delete it; the empty page; a link
 * with ?model=; and a model that fails to load.
 */
import { existsSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunningServer } from '../src/node/serve/server';
import { expect, invoke, snap, test, watchErrors } from './fixtures';

const repo = fileURLToPath(new URL('..', import.meta.url));
const shared = resolve(process.env.GPT2_STUDIO_SHARED ?? join(repo, '..', 'shared'));
const tiny = join(shared, 'fixtures', 'gpt2-tiny');

interface Decoder {
  decodeStep: (...args: unknown[]) => Promise<unknown>;
}

/**
 * The tiny model writes a whole answer in a fraction of a second, too fast to look at it streaming or to press
 * Stop in time. This holds the next answer after its first token: the loaded model's next decode step waits until
 * the service has received generate-stop (then the answer ends as "stop"), or until release() is called. The
 * server runs in this process (e2e/fixtures.ts), so the hold is set on its Studio object.
 */
function holdNextAnswer(server: RunningServer): { release: () => void } {
  const studio = server.studio as unknown as {
    generation: { cached: { model: Decoder } | null; stop: (a: { genId: string }) => { stopped: boolean } };
    on: RunningServer['studio']['on'];
  };
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  const restore: (() => void)[] = [];
  const release = () => {
    open();
    for (const f of restore.splice(0)) f();
  };
  // a stop (the Stop button's generate-stop) lets the held answer end
  const generation = studio.generation;
  const stop = generation.stop;
  generation.stop = (a) => {
    const r = stop.call(generation, a);
    release();
    return r;
  };
  restore.push(() => {
    generation.stop = stop;
  });
  const off = studio.on('generate-token', () => {
    off();
    const model = studio.generation.cached?.model;
    if (!model) throw new Error('the generation service has no loaded model (its internals changed?)');
    const decode = model.decodeStep;
    model.decodeStep = async (...args: unknown[]) => {
      await gate;
      return decode.apply(model, args);
    };
    restore.push(() => {
      model.decodeStep = decode;
    });
  });
  restore.push(off);
  return { release };
}

async function importTiny(server: RunningServer): Promise<{ key: string; label: string }> {
  return (await invoke(server, 'models-import', { path: tiny })) as { key: string; label: string };
}

interface StoredMessage {
  role: string;
  content: string;
  reason?: string | null;
  tokens?: number | null;
}

test.describe('chat', () => {
  test.skip(!existsSync(join(tiny, 'model.safetensors')), `no fixture at ${tiny}`);

  test('chats with the tiny model: send from the keyboard, stream, stop, reload, settings, rename, delete', async ({
    page,
    appUrl,
    server,
    context,
  }) => {
    test.setTimeout(120_000);
    const failed = watchErrors(page);
    await context.grantPermissions(['clipboard-read', 'clipboard-write']);
    const model = await importTiny(server);

    await page.goto(appUrl + '#/chat');
    await expect(page.getByRole('heading', { level: 1, name: 'Chat' })).toBeVisible();
    await expect(page.getByRole('heading', { name: 'New conversation' })).toBeVisible();
    await expect(page.getByText('No conversations yet. Your first message starts one.')).toBeVisible();

    // pick the model; the page says which template it follows
    const picker = page.getByLabel('Model', { exact: true });
    await picker.selectOption(model.key);
    await expect(picker).toHaveValue(model.key);
    await expect(page.getByTestId('template-note')).toContainText('Base model.');
    // the defaults
    const settings = page.getByRole('complementary', { name: 'Model and sampling' });
    await expect(settings.getByLabel('Temperature')).toHaveValue('0.8');
    await expect(settings.getByLabel('Top-k')).toHaveValue('50');
    await expect(settings.getByLabel('Top-p')).toHaveValue('0.95');
    await expect(settings.getByLabel('Max tokens')).toHaveValue('128');
    await expect(settings.getByLabel('Seed')).toHaveValue('42');

    // send from the keyboard: Shift+Enter is a new line, Enter sends
    const composer = page.getByTestId('composer');
    await composer.focus();
    await page.keyboard.type('Hello there!');
    await page.keyboard.press('Shift+Enter');
    await page.keyboard.type('Tell me about dragons.');
    await expect(composer).toHaveValue('Hello there!\nTell me about dragons.');
    await page.keyboard.press('Enter');
    await expect(composer).toHaveValue('');
    const userMessages = page.getByTestId('message-user');
    const answers = page.getByTestId('message-assistant');
    await expect(userMessages).toHaveCount(1);
    await expect(userMessages.first()).toContainText('Hello there!\nTell me about dragons.');
    await expect(answers).toHaveCount(1);
    // the tiny model's context is 128 tokens: the default max tokens (128) with this prompt ends at the context
    await expect(answers.first().getByTestId('answer-meta')).toContainText(
      /\d+ tokens · [\d.]+ tok\/s · (ended at end of text|max tokens reached|context full \(128 tokens\))/,
    );
    await expect(page).toHaveURL(/#\/chat\?c=chat-/);
    const convId = new URL(page.url()).hash.split('c=')[1];
    // named by its first words, and listed
    await expect(page.getByTestId('chat-title')).toHaveText('Hello there! Tell me about dragons.');
    await expect(page.getByTestId('chat-item')).toHaveCount(1);
    await expect(page.getByTestId('chat-announce')).toContainText(/Answer finished: \d+ tokens/);
    let stored = (await invoke(server, 'chats-get', { id: convId })) as { messages: StoredMessage[] };
    expect(stored.messages.map((m) => m.role)).toEqual(['user', 'assistant']);
    await expect(answers.first().locator('.chat-text')).toHaveText(stored.messages[1]!.content || '(no text)');

    // copy an answer to the clipboard
    if (stored.messages[1]!.content) {
      await answers.first().getByRole('button', { name: 'Copy answer' }).click();
      await expect(answers.first().getByRole('button', { name: 'Copy answer' })).toHaveText('Copied');
      expect(await page.evaluate('navigator.clipboard.readText()')).toBe(stored.messages[1]!.content);
    }
    await snap(page, 'chat');

    // max tokens above the model's context is explained at the field and not saved
    await settings.getByLabel('Max tokens').fill('5000');
    await expect(
      settings.getByText("5000 is more than the model's context of 128 tokens; lower it to 128 or less."),
    ).toBeVisible();
    await expect(settings.getByLabel('Max tokens')).toHaveAttribute('aria-invalid', 'true');
    // a long answer (max tokens near the whole context): watch it stream, then stop it with the button
    await settings.getByLabel('Max tokens').fill('120');
    await expect(page.getByTestId('settings-save-state')).toHaveText('Saved');
    let hold = holdNextAnswer(server);
    try {
      await composer.fill('Now write a very long story.');
      await composer.press('Enter');
      const streaming = page.getByTestId('message-streaming');
      await expect(streaming).toBeVisible();
      await expect(streaming.getByTestId('streaming-text')).not.toHaveText('');
      await expect(streaming.getByTestId('live-rate')).toContainText(/\d+ tokens? · [\d.]+ tok\/s/);
      await expect(page.getByTestId('composer-rate')).toContainText(/[\d.]+ tok\/s/);
      await expect(page.getByTestId('chat-announce')).toHaveText('Answering…');
      // one answer at a time: Send is replaced by Stop
      await expect(page.getByRole('button', { name: 'Send' })).toHaveCount(0);
      await snap(page, 'chat-streaming');
      await page.getByRole('button', { name: 'Stop' }).click();
      await expect(streaming).toHaveCount(0);
    } finally {
      hold.release();
    }
    await expect(answers).toHaveCount(2);
    await expect(answers.nth(1).getByTestId('answer-meta')).toHaveAttribute('data-reason', 'stop');
    await expect(answers.nth(1).getByTestId('answer-meta')).toContainText('stopped');
    await expect(page.getByTestId('chat-announce')).toContainText(/Answer stopped after \d+ tokens/);

    // and with Escape
    hold = holdNextAnswer(server);
    try {
      await composer.fill('Another long one.');
      await composer.press('Enter');
      await expect(page.getByTestId('message-streaming').getByTestId('streaming-text')).not.toHaveText('');
      await page.keyboard.press('Escape');
      await expect(page.getByTestId('message-streaming')).toHaveCount(0);
    } finally {
      hold.release();
    }
    await expect(answers).toHaveCount(3);
    await expect(answers.nth(2).getByTestId('answer-meta')).toHaveAttribute('data-reason', 'stop');
    stored = (await invoke(server, 'chats-get', { id: convId })) as { messages: StoredMessage[] };
    expect(stored.messages.map((m) => `${m.role}:${m.reason ?? ''}`)).toEqual([
      'user:',
      `assistant:${stored.messages[1]!.reason}`,
      'user:',
      'assistant:stop',
      'user:',
      'assistant:stop',
    ]);
    // a stopped answer is shorter than a whole one would be
    expect(stored.messages[3]!.tokens).toBeLessThan(50);

    // reload: the conversation is kept, with its messages and settings
    await page.reload();
    await expect(page.getByTestId('chat-title')).toHaveText('Hello there! Tell me about dragons.');
    await expect(userMessages).toHaveCount(3);
    await expect(answers).toHaveCount(3);
    await expect(answers.nth(1).getByTestId('answer-meta')).toContainText('stopped');
    await expect(settings.getByLabel('Max tokens')).toHaveValue('120');
    await expect(page.getByTestId('chat-item')).toHaveCount(1);

    // sampling settings: a bad value is explained and not saved; good ones are saved with the conversation
    await settings.getByLabel('Top-p').fill('1.5');
    await expect(settings.getByText('1.5 must be above 0 and at most 1 (1 = off).')).toBeVisible();
    await expect(settings.getByLabel('Top-p')).toHaveAttribute('aria-invalid', 'true');
    await settings.getByLabel('Top-p').fill('0.9');
    await settings.getByLabel('Temperature').fill('0.3');
    await settings.getByLabel('Top-k').fill('0');
    await settings.getByLabel('Max tokens').fill('8');
    await settings.getByLabel('Seed').fill('7');
    await settings.getByLabel('System message (optional)').fill('You are a terse assistant.');
    await expect(page.getByTestId('settings-save-state')).toHaveText('Saved');
    await snap(page, 'chat-settings');
    const saved = (await invoke(server, 'chats-get', { id: convId })) as {
      conversation: { settings: Record<string, unknown> };
    };
    expect(saved.conversation.settings).toEqual({
      temperature: 0.3,
      topK: 0,
      topP: 0.9,
      maxTokens: 8,
      seed: 7,
      system: 'You are a terse assistant.',
    });
    // the next answer uses them (at most 8 tokens)
    await composer.fill('Short answer please.');
    await composer.press('Enter');
    await expect(answers).toHaveCount(4);
    stored = (await invoke(server, 'chats-get', { id: convId })) as { messages: StoredMessage[] };
    expect(stored.messages[7]!.tokens).toBeLessThanOrEqual(8);
    await page.reload();
    await expect(settings.getByLabel('Temperature')).toHaveValue('0.3');
    await expect(settings.getByLabel('System message (optional)')).toHaveValue('You are a terse assistant.');
    // reset to defaults (the system message stays)
    await settings.getByRole('button', { name: 'Reset to defaults' }).click();
    await expect(settings.getByLabel('Temperature')).toHaveValue('0.8');
    await expect(page.getByTestId('settings-save-state')).toHaveText('Saved');

    // dark theme
    await page.getByRole('button', { name: 'Switch to dark theme' }).click();
    await expect(page.locator('html')).toHaveAttribute('data-theme', 'dark');
    await snap(page, 'chat-dark');
    await page.getByRole('button', { name: 'Switch to light theme' }).click();

    // rename
    await page.getByRole('button', { name: 'Rename “Hello there! Tell me about dragons.”' }).click();
    const rename = page.getByTestId('rename-chat-dialog');
    await rename.getByLabel('Title').fill('Dragons');
    await page.keyboard.press('Enter');
    await expect(rename).toHaveCount(0);
    await expect(page.getByTestId('chat-item')).toContainText('Dragons');
    await expect(page.getByTestId('chat-title')).toHaveText('Dragons');

    // delete, with a confirmation (Cancel first)
    await page.getByRole('button', { name: 'Delete “Dragons”' }).click();
    const del = page.getByTestId('delete-chat-dialog');
    await expect(del).toContainText('8 messages');
    await del.getByRole('button', { name: 'Cancel' }).click();
    await expect(del).toHaveCount(0);
    expect(((await invoke(server, 'chats-list')) as unknown[]).length).toBe(1);
    await page.getByRole('button', { name: 'Delete “Dragons”' }).click();
    await del.getByRole('button', { name: 'Delete conversation' }).click();
    await expect(page.getByTestId('chat-item')).toHaveCount(0);
    await expect(page.getByRole('heading', { name: 'New conversation' })).toBeVisible();
    expect(await invoke(server, 'chats-list')).toEqual([]);
    expect(failed).toEqual([]);
  });

  test('a link with ?model= starts a conversation with that model; a model that fails to load says why', async ({
    page,
    appUrl,
    server,
    workspace,
  }) => {
    const failed = watchErrors(page);
    const model = await importTiny(server);
    await page.goto(appUrl + `#/chat?model=${encodeURIComponent(model.key)}`);
    await expect(page.getByLabel('Model', { exact: true })).toHaveValue(model.key);
    await expect(page.getByRole('link', { name: 'New conversation', exact: true })).toHaveAttribute(
      'aria-current',
      'page',
    );

    // a conversation whose model's weights are gone from the workspace
    const id = model.key.replace(/^model:/, '');
    const c = (await invoke(server, 'chats-create', { target: { modelId: id }, title: 'Broken model' })) as {
      id: string;
    };
    rmSync(join(workspace, 'models', id, 'model.safetensors'));
    await page.goto(appUrl + `#/chat?c=${c.id}`);
    await expect(page.getByTestId('chat-title')).toHaveText('Broken model');
    await page.getByTestId('composer').fill('Are you there?');
    await page.getByTestId('composer').press('Enter');
    const alert = page.getByRole('alert');
    await expect(alert).toContainText('model.safetensors');
    // nothing was kept, and the message is back in the composer to send again
    await expect(page.getByTestId('composer')).toHaveValue('Are you there?');
    await expect(page.getByTestId('message-user')).toHaveCount(0);
    expect(((await invoke(server, 'chats-get', { id: c.id })) as { messages: unknown[] }).messages).toEqual([]);

    // the first message of a new conversation with that model: the error shows on the draft, and no empty
    // conversation is left behind
    await page.goto(appUrl + `#/chat?model=${encodeURIComponent(model.key)}`);
    await expect(page.getByLabel('Model', { exact: true })).toHaveValue(model.key);
    await page.getByTestId('composer').fill('Hello?');
    await page.getByTestId('composer').press('Enter');
    await expect(page.getByRole('alert')).toContainText('model.safetensors');
    await expect(page).toHaveURL(/#\/chat\?model=/);
    await expect(page.getByTestId('composer')).toHaveValue('Hello?');
    await expect
      .poll(async () => ((await invoke(server, 'chats-list')) as { id: string }[]).map((x) => x.id))
      .toEqual([c.id]);
    expect(failed.filter((f) => !/Failed to load resource/.test(f))).toEqual([]);
  });
});

test('an empty workspace: the Chat page explains how to get a model', async ({ page, appUrl }) => {
  await page.goto(appUrl + '#/chat');
  await expect(page.getByRole('heading', { level: 1, name: 'Chat' })).toBeVisible();
  const empty = page.getByRole('region', { name: 'No models to chat with' });
  await expect(empty).toBeVisible();
  await expect(empty).toContainText('Import the GPT-2 weights');
  await expect(empty.getByRole('button', { name: 'Import GPT-2 weights…' })).toBeVisible();
  await expect(empty.getByRole('link', { name: 'New run' })).toHaveAttribute('href', '#/new-run');
});
