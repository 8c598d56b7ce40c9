/** What is refused before a run is created: a plan that cannot fit in memory, and values no run can use. */
import { describe, expect, it } from 'vitest';
import { checkRunConfig, type RunConfig } from '../src/shared/run-config';
import { checkMemoryFits } from '../src/node/runs/manager';
import { ErrorCode, StudioError } from '../src/shared/errors';

const GiB = 2 ** 30;

function parse(input: Record<string, unknown>): RunConfig {
  const r = checkRunConfig({ dataset: 'x', max_steps: 10, warmup_steps: 1, engine: 'native-cpu', ...input });
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.config;
}

function refusal(c: RunConfig, available: number): StudioError {
  try {
    checkMemoryFits(c, undefined, available, []);
  } catch (e) {
    return e as StudioError;
  }
  throw new Error('accepted');
}

describe('a run that cannot fit in memory is refused before it is created', () => {
  it('gpt2 at batch 64 on a 24 GiB machine: refused with the estimate and the largest batch that fits', () => {
    const e = refusal(
      parse({ model: { preset: 'gpt2' }, batch_size: 64, seq_len: 1024, total_batch_size: 524288 }),
      22 * GiB,
    );
    expect(e.code).toBe(ErrorCode.OUT_OF_MEMORY);
    expect(e.message).toMatch(/needs about [\d.]+ GiB of memory .* this machine has 22\.0 GiB available/);
    const fit = Number(/Lower batch_size to (\d+)/.exec(e.hint)![1]);
    expect(fit).toBeGreaterThan(0);
    expect(fit).toBeLessThan(64);
    // the suggestion fits, and the next larger divisor would not
    expect(() =>
      checkMemoryFits(
        parse({ model: { preset: 'gpt2' }, batch_size: fit, seq_len: 1024, total_batch_size: 524288 }),
        undefined,
        22 * GiB,
        [],
      ),
    ).not.toThrow();
  });

  it('gpt2-xl at batch 64 gets the same refusal; nano fits; a GPU run is judged elsewhere', () => {
    expect(
      refusal(
        parse({ model: { preset: 'gpt2-xl' }, batch_size: 64, seq_len: 1024, total_batch_size: 524288 }),
        22 * GiB,
      ).code,
    ).toBe(ErrorCode.OUT_OF_MEMORY);
    expect(() =>
      checkMemoryFits(
        parse({ model: { preset: 'nano' }, batch_size: 8, seq_len: 128, total_batch_size: 1024 }),
        undefined,
        22 * GiB,
        [],
      ),
    ).not.toThrow();
    expect(() =>
      checkMemoryFits(
        parse({
          model: { preset: 'gpt2' },
          batch_size: 64,
          seq_len: 1024,
          total_batch_size: 524288,
          engine: 'native-cuda',
        }),
        undefined,
        1 * GiB,
        [],
      ),
    ).not.toThrow();
  });
});

describe('values no run can use are refused at their field, with a bound', () => {
  const cases: [Record<string, unknown>, string, RegExp][] = [
    [{ model: { preset: 'nano', vocab_size: 1e9 } }, 'model.vocab_size', /<= 65536/],
    [{ model: { preset: 'nano', n_embd: 1e7 } }, 'model.n_embd', /<= 32768/],
    [{ model: { preset: 'nano', block_size: 1e8 } }, 'model.block_size', /<= 131072/],
    [{ model: { preset: 'nano', n_layer: 1e6 } }, 'model.n_layer', /<= 512/],
    [{ model: { preset: 'nano' }, seed: -1 }, 'seed', />= 0/],
    [{ model: { preset: 'nano' }, eval_iters: 1e9 }, 'eval_iters', /<= 100000/],
    [
      { model: { preset: 'nano' }, seq_len: 64, batch_size: 1, total_batch_size: 64, sample: { max_tokens: 5000 } },
      'sample.max_tokens',
      /no room for the prompt in the model's context of 256 tokens/,
    ],
  ];
  it.each(cases)('%j', (input, field, msg) => {
    const r = checkRunConfig({ dataset: 'x', max_steps: 10, warmup_steps: 1, ...input });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const e = r.errors.find((x) => x.field === field);
    expect(e, JSON.stringify(r.errors)).toBeDefined();
    expect(e!.message).toMatch(msg);
  });
});

describe('a full disk is named as such, whoever noticed it', () => {
  it("SQLite's SQLITE_FULL and SQLITE_IOERR_SHMSIZE, and ENOSPC, become DISK_FULL with the free-space hint", async () => {
    const { toPlainError } = await import('../src/shared/errors');
    const sqlite = Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
    const shm = Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR_SHMSIZE' });
    const enospc = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    for (const e of [sqlite, shm, enospc]) {
      const p = toPlainError(e);
      expect(p.code).toBe(ErrorCode.DISK_FULL);
      expect(p.hint).toMatch(/Free space on the disk that holds the workspace/);
    }
    expect(toPlainError(new Error('other')).code).toBe(ErrorCode.INTERNAL);
  });
});

describe('a GPU run is judged by the free memory CUDA reports', () => {
  it('refuses a model whose weights, gradients and AdamW state alone exceed the GPU; the flagship preset fits an 80 GB GPU', () => {
    const gpu = (free: number, input: Record<string, unknown>) => () =>
      checkMemoryFits(parse({ engine: 'native-cuda', ...input }), undefined, 1 * GiB, ['NVIDIA H100'], [free]);
    expect(
      gpu(79 * GiB, { model: { preset: 'gpt2' }, batch_size: 64, seq_len: 1024, total_batch_size: 524288 }),
    ).not.toThrow();
    expect(
      gpu(8 * GiB, { model: { preset: 'gpt2-xl' }, batch_size: 1, seq_len: 1024, total_batch_size: 1024 }),
    ).toThrow(
      /weights, gradients and AdamW state alone need about [\d.]+ GiB of GPU memory per rank .* the GPU has 8\.00 GiB free/,
    );
    // without an answer from CUDA there is nothing to judge by
    expect(() =>
      checkMemoryFits(
        parse({ model: { preset: 'gpt2-xl' }, engine: 'native-cuda' }),
        undefined,
        1 * GiB,
        [],
        undefined,
      ),
    ).not.toThrow();
  });
});
