/**
 * The presets a new user starts from, run as that user runs them: the real CLI, a fresh workspace, to the end.
 * nano trains its 300 steps here (about 1.5 minutes on native-cpu); the bound on its final val loss was measured:
 * 1.0999 at step 299 with `train --preset nano` on this code (native-cpu, 2 threads), so 1.3 leaves room for
 * another engine or BLAS without letting a broken run through.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkRunConfig } from '../src/shared/run-config';
import { listPresets } from '../src/node/runs/presets';
import { getSource } from '../src/node/datasets/sources';
import { hasFixture, repoRoot, sharedPath } from './shared';

const bin = path.join(repoRoot, 'bin/gpt2-studio.mjs');

/** The real command line, in its own process, from `cwd`. */
function cli(args: string[], cwd = repoRoot): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [bin, ...args],
      {
        cwd,
        encoding: 'utf8',
        maxBuffer: 64 << 20,
        timeout: 15 * 60_000,
        env: { ...process.env, GPT2_STUDIO_HOME: '' },
      },
      (e, out, err) => {
        resolve({ code: e ? (typeof e.code === 'number' ? e.code : 1) : 0, out, err });
      },
    );
  });
}

interface RunJson {
  id: string;
  status: string;
  engine: string;
  bestValLoss: number | null;
  error: unknown;
  config: Record<string, unknown>;
  attempts: Array<{ engine: string; model: { n_layer: number; params: number }; host: { cores: number } }>;
}

async function runs(home: string): Promise<RunJson[]> {
  const r = await cli(['runs', '--home', home, '--json']);
  expect(r.code, r.err).toBe(0);
  return JSON.parse(r.out) as RunJson[];
}

describe('every preset file', () => {
  it('validates, and names a dataset source that exists (or an SFT dataset the user prepares)', () => {
    const presets = listPresets();
    expect(presets.map((p) => p.name).sort()).toEqual(['gpt2-124m', 'gpt2-medium', 'micro', 'nano', 'sft']);
    for (const p of presets) {
      const r = checkRunConfig(p.config);
      expect(r.ok, `${p.name}: ${JSON.stringify(!r.ok && r.errors)}`).toBe(true);
      if (!r.ok) continue;
      if (r.config.sft) {
        // the fine-tune takes its shape from the weights it starts from, so that any imported GPT-2 fits
        expect((p.config as { model?: unknown }).model, p.name).toBeUndefined();
      } else {
        expect(getSource(r.config.dataset).info.id, p.name).toBe(r.config.dataset);
      }
    }
  });
});

describe('nano on the builtin stories, from a fresh workspace, to its end', () => {
  let home: string;
  beforeAll(() => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-nano-'));
  });
  afterAll(() => fs.rmSync(home, { recursive: true, force: true }));

  it(
    'prepare builtin && train --preset nano (the guard judging spikes too) ends done, below the measured bound',
    async () => {
      const prep = await cli(['prepare', 'builtin', '--home', home]);
      expect(prep.code, prep.err).toBe(0);
      // the guard's strictest setting must not touch a run that trains cleanly
      const t = await cli(['train', '--preset', 'nano', '--home', home, '--set', 'guard.enabled=true']);
      expect(t.code, t.err + t.out.slice(-2000)).toBe(0);
      expect(t.out).toMatch(/step {3}299 \| loss/);
      expect(t.out + t.err).not.toMatch(/guard:/);
      const run = (await runs(home))[0]!;
      expect(run.status).toBe('done');
      expect(run.bestValLoss).toBeLessThan(1.3);
      // what ran is recorded: the engine that trained, never "auto"
      expect(run.engine).not.toBe('auto');
      expect(run.attempts).toHaveLength(1);
      expect(run.attempts[0]!.engine).toBe(run.engine);
      expect(run.attempts[0]!.model).toMatchObject({ n_layer: 4, params: 7_265_024 });
      expect(run.attempts[0]!.host.cores).toBeGreaterThan(0);
    },
    15 * 60_000,
  );

  it(
    'the small-batch nano that once stopped at step 54 (batch 2 x 64, 128 tokens a step) ends done',
    async () => {
      const t = await cli([
        'train',
        '--preset',
        'nano',
        '--home',
        home,
        '--set',
        'guard.enabled=true',
        '--set',
        'batch_size=2',
        '--set',
        'seq_len=64',
        '--set',
        'total_batch_size=128',
        '--json',
      ]);
      expect(t.code, t.err).toBe(0);
      const runId = JSON.parse(t.out.split('\n')[0]!).runId as string;
      const run = (await runs(home)).find((r) => r.id === runId)!;
      expect(run.status).toBe('done');
      expect(run.bestValLoss).toBeLessThan(3);
    },
    15 * 60_000,
  );
});

