/**
 * The run config: one typed object with commented defaults (build-nanogpt's for gpt2), validated with zod at
 * every boundary. Keys are snake_case, as in the JSON files users write and in build-nanogpt.
 */
import { z } from 'zod';
import { MODEL_PRESETS, MODEL_PRESET_NAMES } from './model-presets';

/** build-nanogpt's warmup for gpt2 (124M) */
export const DEFAULT_WARMUP_STEPS = 715;

const posInt = (what: string) =>
  z
    .number({ error: `${what} must be a number` })
    .int(`${what} must be an integer`)
    .positive(`${what} must be > 0`);
const nonNegInt = (what: string) =>
  z
    .number({ error: `${what} must be a number` })
    .int(`${what} must be an integer`)
    .min(0, `${what} must be >= 0`);
const unit = (what: string) =>
  z
    .number({ error: `${what} must be a number` })
    .min(0, `${what} must be >= 0`)
    .max(1, `${what} must be <= 1`);

export const modelSchema = z
  .object({
    /** a shape preset; the explicit fields below override it */
    preset: z
      .enum(MODEL_PRESET_NAMES, { error: `model.preset must be one of ${MODEL_PRESET_NAMES.join(', ')}` })
      .optional(),
    // upper bounds far above GPT-2 XL (48 layers, 25 heads, 1600 wide, 1024 context), so that a typo is an error at
    // the field instead of an allocation that fails (or eats the machine's memory) in the engine
    n_layer: posInt('model.n_layer').max(512, 'model.n_layer must be <= 512 (GPT-2 XL has 48)').optional(),
    n_head: posInt('model.n_head').max(512, 'model.n_head must be <= 512 (GPT-2 XL has 25)').optional(),
    n_embd: posInt('model.n_embd').max(32768, 'model.n_embd must be <= 32768 (GPT-2 XL is 1600 wide)').optional(),
    /** context length (rows of wpe) */
    block_size: posInt('model.block_size')
      .max(131072, 'model.block_size must be <= 131072 (GPT-2 has 1024)')
      .optional(),
    /** 50257 for GPT-2's BPE; shards store uint16 token ids, so at most 65536 */
    vocab_size: posInt('model.vocab_size')
      .max(65536, 'model.vocab_size must be <= 65536 (shards hold 16-bit token ids; GPT-2 has 50257)')
      .default(50257),
    /** rows of wte; default: vocab_size rounded up to a multiple of 64 (50304) */
    padded_vocab_size: posInt('model.padded_vocab_size')
      .max(1 << 20, 'model.padded_vocab_size must be <= 1048576 (GPT-2 pads to 50304)')
      .optional(),
  })
  .strict();

export const sampleSchema = z
  .object({
    prompt: z.string().default("Hello, I'm a language model,"),
    count: posInt('sample.count').max(32, 'sample.count must be <= 32').default(4),
    max_tokens: posInt('sample.max_tokens').default(32),
    top_k: nonNegInt('sample.top_k').default(50),
    temperature: z.number().min(0, 'sample.temperature must be >= 0').default(1),
  })
  .strict();

export const guardSchema = z
  .object({
    /**
     * judge loss spikes: skip an update whose loss is more than z_threshold robust standard deviations above the
     * median of the recent losses. Off by default, as in llm.c: clipping bounds every step, and a NaN or Inf is
     * always caught (skipped, then rolled back) whether this is on or not.
     */
    enabled: z.boolean().default(false),
    /** robust z-score (median and MAD of the window) above which a loss is a spike */
    z_threshold: z.number().positive('guard.z_threshold must be > 0').default(6),
    /** accepted steps of history before spikes are judged */
    warmup: nonNegInt('guard.warmup').default(20),
    /** recent accepted losses the baseline is taken over */
    window: posInt('guard.window').min(5, 'guard.window must be >= 5').default(50),
    /** skips in a row after which the guard rolls back to its last snapshot (never a failure by itself) */
    max_consecutive_skips: posInt('guard.max_consecutive_skips').default(3),
    /** rollbacks in a row a NaN or Inf may survive; the run fails after that, saying what was tried */
    max_rollbacks: nonNegInt('guard.max_rollbacks').default(2),
    /** steps between the in-memory snapshots a rollback restores (weights and optimizer state); 0: none */
    snapshot_interval: nonNegInt('guard.snapshot_interval').default(100),
  })
  .strict();

