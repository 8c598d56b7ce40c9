/**
 * The New run form's model: the fields of the run schema (src/shared/run-config.ts) grouped in sections, dotted
 * paths into the config object, the text a number field shows and the value it stands for.
 */
import { MODEL_PRESETS, MODEL_PRESET_NAMES } from '../../../shared/model-presets';
import { checkRunConfig, type FieldError } from '../../../shared/run-config';

export type Config = Record<string, unknown>;

export type FieldKind = 'int' | 'number' | 'text' | 'textarea' | 'select' | 'bool';

export interface FieldDef {
  /** dotted path in the config, e.g. "model.n_layer"; also the key shown next to the label */
  path: string;
  label: string;
  kind: FieldKind;
  /** select options: [value, label] */
  options?: readonly (readonly [string, string])[];
  hint?: string;
  /** spans the form's full width */
  wide?: boolean;
}

export interface SectionDef {
  id: string;
  title: string;
  summary?: string;
  fields: FieldDef[];
  /** shown folded (a <details>) */
  folded?: boolean;
}

const presetLabel = (n: (typeof MODEL_PRESET_NAMES)[number]) => {
  const p = MODEL_PRESETS[n];
  return `${n} — ${p.nLayer} layers, ${p.nHead} heads, ${p.nEmbd} wide, context ${p.blockSize}`;
};

export const MODEL_PRESET_OPTIONS: readonly (readonly [string, string])[] = [
  ...MODEL_PRESET_NAMES.map((n) => [n, presetLabel(n)] as const),
  ['', 'custom — the shape fields below'],
];

export const SECTIONS: SectionDef[] = [
  {
    id: 'run',
    title: 'Run',
    fields: [
      { path: 'name', label: 'Name', kind: 'text', hint: 'default: "<model> on <dataset>"' },
      { path: 'dataset', label: 'Dataset', kind: 'select', hint: 'a tokenized dataset of this workspace' },
      {
        path: 'engine',
        label: 'Engine',
        kind: 'select',
        options: [
          ['auto', 'auto — the fastest available'],
          ['tfjs', 'tfjs'],
          ['native-cpu', 'native-cpu'],
          ['native-cuda', 'native-cuda'],
          ['native-webgpu', 'native-webgpu (Metal, Vulkan, D3D12)'],
        ],
      },
      {
        path: 'precision',
        label: 'Precision',
        kind: 'select',
        options: [
          ['auto', 'auto (bf16 on native-cuda)'],
          ['fp32', 'fp32'],
          ['bf16', 'bf16 (native-cuda)'],
          ['tf32', 'tf32 (native-cuda)'],
          ['fp16', 'fp16 (native-webgpu with shader-f16)'],
        ],
      },
      { path: 'seed', label: 'Seed', kind: 'int' },
      {
        path: 'init_from',
        label: 'Initialize from',
        kind: 'select',
        options: [
          ['scratch', 'scratch (GPT-2 init)'],
          ['weights', 'weights file or folder'],
          ['checkpoint', 'a checkpoint'],
        ],
      },
      {
        path: 'init_path',
        label: 'Weights or checkpoint path',
        kind: 'text',
        wide: true,
        hint: 'for init_from weights or checkpoint',
      },
      { path: 'sft', label: 'SFT: loss on responses only', kind: 'bool' },
    ],
  },
  {
    id: 'model',
    title: 'Model',
    summary: 'A shape preset; a field given here overrides it.',
    fields: [
      { path: 'model.preset', label: 'Shape preset', kind: 'select', options: MODEL_PRESET_OPTIONS, wide: true },
      { path: 'model.n_layer', label: 'Layers', kind: 'int' },
      { path: 'model.n_head', label: 'Heads', kind: 'int' },
      { path: 'model.n_embd', label: 'Width (n_embd)', kind: 'int' },
      { path: 'model.block_size', label: 'Context (block_size)', kind: 'int' },
      { path: 'model.vocab_size', label: 'Vocabulary', kind: 'int' },
      {
        path: 'model.padded_vocab_size',
        label: 'Padded vocabulary',
        kind: 'int',
        hint: 'rows of wte; default a multiple of 64',
      },
    ],
  },
  {
    id: 'batch',
    title: 'Batch',
    summary: 'Tokens per optimizer step = micro-batch rows × sequence length × processes × accumulation steps.',
    fields: [
      { path: 'total_batch_size', label: 'Tokens per step', kind: 'int', hint: '2^19 = 524,288 in build-nanogpt' },
      { path: 'batch_size', label: 'Micro-batch rows (B)', kind: 'int' },
      { path: 'seq_len', label: 'Sequence length (T)', kind: 'int' },
      {
        path: 'world_size',
        label: 'Processes (data parallel)',
        kind: 'int',
        hint: 'one per GPU with native-cuda; on the CPU they share the cores',
      },
    ],
  },
  {
    id: 'schedule',
    title: 'Schedule',
    summary: 'Linear warm-up to max_lr, then cosine decay to max_lr × min_lr_ratio (build-nanogpt).',
    fields: [
      { path: 'max_steps', label: 'Steps', kind: 'int', hint: 'or a token budget' },
      { path: 'token_budget', label: 'Token budget', kind: 'int', hint: 'instead of steps' },
      { path: 'warmup_steps', label: 'Warm-up steps', kind: 'int' },
      { path: 'max_lr', label: 'Max learning rate', kind: 'number' },
      { path: 'min_lr_ratio', label: 'Min LR ratio', kind: 'number' },
    ],
  },
  {
    id: 'adamw',
    title: 'AdamW',
    fields: [
      { path: 'weight_decay', label: 'Weight decay', kind: 'number', hint: 'on matmul weights and embeddings' },
      { path: 'beta1', label: 'β1', kind: 'number' },
      { path: 'beta2', label: 'β2', kind: 'number' },
      { path: 'eps', label: 'ε', kind: 'number' },
      { path: 'grad_clip', label: 'Gradient clip', kind: 'number', hint: 'global norm; 0 disables' },
    ],
  },
  {
    id: 'intervals',
    title: 'Evaluation, samples, checkpoints',
    summary: 'Every N steps (and at the last step); 0 disables.',
    fields: [
      { path: 'eval_interval', label: 'Val loss every', kind: 'int' },
      { path: 'eval_iters', label: 'Val micro-batches', kind: 'int' },
      { path: 'hellaswag_interval', label: 'HellaSwag every', kind: 'int' },
      { path: 'hellaswag_limit', label: 'HellaSwag examples', kind: 'int', hint: 'empty: the whole split' },
      { path: 'sample_interval', label: 'Samples every', kind: 'int' },
      { path: 'checkpoint_interval', label: 'Checkpoint every', kind: 'int' },
      { path: 'keep_last', label: 'Checkpoints kept', kind: 'int', hint: '0 keeps all' },
      { path: 'sample.prompt', label: 'Sample prompt', kind: 'text', wide: true },
      { path: 'sample.count', label: 'Samples', kind: 'int' },
      { path: 'sample.max_tokens', label: 'Sample tokens', kind: 'int' },
      { path: 'sample.top_k', label: 'Top-k', kind: 'int' },
      { path: 'sample.temperature', label: 'Temperature', kind: 'number' },
    ],
  },
  {
    id: 'data-guard',
    title: 'Data order and loss-spike guard',
    folded: true,
    fields: [
      { path: 'shuffle', label: 'Shuffle shards and documents each epoch', kind: 'bool' },
      { path: 'guard.enabled', label: 'Skip updates whose loss spikes (NaN and Inf are always caught)', kind: 'bool' },
      { path: 'guard.z_threshold', label: 'Spike threshold (robust σ)', kind: 'number' },
      { path: 'guard.warmup', label: 'Guard warm-up steps', kind: 'int' },
      { path: 'guard.window', label: 'Baseline window (steps)', kind: 'int' },
      { path: 'guard.max_consecutive_skips', label: 'Skips in a row before a rollback', kind: 'int' },
      { path: 'guard.max_rollbacks', label: 'Rollbacks a NaN may survive', kind: 'int' },
      { path: 'guard.snapshot_interval', label: 'Snapshot every (steps; 0 = none)', kind: 'int' },
    ],
  },
];

