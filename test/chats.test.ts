/**
 * Chat conversations: the SQLite tables of migration 2 (ChatStore), and the chat service answering with the real
 * tiny model (the gpt2-tiny fixture, imported into a fresh workspace): stored messages, streaming events, stop,
 * refusals, a model that fails to load, and delete with its messages.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode, StudioError } from '../src/shared/errors';
import { DEFAULT_SAMPLING_SETTINGS, type ModelEntry } from '../src/shared/models';
import {
  ChatStore,
  DATABASE_FILE,
  MIGRATIONS,
  SCHEMA_VERSION,
  migrate,
  openStore,
  type Store,
} from '../src/node/store';
import { Studio } from '../src/node/studio';
import { titleFrom } from '../src/node/chats/service';
import type { GenerateDoneEvent, GenerateTokenEvent } from '../src/node/generation/service';
import { hasFixture, sharedPath } from './shared';

/** Runs fn and returns the StudioError it throws (failing the test if it throws anything else or nothing). */
async function studioError(fn: () => unknown): Promise<StudioError> {
  try {
    await fn();
  } catch (e) {
    expect(e).toBeInstanceOf(StudioError);
    return e as StudioError;
  }
  throw new Error('expected a StudioError, but nothing was thrown');
}

describe('chat tables (migration 2)', () => {
  let home: string;
  const open: Store[] = [];
  beforeEach(() => {
    home = mkdtempSync(path.join(os.tmpdir(), 'gpt2-chats-store-'));
  });
  afterEach(() => {
    for (const s of open.splice(0)) s.close();
    rmSync(home, { recursive: true, force: true });
  });
  const store = (now?: () => number) => {
    const s = openStore(home, { now });
    open.push(s);
    return s;
  };

  it('migrates a version-1 database to version 2, keeping its rows, with STRICT, checked and cascading tables', () => {
    // a database as the first release left it: version 1, with a run in it
    const file = path.join(home, DATABASE_FILE);
    const v1 = new Database(file);
    expect(migrate(v1, file, MIGRATIONS.slice(0, 1))).toEqual({ from: 0, to: 1, applied: [1] });
    v1.prepare(`INSERT INTO runs (id, name, config_json, created_at) VALUES ('run-old', 'kept', '{}', 1)`).run();
    expect(v1.prepare(`SELECT count(*) FROM sqlite_master WHERE name = 'conversations'`).pluck().get()).toBe(0);
    v1.close();

    const s = store();
    expect(s.info().schemaVersion).toBe(SCHEMA_VERSION);
    expect(s.getRun('run-old')?.name).toBe('kept');
    const db = s.database;
    const tables = db
      .prepare<[], { name: string; sql: string }>(
        `SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name IN ('conversations', 'chat_messages') ORDER BY name`,
      )
      .all();
    expect(tables.map((t) => t.name)).toEqual(['chat_messages', 'conversations']);
    for (const t of tables) expect(t.sql).toMatch(/\)\s*STRICT/);
    expect(s.integrityCheck()).toEqual(['ok']);
    expect(db.pragma('foreign_key_check')).toEqual([]);

    const chats = new ChatStore(db);
    const c = chats.create({ target: { modelId: 'gpt2' }, settings: { ...DEFAULT_SAMPLING_SETTINGS } });
    // JSON columns must hold JSON objects; STRICT refuses a wrong type; a message needs its conversation
    expect(() => db.prepare(`UPDATE conversations SET target_json = 'not json' WHERE id = ?`).run(c.id)).toThrow(
      /CHECK constraint/,
    );
    expect(() => db.prepare(`UPDATE conversations SET settings_json = '[1]' WHERE id = ?`).run(c.id)).toThrow(
      /CHECK constraint/,
    );
    expect(() => db.prepare(`UPDATE conversations SET created_at = 'yesterday' WHERE id = ?`).run(c.id)).toThrow(
      /cannot store TEXT value in INTEGER column/,
    );
    expect(() =>
      db
        .prepare(
          `INSERT INTO chat_messages (conversation_id, seq, role, content, created_at) VALUES ('nowhere', 1, 'user', 'hi', 1)`,
        )
        .run(),
    ).toThrow(/FOREIGN KEY/);
    expect(() =>
      db
        .prepare(
          `INSERT INTO chat_messages (conversation_id, seq, role, content, created_at) VALUES (?, 1, 'system', 'hi', 1)`,
        )
        .run(c.id),
    ).toThrow(/CHECK constraint/);
    expect(() =>
      db
        .prepare(
          `INSERT INTO chat_messages (conversation_id, seq, role, content, created_at, reason) VALUES (?, 1, 'assistant', 'hi', 1, 'tired')`,
        )
        .run(c.id),
    ).toThrow(/CHECK constraint/);
  });

  it("migrates version 2 to 3: a stored 'stopped' answer becomes 'stop'; 'context' and the context size are accepted", () => {
    const file = path.join(home, DATABASE_FILE);
    const v2 = new Database(file);
    v2.pragma('foreign_keys = ON');
    expect(migrate(v2, file, MIGRATIONS.slice(0, 2))).toEqual({ from: 0, to: 2, applied: [1, 2] });
    v2.prepare(
      `INSERT INTO conversations (id, title, target_json, created_at, updated_at) VALUES ('chat-old', 'kept', '{"modelId":"gpt2"}', 1, 1)`,
    ).run();
    const add = v2.prepare(
      `INSERT INTO chat_messages (conversation_id, seq, role, content, created_at, tokens, tokens_per_sec, reason) VALUES ('chat-old', ?, ?, ?, 1, ?, ?, ?)`,
    );
    add.run(1, 'user', 'hi', null, null, null);
    add.run(2, 'assistant', 'hel', 3, 10, 'stopped');
    add.run(3, 'user', 'again', null, null, null);
    add.run(4, 'assistant', 'hello', 5, 12.5, 'length');
    expect(migrate(v2, file, MIGRATIONS.slice(0, 3))).toEqual({ from: 2, to: 3, applied: [3] });
    v2.close();

    const s = store();
    expect(s.info().schemaVersion).toBe(SCHEMA_VERSION);
    const chats = new ChatStore(s.database);
    expect(chats.messages('chat-old').map((m) => [m.seq, m.role, m.content, m.reason, m.contextTokens])).toEqual([
      [1, 'user', 'hi', null, null],
      [2, 'assistant', 'hel', 'stop', null],
      [3, 'user', 'again', null, null],
      [4, 'assistant', 'hello', 'length', null],
    ]);
    expect(
      chats.addMessage('chat-old', {
        role: 'assistant',
        content: 'a a a',
        tokens: 30,
        tokensPerSec: 9,
        reason: 'context',
        contextTokens: 32,
      }),
    ).toMatchObject({ seq: 5, reason: 'context', contextTokens: 32 });
    const db = s.database;
    expect(() =>
      db.prepare(`UPDATE chat_messages SET reason = 'stopped' WHERE conversation_id = 'chat-old' AND seq = 2`).run(),
    ).toThrow(/CHECK constraint/);
    expect(() =>
      db.prepare(`UPDATE chat_messages SET context_tokens = 0 WHERE conversation_id = 'chat-old' AND seq = 5`).run(),
    ).toThrow(/CHECK constraint/);
    // still STRICT, and still going with its conversation
    expect(
      db.prepare<[], { sql: string }>(`SELECT sql FROM sqlite_master WHERE name = 'chat_messages'`).get()!.sql,
    ).toMatch(/\)\s*STRICT/);
    expect(s.integrityCheck()).toEqual(['ok']);
    expect(chats.remove('chat-old')).toBe(true);
    expect(db.prepare('SELECT count(*) FROM chat_messages').pluck().get()).toBe(0);
  });

  it('numbers messages, lists the most recently active first, undoes a failed send, and deletes with the messages', () => {
    let t = 1000;
    const s = store(() => t);
    const chats = new ChatStore(s.database, { now: () => t });
    const a = chats.create({ target: { modelId: 'gpt2' }, settings: { ...DEFAULT_SAMPLING_SETTINGS } });
    t = 2000;
    const b = chats.create({
      target: { runId: 'run-x', step: 10 },
      title: 'second',
      settings: { ...DEFAULT_SAMPLING_SETTINGS, system: 'Be brief.' },
    });
    expect(chats.list().map((c) => c.id)).toEqual([b.id, a.id]);
    expect(b).toMatchObject({
      title: 'second',
      target: { runId: 'run-x', step: 10 },
      settings: { system: 'Be brief.' },
      createdAt: 2000,
      updatedAt: 2000,
      messageCount: 0,
    });
    expect(a.title).toBeNull();

    t = 3000;
    expect(chats.addMessage(a.id, { role: 'user', content: 'hello' })).toMatchObject({
      seq: 1,
      role: 'user',
      content: 'hello',
      createdAt: 3000,
      tokens: null,
      reason: null,
    });
    t = 3500;
    const answer = chats.addMessage(a.id, {
      role: 'assistant',
      content: 'hi there',
      tokens: 3,
      tokensPerSec: 42.5,
      reason: 'stop',
      contextTokens: 1024,
    });
    expect(answer).toMatchObject({
      seq: 2,
      tokens: 3,
      tokensPerSec: 42.5,
      reason: 'stop',
      contextTokens: 1024,
      error: null,
    });
    const failed = chats.addMessage(a.id, {
      role: 'assistant',
      content: '',
      tokens: 0,
      tokensPerSec: 0,
      reason: 'error',
      error: { code: ErrorCode.NUMERIC, message: 'NaN logits', hint: 'Lower the learning rate.' },
    });
    expect(failed.error).toEqual({ code: ErrorCode.NUMERIC, message: 'NaN logits', hint: 'Lower the learning rate.' });
    // a message makes its conversation the most recent
    expect(chats.list().map((c) => [c.id, c.messageCount, c.updatedAt])).toEqual([
      [a.id, 3, 3500],
      [b.id, 0, 2000],
    ]);
    expect(chats.messages(a.id).map((m) => m.seq)).toEqual([1, 2, 3]);

    // undo only removes the last message, and puts the activity time back
    chats.undoMessage(a.id, 2, { updatedAt: 1000, title: null });
    expect(chats.messages(a.id)).toHaveLength(3);
    chats.undoMessage(a.id, 3, { updatedAt: 1000, title: null });
    expect(chats.messages(a.id).map((m) => m.seq)).toEqual([1, 2]);
    expect(chats.get(a.id)?.updatedAt).toBe(1000);

    expect(() => chats.addMessage('chat-missing', { role: 'user', content: 'x' })).toThrow(
      /no conversation "chat-missing"/,
    );
    expect(chats.update('chat-missing', { title: 'x' })).toBeUndefined();
    expect(chats.update(b.id, { title: 'renamed', target: { modelId: 'other' } })).toMatchObject({
      title: 'renamed',
      target: { modelId: 'other' },
    });

    expect(chats.remove(a.id)).toBe(true);
    expect(chats.remove(a.id)).toBe(false);
    expect(s.database.prepare('SELECT count(*) FROM chat_messages WHERE conversation_id = ?').pluck().get(a.id)).toBe(
      0,
    );
    expect(chats.list().map((c) => c.id)).toEqual([b.id]);
  });

  it('titles a conversation with the first words of its first message', () => {
    expect(titleFrom('  What is   the capital of France? ')).toBe('What is the capital of France?');
    expect(titleFrom('one two three four five six seven eight nine ten')).toBe(
      'one two three four five six seven eight…',
    );
    expect(titleFrom('x'.repeat(100))).toBe(`${'x'.repeat(60)}…`);
  });
});

