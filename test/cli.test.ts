import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readSafetensors, writeSafetensors } from '../src/node/models/safetensors';
import { describe, expect, it } from 'vitest';
import { main } from '../src/cli/main';
import { hasFixture, repoRoot, sharedPath } from './shared';

async function run(argv: string[]) {
  let out = '';
  let err = '';
  const code = await main(argv, { out: (s) => (out += s), err: (s) => (err += s) });
  return { code, out, err };
}

const tiny = sharedPath('fixtures/gpt2-tiny');
const present = hasFixture('fixtures/gpt2-tiny/expected.json');

describe.skipIf(!present)('gpt2-studio CLI on the fixture model', () => {
  const exp = present ? JSON.parse(readFileSync(path.join(tiny, 'expected.json'), 'utf8')) : null;

  it('score --tokens <input_ids row 0> --json reproduces per_token_loss row 0 within 1e-4 (real bin)', () => {
    const row: number[] = exp.forward.input_ids[0];
    const stdout = execFileSync(
      process.execPath,
      [path.join(repoRoot, 'bin/gpt2-studio.mjs'), 'score', '--weights', tiny, '--tokens', row.join(','), '--json'],
      { encoding: 'utf8' },
    );
    const r = JSON.parse(stdout);
    expect(r.tokens).toEqual(row);
    expect(r.losses.length).toBe(row.length - 1);
    r.losses.forEach((l: number, i: number) =>
      expect(Math.abs(l - exp.forward.per_token_loss[0][i])).toBeLessThan(1e-4),
    );
    const mean = r.losses.reduce((s: number, x: number) => s + x, 0) / r.losses.length;
    expect(r.meanLoss).toBeCloseTo(mean, 6);
  });

  it('a file with the transformer. prefix and an explicit lm_head.weight scores the same, unchanged', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'gpt2-variant-'));
    try {
      const raw = readSafetensors(path.join(tiny, 'model.safetensors'));
      const variant = new Map(
        [...raw].filter(([n]) => !n.endsWith('.attn.bias')).map(([n, t]) => [`transformer.${n}`, t]),
      );
      variant.set('lm_head.weight', raw.get('wte.weight')!);
      writeSafetensors(path.join(dir, 'model.safetensors'), variant);
      writeFileSync(path.join(dir, 'config.json'), readFileSync(path.join(tiny, 'config.json')));
      const row: number[] = exp.forward.input_ids[1];
      const a = JSON.parse((await run(['score', '--weights', tiny, '--tokens', row.join(','), '--json'])).out);
      const b = JSON.parse((await run(['score', '--weights', dir, '--tokens', row.join(','), '--json'])).out);
      expect(b.losses).toEqual(a.losses);
      b.losses.forEach((l: number, i: number) =>
        expect(Math.abs(l - exp.forward.per_token_loss[1][i])).toBeLessThan(1e-4),
      );
      // another head count: the same tensors read as 4 heads of 8 make another (valid) model
      writeFileSync(
        path.join(dir, 'config.json'),
        JSON.stringify({ ...JSON.parse(readFileSync(path.join(tiny, 'config.json'), 'utf8')), n_head: 4 }),
      );
      const info = await run(['info', '--weights', dir]);
      expect(info.out).toContain('n_head 4');
      const c = JSON.parse((await run(['score', '--weights', dir, '--tokens', row.join(','), '--json'])).out);
      expect(c.losses.length).toBe(row.length - 1);
      expect(c.losses).not.toEqual(a.losses);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('score --text prints a table and a mean', async () => {
    const r = await run(['score', '--weights', tiny, '--text', 'Hello world, this is a test']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/mean loss 10\.\d+ \(perplexity/);
  });

  it('info prints the config, parameter count and decay groups', async () => {
    const r = await run(['info', '--weights', tiny]);
    expect(r.code).toBe(0);
    expect(r.out).toContain('n_layer 2, n_head 2, n_embd 32');
    expect(r.out).toContain('num decayed parameter tensors: 10, with 1,636,896 parameters');
    expect(r.out).toContain('num non-decayed parameter tensors: 18, with 896 parameters');
  });

  it('sample streams five continuations, reproducibly for a seed', async () => {
    const a = await run(['sample', '--weights', tiny, '--num', '5', '--max-new-tokens', '12', '--seed', '7']);
    expect(a.code).toBe(0);
    const lines = a.out.trim().split('\n');
    expect(lines.length).toBe(5);
    for (const l of lines) expect(l.startsWith("> Hello, I'm a language model,")).toBe(true);
    const j1 = JSON.parse(
      (await run(['sample', '--weights', tiny, '--num', '2', '--max-new-tokens', '12', '--seed', '7', '--json'])).out,
    );
    expect(j1.samples.length).toBe(2);
    expect(j1.samples[0].tokens.length).toBe(12);
    expect(j1.samples[0].text).toBe(lines[0]!.slice(2));
    // each sample says why it ended
    expect(j1.samples.map((x: { reason: string }) => x.reason)).toEqual(['length', 'length']);
    expect(a.err).toContain('(sample 1: max tokens reached)');
  });

  it('sample: --max-new-tokens above the context is refused; within it, the context ends a sample as "context full"', async () => {
    const over = await run(['sample', '--weights', tiny, '--max-new-tokens', '500']);
    expect(over.code).toBe(2);
    expect(over.err).toContain(
      "error: --max-new-tokens 500 is more than the model's context of 128 tokens; lower it to 128 or less.",
    );
    const prompt = "Hello, I'm a language model,"; // 8 tokens: 120 more fit in the context of 128
    const full = await run([
      'sample',
      '--weights',
      tiny,
      '--prompt',
      prompt,
      '--num',
      '1',
      '--max-new-tokens',
      '128',
      '--seed',
      '3',
      '--json',
    ]);
    expect(full.code).toBe(0);
    const j = JSON.parse(full.out);
    expect(j.contextTokens).toBe(128);
    expect(j.samples[0]).toMatchObject({ reason: 'context' });
    expect(j.samples[0].tokens.length).toBe(120);
    const text = await run([
      'sample',
      '--weights',
      tiny,
      '--prompt',
      prompt,
      '--num',
      '1',
      '--max-new-tokens',
      '128',
      '--seed',
      '3',
    ]);
    expect(text.err).toContain('each sample ends at 120 new tokens at most (context full)');
    expect(text.err).toContain('(sample 1: context full (128 tokens))');
  });

  it('rejects bad arguments with the value and a hint', async () => {
    const r = await run(['sample', '--weights', tiny, '--top-p', '1.5']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('--top-p 1.5 is not valid');
    expect(r.err).toContain('hint:');
    const t = await run(['score', '--weights', tiny, '--tokens', '1,x,3']);
    expect(t.err).toContain('--tokens item 2 ("x")');
    const m = await run(['score', '--weights', '/nonexistent/model.safetensors', '--text', 'a b']);
    expect(m.code).toBe(1);
    expect(m.err).toContain('/nonexistent');
  });
});

describe('gpt2-studio CLI basics', () => {
  it('prints usage, and refuses an unknown command', async () => {
    expect((await run(['--help'])).out).toContain('gpt2-studio sample --weights W');
    const r = await run(['frobnicate']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('Unknown command "frobnicate"');
  });

  it('lists the engines with tfjs available', async () => {
    const r = await run(['engines', '--json']);
    const list = JSON.parse(r.out);
    expect(list.find((e: { name: string }) => e.name === 'tfjs').available).toBe(true);
  });

  it.skipIf(!hasFixture('fixtures/bad-inputs'))('names the file of a corrupted safetensors header', () => {
    const bad = sharedPath('fixtures/bad-inputs/st_header_not_json.safetensors');
    const p = spawnSync(process.execPath, [path.join(repoRoot, 'bin/gpt2-studio.mjs'), 'info', '--weights', bad], {
      encoding: 'utf8',
    });
    expect(p.status).toBe(1);
    expect(p.stderr).toContain('st_header_not_json.safetensors');
  });
});
