import { describe, expect, it } from 'vitest';
import { checkRunConfig, gradAccumSteps, setConfigValue, totalSteps } from './run-config';

const ok = { dataset: 'tinyshakespeare', max_steps: 100 };

describe('run config', () => {
  it("defaults to build-nanogpt's gpt2 recipe", () => {
    const r = checkRunConfig({ dataset: 'fineweb', max_steps: 19073 });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const c = r.config;
    expect(c).toMatchObject({
      total_batch_size: 524288,
      batch_size: 64,
      seq_len: 1024,
      max_lr: 6e-4,
      min_lr_ratio: 0.1,
      warmup_steps: 715,
      weight_decay: 0.1,
      beta1: 0.9,
      beta2: 0.95,
      eps: 1e-8,
      grad_clip: 1,
      eval_interval: 250,
      init_from: 'scratch',
    });
    expect(c.model.preset).toBe('gpt2');
    expect(gradAccumSteps(c)).toBe(8);
    expect(totalSteps(c)).toBe(19073);
  });

  it('computes in bf16 on native-cuda and fp32 elsewhere unless told: precision auto, valid with every engine', () => {
    for (const engine of ['auto', 'tfjs', 'native-cpu', 'native-cuda', 'native-webgpu']) {
      const r = checkRunConfig({ dataset: 'fineweb', max_steps: 1000, engine });
      expect(r.ok && r.config.precision, JSON.stringify(r)).toBe('auto');
    }
  });

  it('takes fp16 on native-webgpu only, and tf32 or bf16 on native-cuda only, naming the field', () => {
    const check = (engine: string, precision: string) =>
      checkRunConfig({ dataset: 'fineweb', max_steps: 1000, engine, precision });
    expect(check('native-webgpu', 'fp16').ok).toBe(true);
    expect(check('native-webgpu', 'fp32').ok).toBe(true);
    expect(check('native-cuda', 'bf16').ok).toBe(true);
    for (const engine of ['auto', 'native-cpu', 'native-cuda', 'tfjs']) {
      const r = check(engine, 'fp16');
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.errors[0]).toMatchObject({ field: 'precision', message: /fp16 needs engine native-webgpu/ });
    }
    const r = check('native-webgpu', 'bf16');
    expect(r.ok).toBe(false);
    if (!r.ok)
      expect(r.errors[0]!.message).toMatch(/needs the native-cuda engine; native-webgpu computes in fp32 or fp16/);
  });

  it('turns a token budget into steps', () => {
    const r = checkRunConfig({ dataset: 'd', token_budget: 10_000_000_000 });
    expect(r.ok && totalSteps(r.config)).toBe(19074);
  });

  const bad: [string, Record<string, unknown>, string, RegExp][] = [
    [
      'a non-divisible batch',
      { total_batch_size: 500000 },
      'total_batch_size',
      /nearest valid values are 458752 and 524288/,
    ],
    [
      'a batch smaller than one micro-step',
      { total_batch_size: 1000, batch_size: 1, seq_len: 1024 },
      'total_batch_size',
      /the nearest valid value is 1024$/,
    ],
    [
      'n_embd % n_head',
      { model: { preset: 'gpt2', n_head: 7 } },
      'model.n_head',
      /768 is not divisible by model.n_head = 7/,
    ],
    [
      'T > block_size',
      { model: { preset: 'nano' }, seq_len: 512, batch_size: 4, total_batch_size: 2048 },
      'seq_len',
      /512 exceeds the model's block_size = 256/,
    ],
    ['a negative lr', { max_lr: -1 }, 'max_lr', /> 0/],
    ['an unknown preset', { model: { preset: 'gpt5' } }, 'model.preset', /one of nano, micro/],
    ['a missing shape without preset', { model: { n_layer: 2, n_head: 2 } }, 'model.n_embd', /required/],
    ['no length', { max_steps: undefined }, 'max_steps', /max_steps or token_budget/],
    ['both lengths', { token_budget: 1000 }, 'token_budget', /not both/],
    ['warmup beyond the run', { warmup_steps: 200 }, 'warmup_steps', /more than max_steps/],
    ['beta2 of 1', { beta2: 1 }, 'beta2', /\[0, 1\)/],
    ['a fractional batch', { batch_size: 2.5 }, 'batch_size', /integer/],
    ['weights without a path', { init_from: 'weights' }, 'init_path', /needs init_path/],
    ['an unknown engine', { engine: 'metal' }, 'engine', /auto, tfjs/],
    ['bf16 on tfjs', { engine: 'tfjs', precision: 'bf16' }, 'precision', /native-cuda/],
    ['an unknown field', { learning_rate: 1e-3 }, '(config)', /unknown field\(s\): learning_rate/],
    ['an empty dataset', { dataset: '' }, 'dataset', /empty/],
    [
      'a padded vocab below the vocab',
      { model: { preset: 'nano', padded_vocab_size: 100 } },
      'model.padded_vocab_size',
      /smaller/,
    ],
    ['a min lr ratio above 1', { min_lr_ratio: 2 }, 'min_lr_ratio', /<= 1/],
    ['a string where a number goes', { eval_iters: 'ten' }, 'eval_iters', /number/],
  ];
  it.each(bad)('rejects %s, naming the field', (_what, patch, field, msg) => {
    const r = checkRunConfig({ ...ok, ...patch });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const e = r.errors.find((x) => x.field === field);
    expect(e, JSON.stringify(r.errors)).toBeDefined();
    expect(e!.message).toMatch(msg);
  });

  it('sets dotted keys with JSON values from --set', () => {
    const c: Record<string, unknown> = { model: { preset: 'nano' } };
    setConfigValue(c, 'model.n_layer', '2');
    setConfigValue(c, 'dataset', 'shakespeare');
    setConfigValue(c, 'guard.enabled', 'false');
    expect(c).toEqual({ model: { preset: 'nano', n_layer: 2 }, dataset: 'shakespeare', guard: { enabled: false } });
  });
});