const runConfigBase = z
  .object({
    name: z.string().max(200, 'name must be at most 200 characters').optional(),
    model: modelSchema.default({ preset: 'gpt2', vocab_size: 50257 }),
    /** scratch: GPT-2 init from `seed`; weights: a .safetensors file or folder; checkpoint: a checkpoint folder */
    init_from: z
      .enum(['scratch', 'weights', 'checkpoint'], { error: 'init_from must be scratch, weights or checkpoint' })
      .default('scratch'),
    /** the file or folder for init_from weights / checkpoint; a relative path is taken in the workspace */
    init_path: z.string().optional(),
    /** a dataset id of the workspace */
    dataset: z.string({ error: 'dataset must be a dataset id' }).min(1, 'dataset must not be empty'),
    /** SFT: the dataset holds prompt/response pairs and only response tokens count in the loss */
    sft: z.boolean().default(false),
    /** tokens per optimizer step (2**19 = 524,288 in build-nanogpt) */
    total_batch_size: posInt('total_batch_size').default(524288),
    /** micro-batch rows B */
    batch_size: posInt('batch_size').default(64),
    /** sequence length T */
    seq_len: posInt('seq_len').default(1024),
    /** optimizer steps (19,073 = 10B tokens / 2**19); or give token_budget instead */
    max_steps: posInt('max_steps').optional(),
    token_budget: posInt('token_budget').optional(),
    max_lr: z
      .number({ error: 'max_lr must be a number' })
      .positive('max_lr must be > 0')
      .max(1, 'max_lr must be <= 1')
      .default(6e-4),
    min_lr_ratio: unit('min_lr_ratio').default(0.1),
    warmup_steps: nonNegInt('warmup_steps').default(DEFAULT_WARMUP_STEPS),
    weight_decay: z.number().min(0, 'weight_decay must be >= 0').default(0.1),
    beta1: z.number().min(0, 'beta1 must be in [0, 1)').lt(1, 'beta1 must be in [0, 1)').default(0.9),
    beta2: z.number().min(0, 'beta2 must be in [0, 1)').lt(1, 'beta2 must be in [0, 1)').default(0.95),
    eps: z.number().positive('eps must be > 0').default(1e-8),
    /** global-norm clipping; 0 disables it */
    grad_clip: z.number().min(0, 'grad_clip must be >= 0').default(1.0),
    /** evaluate val loss every N steps (and at the last step); 0 disables */
    eval_interval: nonNegInt('eval_interval').default(250),
    /** val micro-batches per evaluation */
    eval_iters: posInt('eval_iters')
      .max(100_000, 'eval_iters must be <= 100000 (each is one micro-batch of the val split; build-nanogpt uses 20)')
      .default(20),
    hellaswag_interval: nonNegInt('hellaswag_interval').default(250),
    /** examples per HellaSwag evaluation; absent = the whole split */
    hellaswag_limit: posInt('hellaswag_limit').optional(),
    sample_interval: nonNegInt('sample_interval').default(250),
    sample: sampleSchema.default({
      prompt: "Hello, I'm a language model,",
      count: 4,
      max_tokens: 32,
      top_k: 50,
      temperature: 1,
    }),
    checkpoint_interval: nonNegInt('checkpoint_interval').default(5000),
    /** checkpoints kept (older ones are deleted); 0 keeps all */
    keep_last: nonNegInt('keep_last').default(3),
    seed: z
      .number({ error: 'seed must be a number' })
      .int('seed must be an integer')
      .min(0, 'seed must be >= 0')
      .max(2 ** 32 - 1, 'seed must be < 2^32')
      .default(1337),
    engine: z
      .enum(['auto', 'tfjs', 'native-cpu', 'native-cuda', 'native-webgpu'], {
        error: 'engine must be auto, tfjs, native-cpu, native-cuda or native-webgpu',
      })
      .default('auto'),
    /**
     * matmul precision: auto = bf16 on native-cuda (as build-nanogpt's autocast), fp32 on the other engines; tf32 and
     * bf16 are native-cuda's, fp16 (f16 operands, fp32 sums) native-webgpu's on an adapter with shader-f16
     */
    precision: z
      .enum(['auto', 'fp32', 'bf16', 'tf32', 'fp16'], { error: 'precision must be auto, fp32, bf16, tf32 or fp16' })
      .default('auto'),
    /** data-parallel processes (GPUs) */
    world_size: posInt('world_size').max(64, { error: 'world_size must be at most 64 processes' }).default(1),
    /** shuffle shard order and document-aligned chunks each epoch */
    shuffle: z.boolean().default(false),
    guard: guardSchema.default({
      enabled: false,
      z_threshold: 6,
      warmup: 20,
      window: 50,
      max_consecutive_skips: 3,
      max_rollbacks: 2,
      snapshot_interval: 100,
    }),
  })
  .strict();