const tinyPath = sharedPath('fixtures/gpt2-tiny');
const present = hasFixture('fixtures/gpt2-tiny/model.safetensors');

describe.skipIf(!present)('chat service with the real tiny model (gpt2-tiny)', () => {
  let home: string;
  let studio: Studio;
  let model: ModelEntry;

  beforeAll(async () => {
    home = mkdtempSync(path.join(os.tmpdir(), 'gpt2-chats-'));
    studio = new Studio({ home });
    model = await studio.invoke('models-import', { path: tinyPath });
  });
  afterAll(() => {
    studio?.close();
    rmSync(home, { recursive: true, force: true });
  });

  /**
   * Follows the next generation (the tests run one at a time): its generate-token events, and its generate-done.
   * Subscribed before the send, so that no event is missed whenever the first token comes.
   */
  function nextGeneration(onToken?: (e: GenerateTokenEvent) => void) {
    const tokens: GenerateTokenEvent[] = [];
    const offToken = studio.on('generate-token', (e) => {
      tokens.push(e);
      onToken?.(e);
    });
    const done = new Promise<GenerateDoneEvent>((resolve) => {
      const offDone = studio.on('generate-done', (e) => {
        offDone();
        offToken();
        resolve(e);
      });
    });
    return { tokens, done };
  }

  it('stores the message, streams the answer, stores it with tokens, rate and reason, and names the conversation', async () => {
    const c = await studio.invoke('chats-create', { target: model.target, settings: { maxTokens: 24, seed: 7 } });
    expect(c).toMatchObject({
      title: 'New conversation',
      named: false,
      messageCount: 0,
      answering: false,
      settings: { ...DEFAULT_SAMPLING_SETTINGS, maxTokens: 24, seed: 7 },
    });
    expect((await studio.invoke('chats-list')).map((x) => x.id)).toContain(c.id);

    const f = nextGeneration();
    const sent = await studio.invoke('chats-send', {
      id: c.id,
      content: 'Tell me a story about a dragon and a knight, please',
    });
    expect(sent.message).toMatchObject({
      seq: 1,
      role: 'user',
      content: 'Tell me a story about a dragon and a knight, please',
    });
    // while it answers, the conversation says so, and refuses another message
    const during = await studio.invoke('chats-get', { id: c.id });
    expect(during.conversation).toMatchObject({
      answering: true,
      answeringGenId: sent.genId,
      title: 'Tell me a story about a dragon and…',
      named: true,
    });
    const busy = await studioError(() => studio.invoke('chats-send', { id: c.id, content: 'again' }));
    expect(busy.message).toMatch(/still answering/);

    const done = await f.done;
    expect(done.genId).toBe(sent.genId);
    expect(f.tokens.every((t) => t.genId === sent.genId)).toBe(true);
    expect(done.reason === 'length' || done.reason === 'eot').toBe(true);
    expect(f.tokens.length).toBeGreaterThan(0);
    expect(
      f.tokens
        .map((t) => t.text)
        .join('')
        .trim(),
    ).toBe(done.text);
    expect(f.tokens[f.tokens.length - 1]!.tokens).toBe(done.tokens);
    expect(f.tokens.every((t) => t.tokensPerSec > 0)).toBe(true);
    expect(done.tokens).toBeGreaterThan(0);
    expect(done.tokens).toBeLessThanOrEqual(24);

    const after = await studio.invoke('chats-get', { id: c.id });
    expect(after.conversation).toMatchObject({ answering: false, answeringGenId: null, messageCount: 2 });
    expect(after.messages).toHaveLength(2);
    expect(after.messages[1]).toMatchObject({
      seq: 2,
      role: 'assistant',
      content: done.text,
      tokens: done.tokens,
      reason: done.reason,
      error: null,
    });
    expect(after.messages[1]!.tokensPerSec).toBeCloseTo(done.tokensPerSec, 6);

    // the next message is answered over the whole conversation, with the system message and the settings: the
    // same as a generation given those messages directly (same seed)
    await studio.invoke('chats-update', {
      id: c.id,
      settings: { system: 'You are a helpful assistant.', temperature: 0.5 },
    });
    const f2 = nextGeneration();
    const g2 = (await studio.invoke('chats-send', { id: c.id, content: 'And then?' })).genId;
    const second = await f2.done;
    expect(second.genId).toBe(g2);
    const f3 = nextGeneration();
    const g3 = (
      await studio.invoke('generate-start', {
        target: model.target,
        messages: [
          { role: 'system', content: 'You are a helpful assistant.' },
          { role: 'user', content: 'Tell me a story about a dragon and a knight, please' },
          { role: 'assistant', content: done.text },
          { role: 'user', content: 'And then?' },
        ],
        ...DEFAULT_SAMPLING_SETTINGS,
        maxTokens: 24,
        seed: 7,
        temperature: 0.5,
      })
    ).genId;
    const direct = await f3.done;
    expect(direct.genId).toBe(g3);
    expect(second.text).toBe(direct.text);
    expect(second.tokens).toBe(direct.tokens);
    const third = await studio.invoke('chats-get', { id: c.id });
    expect(third.messages.map((m) => [m.seq, m.role])).toEqual([
      [1, 'user'],
      [2, 'assistant'],
      [3, 'user'],
      [4, 'assistant'],
    ]);
    expect(third.messages[3]!.content).toBe(second.text);
    // named by the first message only
    expect(third.conversation.title).toBe('Tell me a story about a dragon and…');
  });

  it('keeps the settings per conversation, refuses bad ones, and renames', async () => {
    const c = await studio.invoke('chats-create', { target: model.target, title: 'Settings' });
    const u = await studio.invoke('chats-update', { id: c.id, settings: { topK: 0, system: 'Be terse.' } });
    expect(u.settings).toEqual({ ...DEFAULT_SAMPLING_SETTINGS, topK: 0, system: 'Be terse.' });
    // a partial update keeps the rest; an empty system message removes it
    const v = await studio.invoke('chats-update', { id: c.id, settings: { seed: 3, system: '' } });
    expect(v.settings).toEqual({ ...DEFAULT_SAMPLING_SETTINGS, topK: 0, seed: 3 });
    expect((await studio.invoke('chats-get', { id: c.id })).conversation.settings).toEqual(v.settings);
    // the request's schema refuses it first; the service itself refuses it too (with the value in words)
    expect(
      (await studioError(() => studio.invoke('chats-update', { id: c.id, settings: { topP: 1.5 } }))).message,
    ).toMatch(/settings\.topP/);
    const bad = await studioError(async () => studio.chats.update({ id: c.id, settings: { topP: 1.5 } }));
    expect(bad.code).toBe(ErrorCode.BAD_ARGUMENT);
    expect(bad.message).toContain('top-p = 1.5');
    expect(
      (await studioError(async () => studio.chats.create({ target: model.target, settings: { maxTokens: 0 } })))
        .message,
    ).toContain('max tokens = 0');
    expect((await studio.invoke('chats-update', { id: c.id, title: '  Renamed   twice ' })).title).toBe(
      'Renamed twice',
    );
    expect((await studioError(() => studio.invoke('chats-update', { id: c.id, title: '   ' }))).message).toMatch(
      /cannot be empty/,
    );
    expect((await studioError(() => studio.invoke('chats-get', { id: 'chat-nope' }))).code).toBe(ErrorCode.NOT_FOUND);
  });

  it('stops an answer: the partial text is stored with reason "stop"', async () => {
    const c = await studio.invoke('chats-create', {
      target: model.target,
      settings: { maxTokens: model.blockSize, topK: 0, temperature: 1 },
    });
    let stopped: Promise<{ stopped: boolean }> | undefined;
    // stop at the first token
    const f = nextGeneration((e) => {
      stopped ??= studio.invoke('generate-stop', { genId: e.genId });
    });
    const genId = (await studio.invoke('chats-send', { id: c.id, content: 'Go on forever' })).genId;
    const done = await f.done;
    expect(done.genId).toBe(genId);
    expect(await stopped).toEqual({ stopped: true });
    expect(done.reason).toBe('stop');
    expect(done.tokens).toBeGreaterThanOrEqual(1);
    expect(done.tokens).toBeLessThan(100);
    const got = await studio.invoke('chats-get', { id: c.id });
    expect(got.messages[1]).toMatchObject({
      role: 'assistant',
      reason: 'stop',
      tokens: done.tokens,
      content: done.text,
    });
    expect(got.conversation.answering).toBe(false);
  });

  it('a model that fails to load: the send fails with its error and leaves the conversation as it was', async () => {
    const missing = path.join(home, 'no-such-weights');
    const c = await studio.invoke('chats-create', { target: { weightsPath: missing } });
    const e = await studioError(() => studio.invoke('chats-send', { id: c.id, content: 'Hello?' }));
    expect(e.message).toContain(missing);
    expect(e.hint).not.toBe('');
    const got = await studio.invoke('chats-get', { id: c.id });
    expect(got.messages).toEqual([]);
    expect(got.conversation).toMatchObject({
      title: 'New conversation',
      named: false,
      answering: false,
      messageCount: 0,
    });
    // pointed at a model that loads, the same conversation answers
    await studio.invoke('chats-update', { id: c.id, target: model.target, settings: { maxTokens: 4 } });
    const f = nextGeneration();
    const genId = (await studio.invoke('chats-send', { id: c.id, content: 'Hello?' })).genId;
    expect((await f.done).genId).toBe(genId);
    expect((await studio.invoke('chats-get', { id: c.id })).messages.map((m) => m.role)).toEqual(['user', 'assistant']);
  });

  it('deletes a conversation with its messages, stopping its answer', async () => {
    const c = await studio.invoke('chats-create', {
      target: model.target,
      settings: { maxTokens: model.blockSize, topK: 0 },
    });
    let deleted: Promise<{ deleted: boolean }> | undefined;
    // deleted at the first token of its answer
    const f = nextGeneration(() => {
      deleted ??= studio.invoke('chats-delete', { id: c.id });
    });
    const genId = (await studio.invoke('chats-send', { id: c.id, content: 'Talk' })).genId;
    const done = await f.done;
    expect(done.genId).toBe(genId);
    expect(await deleted).toEqual({ deleted: true });
    expect(done.reason).toBe('stop');
    expect((await studioError(() => studio.invoke('chats-get', { id: c.id }))).code).toBe(ErrorCode.NOT_FOUND);
    expect(
      studio.store.database.prepare('SELECT count(*) FROM chat_messages WHERE conversation_id = ?').pluck().get(c.id),
    ).toBe(0);
    expect((await studio.invoke('chats-list')).some((x) => x.id === c.id)).toBe(false);
    expect(await studio.invoke('chats-delete', { id: c.id })).toEqual({ deleted: false });

    // and a conversation with stored messages
    const d = await studio.invoke('chats-create', { target: model.target, settings: { maxTokens: 3 } });
    const f2 = nextGeneration();
    await studio.invoke('chats-send', { id: d.id, content: 'Hi' });
    await f2.done;
    expect(
      studio.store.database.prepare('SELECT count(*) FROM chat_messages WHERE conversation_id = ?').pluck().get(d.id),
    ).toBe(2);
    expect(await studio.invoke('chats-delete', { id: d.id })).toEqual({ deleted: true });
    expect(
      studio.store.database.prepare('SELECT count(*) FROM chat_messages WHERE conversation_id = ?').pluck().get(d.id),
    ).toBe(0);
  });
});
