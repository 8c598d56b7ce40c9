/**
 * End reasons and max tokens against the context, through the Studio service (generate-start, generate-sample and
 * chat), on real models loaded by the model worker: two small GPT-2s (context 32) whose weights are set so that
 * one always writes " a" and the other always writes <|endoftext|>, imported into a fresh workspace. Each end is
 * then reached on purpose, on any engine.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chatPrompt } from '../../core/chat';
import { makeConfig } from '../../core/model/config';
import { initWeights } from '../../core/model/init';
import { EOT, encode } from '../../core/tokenizer';
import { ErrorCode, StudioError } from '../../shared/errors';
import type { ModelEntry } from '../../shared/models';
import { exportGpt2Weights } from '../models/weights';
import type { GenerateDoneEvent } from './service';
import { Studio } from '../studio/index';

const CONTEXT = 32;
const cfg = makeConfig({ nLayer: 1, nHead: 1, nEmbd: 8, blockSize: CONTEXT });
const A = encode(' a')[0]!;

/** Writes a model whose next token is always `token` (ln_f maps every position to e0; only that row of wte points along it). */
function writeModel(dir: string, token: number): void {
  const w = initWeights(cfg, 3);
  w.get('ln_f.weight')!.data.fill(0);
  const bias = w.get('ln_f.bias')!.data;
  bias.fill(0);
  bias[0] = 1;
  w.get('wte.weight')!.data[token * cfg.nEmbd] = 20;
  exportGpt2Weights(dir, cfg, w);
}

async function studioError(fn: () => unknown): Promise<StudioError> {
  try {
    await fn();
  } catch (e) {
    expect(e).toBeInstanceOf(StudioError);
    return e as StudioError;
  }
  throw new Error('expected a StudioError, but nothing was thrown');
}