/** The model shape: the preset merged with the explicit fields. */
export function resolveModelShape(m: z.infer<typeof modelSchema>) {
  const base = m.preset ? MODEL_PRESETS[m.preset] : undefined;
  return {
    n_layer: m.n_layer ?? base?.nLayer,
    n_head: m.n_head ?? base?.nHead,
    n_embd: m.n_embd ?? base?.nEmbd,
    block_size: m.block_size ?? base?.blockSize,
    vocab_size: m.vocab_size,
    padded_vocab_size: m.padded_vocab_size ?? Math.ceil(m.vocab_size / 64) * 64,
  };
}

/** The nearest multiples of `unit` below and above `x` (the lower one at least `unit`). */
function nearestMultiples(x: number, unit: number): [number, number] {
  const lo = Math.max(unit, Math.floor(x / unit) * unit);
  return [lo, Math.ceil(x / unit) * unit];
}

export const runConfigSchema = runConfigBase.superRefine((c, ctx) => {
  const shape = resolveModelShape(c.model);
  for (const k of ['n_layer', 'n_head', 'n_embd', 'block_size'] as const) {
    if (shape[k] === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['model', k],
        message: `model.${k} is required when model.preset is not given`,
      });
    }
  }
  if (shape.n_embd !== undefined && shape.n_head !== undefined && shape.n_embd % shape.n_head !== 0) {
    ctx.addIssue({
      code: 'custom',
      path: ['model', 'n_head'],
      message: `model.n_embd = ${shape.n_embd} is not divisible by model.n_head = ${shape.n_head}`,
    });
  }
  if (shape.padded_vocab_size < shape.vocab_size) {
    ctx.addIssue({
      code: 'custom',
      path: ['model', 'padded_vocab_size'],
      message: `model.padded_vocab_size = ${shape.padded_vocab_size} is smaller than model.vocab_size = ${shape.vocab_size}`,
    });
  }
  if (shape.block_size !== undefined && c.seq_len > shape.block_size) {
    ctx.addIssue({
      code: 'custom',
      path: ['seq_len'],
      message: `seq_len = ${c.seq_len} exceeds the model's block_size = ${shape.block_size}`,
    });
  }
  if (shape.block_size !== undefined && c.sample_interval > 0 && c.sample.max_tokens >= shape.block_size) {
    ctx.addIssue({
      code: 'custom',
      path: ['sample', 'max_tokens'],
      message: `sample.max_tokens = ${c.sample.max_tokens} leaves no room for the prompt in the model's context of ${shape.block_size} tokens; use at most ${shape.block_size - 1}`,
    });
  }
  const unitTokens = c.batch_size * c.seq_len * c.world_size;
  if (c.total_batch_size % unitTokens !== 0) {
    const [lo, hi] = nearestMultiples(c.total_batch_size, unitTokens);
    ctx.addIssue({
      code: 'custom',
      path: ['total_batch_size'],
      message: `total_batch_size = ${c.total_batch_size} is not divisible by batch_size * seq_len * world_size = ${c.batch_size} * ${c.seq_len} * ${c.world_size} = ${unitTokens}; ${lo === hi ? `the nearest valid value is ${lo}` : `the nearest valid values are ${lo} and ${hi}`}`,
    });
  }
  if (c.max_steps === undefined && c.token_budget === undefined) {
    ctx.addIssue({ code: 'custom', path: ['max_steps'], message: 'give max_steps or token_budget' });
  }
  if (c.max_steps !== undefined && c.token_budget !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['token_budget'], message: 'give max_steps or token_budget, not both' });
  }
  if (c.max_steps !== undefined && c.warmup_steps > c.max_steps) {
    ctx.addIssue({
      code: 'custom',
      path: ['warmup_steps'],
      message: `warmup_steps = ${c.warmup_steps} is more than max_steps = ${c.max_steps}`,
    });
  }
  if (c.init_from !== 'scratch' && !c.init_path) {
    ctx.addIssue({
      code: 'custom',
      path: ['init_path'],
      message: `init_from = ${c.init_from} needs init_path (a weights file or folder, or a checkpoint folder)`,
    });
  }
  if ((c.precision === 'bf16' || c.precision === 'tf32') && c.engine !== 'native-cuda' && c.engine !== 'auto') {
    ctx.addIssue({
      code: 'custom',
      path: ['precision'],
      message: `precision = ${c.precision} needs the native-cuda engine; ${c.engine} computes in fp32${c.engine === 'native-webgpu' ? ' or fp16' : ''}`,
    });
  }
  if (c.precision === 'fp16' && c.engine !== 'native-webgpu') {
    ctx.addIssue({
      code: 'custom',
      path: ['precision'],
      message: `precision = fp16 needs engine native-webgpu (on an adapter with shader-f16); ${c.engine} computes in ${c.engine === 'native-cuda' || c.engine === 'auto' ? 'fp32, tf32 or bf16' : 'fp32'}`,
    });
  }
});