describe.skipIf(!hasFixture('fixtures/gpt2-tiny/model.safetensors'))(
  'the sft preset from the command line, from a folder that is not the workspace',
  () => {
    let home: string;
    let elsewhere: string;
    beforeAll(() => {
      home = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-sft-home-'));
      elsewhere = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-sft-cwd-'));
      const pairs = [
        ['What color is the sky?', 'The sky is blue.'],
        ['What is two plus two?', 'Two plus two is four.'],
        ['Name a fruit.', 'An apple is a fruit.'],
        ['Say hello.', 'Hello there!'],
      ];
      const lines = Array.from({ length: 40 }, (_, i) =>
        JSON.stringify({ prompt: pairs[i % 4]![0], response: pairs[i % 4]![1] }),
      );
      fs.writeFileSync(path.join(elsewhere, 'chat.jsonl'), lines.join('\n') + '\n');
    });
    afterAll(() => {
      fs.rmSync(home, { recursive: true, force: true });
      fs.rmSync(elsewhere, { recursive: true, force: true });
    });

    const sets = [
      '--set',
      'seq_len=64',
      '--set',
      'batch_size=4',
      '--set',
      'total_batch_size=256',
      '--set',
      'max_steps=40',
      '--set',
      'max_lr=0.003',
      '--set',
      'eval_interval=10',
      '--set',
      'sample_interval=20',
      '--set',
      'checkpoint_interval=0',
      '--set',
      'sample.prompt=User: Say hello.\n\nAssistant:',
    ];

    it(
      "takes init_path=models/tiny in the workspace, trains the weights' shape, and its samples stop at the answer's end",
      async () => {
        expect(
          (await cli(['import', sharedPath('fixtures/gpt2-tiny'), '--name', 'tiny', '--home', home], elsewhere)).code,
        ).toBe(0);
        const prep = await cli(['prepare', 'sft', '--file', 'chat.jsonl', '--name', 'chat', '--home', home], elsewhere);
        expect(prep.code, prep.err).toBe(0);
        const t = await cli(
          ['train', '--preset', 'sft', '--home', home, '--set', 'init_path=models/tiny', ...sets, '--json'],
          elsewhere,
        );
        expect(t.code, t.err + t.out.slice(-1500)).toBe(0);
        const events = t.out
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as Record<string, unknown>);
        const runId = events[0]!.runId as string;
        const run = (await runs(home)).find((r) => r.id === runId)!;
        expect(run.status).toBe('done');
        // the stored config names the resolved path, and the shape that trained is the weights'
        expect(run.config.init_path).toBe(path.join(home, 'models', 'tiny'));
        expect(run.attempts[0]!.model).toMatchObject({ n_layer: 2, params: 1_639_296 });
        const vals = events
          .filter((e) => e.event === 'run-eval' && e.name === 'val/loss')
          .map((e) => e.value as number);
        expect(vals.length).toBeGreaterThan(2);
        expect(vals[vals.length - 1]).toBeLessThan(vals[0]! - 2);
        const samples = events.filter((e) => e.event === 'run-sample').flatMap((e) => e.samples as string[]);
        expect(samples.length).toBeGreaterThan(0);
        for (const s of samples) {
          expect(s).not.toContain('<|endoftext|>');
          expect(s.slice('User: Say hello.\n\nAssistant:'.length)).not.toMatch(/\nUser:/);
        }
      },
      10 * 60_000,
    );

    it('refuses a model shape beside weights of another shape, naming both', async () => {
      const t = await cli(
        [
          'train',
          '--preset',
          'sft',
          '--home',
          home,
          '--set',
          'init_path=models/tiny',
          '--set',
          'model.preset=nano',
          ...sets,
        ],
        elsewhere,
      );
      expect(t.code).not.toBe(0);
      expect(t.err).toMatch(
        /model\.preset nano \(n_layer 4, n_head 4, n_embd 128, block_size 256\), but the init weights have n_layer 2, n_head 2, n_embd 32, block_size 128/,
      );
    }, 120_000);
  },
);