export const FIELD_PATHS = new Set(SECTIONS.flatMap((s) => s.fields.map((f) => f.path)));

export function getAt(obj: unknown, path: string): unknown {
  let o: unknown = obj;
  for (const k of path.split('.')) {
    if (typeof o !== 'object' || o === null || Array.isArray(o)) return undefined;
    o = (o as Record<string, unknown>)[k];
  }
  return o;
}

/** A copy of `obj` with `path` set (or removed, for undefined); objects on the way are copied or created. */
export function setAt(obj: Config, path: string, value: unknown): Config {
  // split always gives at least one part
  const [head, ...rest] = path.split('.') as [string, ...string[]];
  const out: Config = { ...obj };
  if (rest.length === 0) {
    if (value === undefined) delete out[head];
    else out[head] = value;
    return out;
  }
  const child = out[head];
  const base = typeof child === 'object' && child !== null && !Array.isArray(child) ? (child as Config) : {};
  out[head] = setAt(base, rest.join('.'), value);
  return out;
}

/** The text a field shows for a value. */
export function textOf(v: unknown): string {
  if (v === undefined || v === null) return '';
  if (typeof v === 'number') return String(v);
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}

/**
 * The value a number field's text stands for: empty removes the field (its default applies), a number is a
 * number, and anything else stays text so that validation names the field ("max_lr must be a number").
 */
export function parseNumberText(text: string): unknown {
  const t = text.trim();
  if (t === '') return undefined;
  const n = Number(t);
  return Number.isFinite(n) ? n : t;
}

/** The schema's defaults (what an empty field means), from a minimal valid config. */
export const DEFAULTS: Config = (() => {
  const r = checkRunConfig({ dataset: 'dataset', max_steps: 1000 });
  return r.ok ? (r.config as unknown as Config) : {};
})();

/** Field errors by path; errors of paths the form has no field for are kept under "" . */
export function errorsByField(errors: readonly FieldError[]): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const e of errors) {
    const key = FIELD_PATHS.has(e.field) ? e.field : '';
    const text = key === '' && e.field !== '(config)' ? `${e.field}: ${e.message}` : e.message;
    const list = m.get(key) ?? [];
    if (!list.includes(text)) list.push(text);
    m.set(key, list);
  }
  return m;
}

/** A DOM id for a field's input. */
export const fieldId = (path: string) => `field-${path.replace(/\./g, '-')}`;
