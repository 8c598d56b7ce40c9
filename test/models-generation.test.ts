/**
 * Imported models and streaming generation through the Studio service, on the real tiny GPT-2 fixture.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Studio } from '../src/node/studio';
import { getEngine } from '../src/node/engines';
import { loadGpt2Weights } from '../src/node/models/weights';
import { generate } from '../src/core/sampling';
import { EOT, decode, encode } from '../src/core/tokenizer';
import { turnStartAt, type GenerateDoneEvent, type GenerateTokenEvent } from '../src/node/generation/service';
import { StudioError } from '../src/shared/errors';
import { hasFixture, sharedPath } from './shared';

const TINY = 'fixtures/gpt2-tiny';
const have = hasFixture(`${TINY}/model.safetensors`);
if (!have) console.warn(`skipping: no ${sharedPath(TINY)} (set GPT2_STUDIO_SHARED)`);

describe.skipIf(!have)('models and generation', () => {
  let home: string;
  let studio: Studio;
  const tokens: GenerateTokenEvent[] = [];
  const done: GenerateDoneEvent[] = [];

  beforeAll(() => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-models-'));
    studio = new Studio({ home });
    studio.on('generate-token', (e) => tokens.push(e));
    studio.on('generate-done', (e) => done.push(e));
  });
  afterAll(async () => {
    await studio.shutdown(1000);
    fs.rmSync(home, { recursive: true, force: true });
  });

  const waitDone = async (genId: string): Promise<GenerateDoneEvent> => {
    for (let i = 0; i < 600; i++) {
      const d = done.find((x) => x.genId === genId);
      if (d) return d;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`generation ${genId} did not end`);
  };

  it('imports the fixture folder into models/<id>/ and lists it', async () => {
    const m = await studio.invoke('models-import', { path: sharedPath(TINY), name: 'Tiny GPT-2' });
    expect(m).toMatchObject({
      key: 'model:tiny-gpt-2',
      kind: 'imported',
      target: { modelId: 'tiny-gpt-2' },
      nLayer: 2,
      nHead: 2,
      nEmbd: 32,
      blockSize: 128,
      vocabSize: 50257,
    });
    expect(fs.existsSync(path.join(home, 'models', 'tiny-gpt-2', 'model.safetensors'))).toBe(true);
    expect(fs.existsSync(path.join(home, 'models', 'tiny-gpt-2', 'config.json'))).toBe(true);
    // the copy loads to the same tensors as the original
    const a = loadGpt2Weights(sharedPath(TINY));
    const b = loadGpt2Weights(path.join(home, 'models', 'tiny-gpt-2'));
    expect(b.config).toEqual(a.config);
    expect(Array.from(b.tensors.get('h.1.mlp.c_fc.weight')!.data)).toEqual(
      Array.from(a.tensors.get('h.1.mlp.c_fc.weight')!.data),
    );
    const list = await studio.invoke('models-list');
    expect(list.map((x) => x.key)).toContain('model:tiny-gpt-2');
    // a second import of the same name gets its own id
    const again = await studio.invoke('models-import', {
      path: path.join(sharedPath(TINY), 'model.safetensors'),
      name: 'Tiny GPT-2',
    });
    expect(again.key).toBe('model:tiny-gpt-2-2');
    expect(await studio.invoke('models-remove', { id: 'tiny-gpt-2-2' })).toEqual({ removed: true });
    expect((await studio.invoke('models-list')).map((x) => x.key)).not.toContain('model:tiny-gpt-2-2');
  });

  it('removes only folders it imported', async () => {
    fs.mkdirSync(path.join(home, 'models', 'hand-placed'), { recursive: true });
    fs.writeFileSync(path.join(home, 'models', 'hand-placed', 'model.safetensors'), 'x');
    await expect(studio.invoke('models-remove', { id: 'hand-placed' })).rejects.toThrow(
      /not a model imported by the studio/,
    );
    expect(fs.existsSync(path.join(home, 'models', 'hand-placed', 'model.safetensors'))).toBe(true);
    expect(await studio.invoke('models-remove', { id: 'never-there' })).toEqual({ removed: false });
    fs.rmSync(path.join(home, 'models', 'hand-placed'), { recursive: true });
  });

  it('refuses malformed weights with the file named, and leaves nothing behind', async () => {
    const bad = sharedPath('fixtures/bad-inputs/st_header_not_json.safetensors');
    const err = await studio.invoke('models-import', { path: bad }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StudioError);
    expect((err as StudioError).message).toContain('st_header_not_json.safetensors');
    expect(fs.readdirSync(path.join(home, 'models')).filter((n) => n.startsWith('.'))).toEqual([]);
    const missing = await studio.invoke('models-import', { path: path.join(home, 'nope.safetensors') }).then(
      () => null,
      (e: unknown) => e,
    );
    expect((missing as StudioError).code).toBe('FILE_NOT_FOUND');
  });

  it('streams a greedy continuation whose pieces add up to the text that core generate() gives', async () => {
    const prompt = 'The quick brown fox';
    const { genId, promptTokens } = await studio.invoke('generate-start', {
      target: { modelId: 'tiny-gpt-2' },
      prompt,
      temperature: 0,
      maxTokens: 24,
      seed: 1,
    });
    expect(promptTokens).toBe(1 + encode(prompt).length);
    const d = await waitDone(genId);
    expect(d.error).toBeUndefined();
    const streamed = tokens.filter((t) => t.genId === genId);
    expect(streamed.length).toBeGreaterThan(0);
    expect(streamed.map((t) => t.text).join('')).toBe(d.text);
    expect(d.tokens).toBeLessThanOrEqual(24);
    expect(d.tokensPerSec).toBeGreaterThan(0);

    const w = loadGpt2Weights(sharedPath(TINY));
    const model = await (await getEngine('auto')).createModel(w.config, w.tensors);
    try {
      const [ids] = await generate(model, [EOT, ...encode(prompt)], {
        temperature: 0,
        topK: 50,
        topP: 0.95,
        maxNewTokens: 24,
        numSequences: 1,
        seed: 1,
        stopTokens: [EOT],
      });
      expect(d.text).toBe(decode(ids!));
      expect(d.reason).toBe(ids!.length < 24 ? 'eot' : 'length');
    } finally {
      model.dispose();
    }
  });

  it('stops a generation on request and keeps what it generated', async () => {
    const { genId } = await studio.invoke('generate-start', {
      target: { modelId: 'tiny-gpt-2' },
      prompt: 'Once',
      temperature: 1,
      topK: 0,
      maxTokens: 100,
      seed: 3,
    });
    for (let i = 0; i < 400 && !tokens.some((t) => t.genId === genId); i++) await new Promise((r) => setTimeout(r, 5));
    await expect(studio.invoke('generate-stop', { genId })).resolves.toEqual({ stopped: true });
    const d = await waitDone(genId);
    expect(d.reason).toBe('stop');
    expect(d.tokens).toBeLessThan(100);
    expect(d.text).toBe(
      tokens
        .filter((t) => t.genId === genId)
        .map((t) => t.text)
        .join(''),
    );
    expect(await studio.invoke('generate-stop', { genId })).toEqual({ stopped: false });
  });

  it('queues a generation behind a running one without waiting for it; a queued one can be stopped', async () => {
    const first = await studio.invoke('generate-start', {
      target: { modelId: 'tiny-gpt-2' },
      prompt: 'A',
      temperature: 1,
      topK: 0,
      maxTokens: 100,
      seed: 5,
    });
    const second = await studio.invoke('generate-start', {
      target: { modelId: 'tiny-gpt-2' },
      prompt: 'B',
      maxTokens: 5,
    });
    await expect(studio.invoke('generate-start', { target: { runId: 'run-none' }, prompt: 'C' })).rejects.toThrow(
      /no checkpoint/,
    );
    expect(await studio.invoke('generate-stop', { genId: second.genId })).toEqual({ stopped: true });
    const d2 = await waitDone(second.genId);
    expect(d2).toMatchObject({ reason: 'stop', tokens: 0, text: '' });
    const third = await studio.invoke('generate-start', {
      target: { modelId: 'tiny-gpt-2' },
      prompt: 'B',
      temperature: 0,
      maxTokens: 5,
    });
    const d1 = await waitDone(first.genId);
    const d3 = await waitDone(third.genId);
    expect(d1.error).toBeUndefined();
    expect(d3.error).toBeUndefined();
    // the queued one ran after the first
    expect(done.findIndex((d) => d.genId === third.genId)).toBeGreaterThan(
      done.findIndex((d) => d.genId === first.genId),
    );
  });

  it('a generation whose model is still loading when the studio closes does not start', async () => {
    const other = new Studio({ home });
    const pending = other.invoke('generate-start', { target: { modelId: 'tiny-gpt-2' }, prompt: 'Late', maxTokens: 5 });
    await other.shutdown(1000);
    await expect(pending).rejects.toMatchObject({ code: 'CANCELLED' });
    const after = await other.invoke('generate-sample', {
      targets: [{ modelId: 'tiny-gpt-2' }],
      prompt: 'x',
      maxTokens: 2,
    });
    expect(after[0]!.error?.code).toBe('CANCELLED');
  });

  it('answers a conversation with the chat template', async () => {
    const { genId } = await studio.invoke('generate-start', {
      target: { modelId: 'tiny-gpt-2' },
      messages: [{ role: 'user', content: 'Hello there' }],
      temperature: 0,
      maxTokens: 16,
    });
    const d = await waitDone(genId);
    expect(d.error).toBeUndefined();
    expect(['eot', 'length']).toContain(d.reason);
    expect(d.text).not.toMatch(/\n\s*User:/);
  });

  it('samples the same prompt and seed across models (the gallery), with the error of a model that fails', async () => {
    const res = await studio.invoke('generate-sample', {
      targets: [{ modelId: 'tiny-gpt-2' }, { weightsPath: sharedPath(TINY) }, { modelId: 'not-there' }],
      prompt: 'In the beginning',
      seed: 7,
      maxTokens: 12,
      temperature: 0.9,
    });
    expect(res).toHaveLength(3);
    expect(res[0]!.error).toBeUndefined();
    expect(res[0]!.tokens).toBeGreaterThan(0);
    expect(res[1]!.text).toBe(res[0]!.text);
    expect(res[2]!.error?.code).toBe('NOT_FOUND');
  });

  it('refuses a request without a prompt, or with a bad setting, before loading anything', async () => {
    await expect(studio.invoke('generate-start', { target: { modelId: 'tiny-gpt-2' } })).rejects.toThrow(
      /prompt or messages/,
    );
    // the request's schema refuses it, and so does the service itself, with the value in words
    await expect(
      studio.invoke('generate-start', { target: { modelId: 'tiny-gpt-2' }, prompt: 'x', topP: 0 }),
    ).rejects.toThrow(/at topP/);
    await expect(studio.generation.start({ target: { modelId: 'tiny-gpt-2' }, prompt: 'x', topP: 0 })).rejects.toThrow(
      /top-p/,
    );
    await expect(studio.invoke('generate-start', { target: { modelId: 'nope' }, prompt: 'x' })).rejects.toThrow(
      /No imported model "nope"/,
    );
  });
});

describe('the end of a chat answer', () => {
  it('holds back a tail that may still become the next "User:" turn, and nothing else', () => {
    expect(turnStartAt('Hello there.')).toBe(12);
    expect(turnStartAt('Hello there.\n')).toBe(12);
    expect(turnStartAt('Hello there.\n\nUs')).toBe(12);
    expect(turnStartAt('Hello there.\n\nUser')).toBe(12);
    expect(turnStartAt('Hello there.\n \n User')).toBe(12);
    expect(turnStartAt('Hello there.\n\nUsed cars')).toBe('Hello there.\n\nUsed cars'.length);
    expect(turnStartAt('line one\nline two')).toBe('line one\nline two'.length);
    expect(turnStartAt('a\nb\n\nU')).toBe(3);
  });
});