describe('end reasons and max tokens vs the context, through the service', () => {
  let home: string;
  let studio: Studio;
  let writesA: ModelEntry;
  let writesEot: ModelEntry;
  const done: GenerateDoneEvent[] = [];

  beforeAll(async () => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-end-reasons-'));
    writeModel(path.join(home, 'src-a'), A);
    writeModel(path.join(home, 'src-eot'), EOT);
    studio = new Studio({ home });
    studio.on('generate-done', (e) => done.push(e));
    writesA = await studio.invoke('models-import', { path: path.join(home, 'src-a'), name: 'writes a' });
    writesEot = await studio.invoke('models-import', { path: path.join(home, 'src-eot'), name: 'writes eot' });
    expect(writesA.blockSize).toBe(CONTEXT);
  });
  afterAll(async () => {
    await studio?.shutdown(1000);
    fs.rmSync(home, { recursive: true, force: true });
  });

  const waitDone = async (genId: string): Promise<GenerateDoneEvent> => {
    for (let i = 0; i < 1200; i++) {
      const d = done.find((x) => x.genId === genId);
      if (d) return d;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`generation ${genId} did not end`);
  };

  it("generate-start: 'length' at max tokens, 'context' when the context fills first, 'eot' at <|endoftext|>", async () => {
    const short = await studio.invoke('generate-start', {
      target: writesA.target,
      prompt: 'Hi',
      maxTokens: 8,
      temperature: 0,
    });
    expect(await waitDone(short.genId)).toMatchObject({
      reason: 'length',
      tokens: 8,
      text: ' a'.repeat(8),
      contextTokens: CONTEXT,
    });

    // max tokens = the whole context: the 2-token prompt (<|endoftext|>Hi) leaves 30, and the context ends it
    const long = await studio.invoke('generate-start', {
      target: writesA.target,
      prompt: 'Hi',
      maxTokens: CONTEXT,
      temperature: 0,
    });
    expect(long.promptTokens).toBe(2);
    expect(await waitDone(long.genId)).toMatchObject({
      reason: 'context',
      tokens: CONTEXT - 2,
      contextTokens: CONTEXT,
    });

    const eot = await studio.invoke('generate-start', { target: writesEot.target, prompt: 'Hi', maxTokens: 8 });
    expect(await waitDone(eot.genId)).toMatchObject({ reason: 'eot', tokens: 0, text: '', contextTokens: CONTEXT });
  });

  it('generate-start refuses max tokens above the context, naming the value, the context and the fix', async () => {
    const e = await studioError(() =>
      studio.invoke('generate-start', { target: writesA.target, prompt: 'Hi', maxTokens: 5000 }),
    );
    expect(e.code).toBe(ErrorCode.BAD_ARGUMENT);
    expect(e.message).toBe(
      `max tokens 5000 is more than the model's context of ${CONTEXT} tokens; lower it to ${CONTEXT} or less.`,
    );
    // also while another generation holds the model (the request is checked before it is queued)
    const running = await studio.invoke('generate-start', {
      target: writesA.target,
      prompt: 'Hi',
      maxTokens: CONTEXT,
      temperature: 0,
    });
    const queued = await studioError(() =>
      studio.invoke('generate-start', { target: writesA.target, prompt: 'Hi', maxTokens: CONTEXT + 1 }),
    );
    expect(queued.message).toContain(`max tokens ${CONTEXT + 1} is more than the model's context of ${CONTEXT} tokens`);
    expect((await waitDone(running.genId)).reason).toBe('context');
    // no max tokens given: the default (128), lowered to this model's context rather than refused
    const dflt = await studio.invoke('generate-start', { target: writesA.target, prompt: 'Hi', temperature: 0 });
    expect(await waitDone(dflt.genId)).toMatchObject({ reason: 'context', tokens: CONTEXT - 2 });
  });

  it("generate-sample reports each model's end reason, and refuses max tokens above a model's context for that model", async () => {
    const [a, eot] = await studio.invoke('generate-sample', {
      targets: [writesA.target, writesEot.target],
      prompt: 'Hi',
      maxTokens: CONTEXT,
      temperature: 0,
    });
    expect(a).toMatchObject({ reason: 'context', tokens: CONTEXT - 2, contextTokens: CONTEXT });
    expect(a!.error).toBeUndefined();
    expect(eot).toMatchObject({ reason: 'eot', tokens: 0, text: '' });
    const [few] = await studio.invoke('generate-sample', {
      targets: [writesA.target],
      prompt: 'Hi',
      maxTokens: 4,
      temperature: 0,
    });
    expect(few).toMatchObject({ reason: 'length', tokens: 4, text: ' a a a a' });
    const [over] = await studio.invoke('generate-sample', { targets: [writesA.target], prompt: 'Hi', maxTokens: 5000 });
    expect(over!.reason).toBeUndefined();
    expect(over!.error).toMatchObject({
      code: ErrorCode.BAD_ARGUMENT,
      message: `max tokens 5000 is more than the model's context of ${CONTEXT} tokens; lower it to ${CONTEXT} or less.`,
    });
  });

  it("chat: an answer that fills the context is stored as 'context' (with the context), not 'length'; <|endoftext|> as 'eot'", async () => {
    const c = await studio.invoke('chats-create', {
      target: writesA.target,
      settings: { maxTokens: CONTEXT, temperature: 0 },
    });
    const sent = await studio.invoke('chats-send', { id: c.id, content: 'Hi' });
    const d = await waitDone(sent.genId);
    const promptTokens = chatPrompt([{ role: 'user', content: 'Hi' }]).length;
    expect(d).toMatchObject({ reason: 'context', tokens: CONTEXT - promptTokens, contextTokens: CONTEXT });
    const got = await studio.invoke('chats-get', { id: c.id });
    expect(got.messages[1]).toMatchObject({
      role: 'assistant',
      reason: 'context',
      contextTokens: CONTEXT,
      tokens: CONTEXT - promptTokens,
    });

    // max tokens below the room left: 'length'
    await studio.invoke('chats-update', { id: c.id, settings: { maxTokens: 3 } });
    const d2 = await waitDone((await studio.invoke('chats-send', { id: c.id, content: 'More' })).genId);
    expect(d2).toMatchObject({ reason: 'length', tokens: 3, text: 'a a a' });

    const e = await studio.invoke('chats-create', { target: writesEot.target, settings: { maxTokens: 8 } });
    const d3 = await waitDone((await studio.invoke('chats-send', { id: e.id, content: 'Hi' })).genId);
    expect(d3).toMatchObject({ reason: 'eot', tokens: 0 });
    expect((await studio.invoke('chats-get', { id: e.id })).messages[1]).toMatchObject({
      reason: 'eot',
      contextTokens: CONTEXT,
    });
  });

  it('chat: a send with max tokens above the context is refused and leaves the conversation as it was', async () => {
    const c = await studio.invoke('chats-create', { target: writesA.target, settings: { maxTokens: 5000 } });
    const e = await studioError(() => studio.invoke('chats-send', { id: c.id, content: 'Hello?' }));
    expect(e.code).toBe(ErrorCode.BAD_ARGUMENT);
    expect(e.message).toBe(
      `max tokens 5000 is more than the model's context of ${CONTEXT} tokens; lower it to ${CONTEXT} or less.`,
    );
    const got = await studio.invoke('chats-get', { id: c.id });
    expect(got.messages).toEqual([]);
    expect(got.conversation).toMatchObject({ named: false, answering: false, messageCount: 0 });
    // lowered to the context, the same conversation answers
    await studio.invoke('chats-update', { id: c.id, settings: { maxTokens: CONTEXT } });
    const d = await waitDone((await studio.invoke('chats-send', { id: c.id, content: 'Hello?' })).genId);
    expect(d.reason).toBe('context');
  });
});
