/**
 * SFT: a JSONL of chat examples becomes a masked dataset, and a run initialized from GPT-2 weights fine-tunes on
 * it with the same trainer, counting only the assistant's tokens.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli/main';
import { decode, EOT } from '../src/core/tokenizer';
import { readSftSplit, sftSource } from '../src/node/datasets/sft';
import { Studio } from '../src/node/studio';
import { hasFixture, sharedPath } from './shared';

const PAIRS = [
  ['What color is the sky?', 'The sky is blue.'],
  ['What is two plus two?', 'Two plus two is four.'],
  ['Name a fruit.', 'An apple is a fruit.'],
  ['Say hello.', 'Hello there!'],
];

describe.skipIf(!hasFixture('fixtures/gpt2-tiny/model.safetensors'))('SFT', () => {
  let home: string;
  let file: string;

  beforeAll(() => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-sft-'));
    file = path.join(home, 'chat.jsonl');
    const lines: string[] = [];
    for (let i = 0; i < 40; i++) {
      const [p, r] = PAIRS[i % PAIRS.length]!;
      lines.push(
        i % 2
          ? JSON.stringify({ prompt: p, response: r })
          : JSON.stringify({
              messages: [
                { role: 'user', content: p },
                { role: 'assistant', content: r },
              ],
            }),
      );
    }
    lines.splice(3, 0, '{"prompt": "no response"}');
    fs.writeFileSync(file, lines.join('\n') + '\n');
  });
  afterAll(() => fs.rmSync(home, { recursive: true, force: true }));

  it('prepares a masked dataset, reporting the malformed line', async () => {
    let out = '';
    let err = '';
    expect(
      await main(['prepare', 'sft', '--file', file, '--name', 'chat', '--home', home], {
        out: (s) => (out += s),
        err: (s) => (err += s),
      }),
    ).toBe(0);
    expect(out).toMatch(/^chat: 36 train \+ 4 val conversations/);
    expect(err).toContain('line 4');
    const train = readSftSplit(home, 'chat', 'train')!;
    const b = sftSource(train, 2, 32).next();
    // every counted target is part of a response or the closing <|endoftext|>
    const counted = Array.from(b.targets).filter((_, i) => b.mask![i] === 1);
    expect(counted.length).toBeGreaterThan(0);
    const text = decode(counted.filter((t) => t !== EOT));
    for (const w of text.split(/\s+/).filter(Boolean))
      expect(
        PAIRS.some(([, r]) => r!.includes(w)),
        w,
      ).toBe(true);
    const ignored = decode(Array.from(b.targets).filter((_, i) => b.mask![i] === 0));
    expect(ignored).toContain('User:');
  });

  it('fine-tunes GPT-2 weights on it: the masked loss falls', async () => {
    const studio = new Studio({ home });
    try {
      const config = {
        model: { n_layer: 2, n_head: 2, n_embd: 32, block_size: 128 },
        init_from: 'weights',
        init_path: sharedPath('fixtures/gpt2-tiny'),
        dataset: 'chat',
        sft: true,
        total_batch_size: 256,
        batch_size: 4,
        seq_len: 64,
        max_steps: 30,
        warmup_steps: 2,
        max_lr: 3e-3,
        eval_interval: 0,
        hellaswag_interval: 0,
        sample_interval: 0,
        checkpoint_interval: 0,
      };
      const errs = await studio.invoke('config-validate', { config: { ...config, sft: false } });
      expect(errs.find((e) => e.field === 'sft')?.message).toMatch(/is an SFT dataset/);
      const losses: number[] = [];
      const un = studio.on('run-step', (e) => {
        losses.push(e.loss);
      });
      const run = await studio.invoke('runs-create', { config });
      const end = await studio.runs.wait(run.id);
      un();
      expect(end.status, JSON.stringify(end.error)).toBe('done');
      expect(losses).toHaveLength(30);
      const first = losses[0]!;
      const last = losses.slice(-5).reduce((a, b) => a + b, 0) / 5;
      expect(first).toBeGreaterThan(10);
      expect(last).toBeLessThan(first - 2);
    } finally {
      await studio.shutdown(5000);
    }
  });
});