export type RunConfigInput = z.input<typeof runConfigSchema>;
export type RunConfig = z.output<typeof runConfigSchema>;

/** Optimizer steps of a config (max_steps, or the token budget divided by the batch, rounded up). */
export function totalSteps(c: RunConfig): number {
  return c.max_steps ?? Math.ceil((c.token_budget ?? 0) / c.total_batch_size);
}

/** Micro-steps per optimizer step. */
export function gradAccumSteps(c: RunConfig): number {
  return c.total_batch_size / (c.batch_size * c.seq_len * c.world_size);
}

export interface FieldError {
  /** dotted path, e.g. "model.n_head" */
  field: string;
  message: string;
}

/** Validates a config; returns the parsed config or the list of field errors. */
export function checkRunConfig(input: unknown): { ok: true; config: RunConfig } | { ok: false; errors: FieldError[] } {
  const r = runConfigSchema.safeParse(input);
  if (r.success) return { ok: true, config: r.data };
  return {
    ok: false,
    errors: r.error.issues.map((i) => ({
      field: i.path.join('.') || '(config)',
      message: i.code === 'unrecognized_keys' ? `unknown field(s): ${i.keys.join(', ')}` : i.message,
    })),
  };
}

/**
 * Sets `key=value` on a config object (the CLI's --set): dotted keys reach nested objects, and values are
 * parsed as JSON when they can be (numbers, booleans, null), else kept as strings.
 */
export function setConfigValue(cfg: Record<string, unknown>, key: string, raw: string): void {
  let value: unknown = raw;
  try {
    value = JSON.parse(raw);
  } catch {
    // a plain string
  }
  const parts = key.split('.');
  let o: Record<string, unknown> = cfg;
  for (const p of parts.slice(0, -1)) {
    const next = o[p];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) o[p] = {};
    o = o[p] as Record<string, unknown>;
  }
  o[parts[parts.length - 1]!] = value;
}
