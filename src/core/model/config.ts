import { ErrorCode, StudioError } from '../../shared/errors';
import { MODEL_PRESETS, type ModelPresetName } from '../../shared/model-presets';

/** GPT-2 model configuration, as in nanoGPT's GPTConfig. */
export interface GPTConfig {
  /** number of transformer blocks */
  nLayer: number;
  /** number of attention heads; nEmbd must be divisible by it */
  nHead: number;
  /** embedding width C */
  nEmbd: number;
  /** maximum sequence length (rows of wpe) */
  blockSize: number;
  /** real vocabulary size: 50257 for GPT-2's BPE. Token ids >= vocabSize are never inputs, targets or samples */
  vocabSize: number;
  /**
   * rows of wte actually allocated. 50304 (a multiple of 64 and 128) is faster on GPUs; the padded rows
   * are excluded from the softmax, so they change nothing numerically.
   */
  paddedVocabSize: number;
  /** LayerNorm epsilon (GPT-2: 1e-5) */
  layerNormEps: number;
}

export const GPT2_VOCAB_SIZE = 50257;
/** Rounds a vocabulary size up to a multiple of 64 (50257 -> 50304), the padding llm.c and build-nanogpt use. */
export const padVocab = (v: number): number => Math.ceil(v / 64) * 64;
export const DEFAULT_PADDED_VOCAB = padVocab(GPT2_VOCAB_SIZE);
export const EOT_TOKEN = 50256;

type PresetShape = Pick<GPTConfig, 'nLayer' | 'nHead' | 'nEmbd' | 'blockSize'>;

export { MODEL_PRESETS, type ModelPresetName };

export function isModelPreset(name: string): name is ModelPresetName {
  return Object.prototype.hasOwnProperty.call(MODEL_PRESETS, name);
}

/** Builds and validates a config. Unspecified vocab fields take GPT-2's (padded to 50304). */
export function makeConfig(shape: PresetShape & Partial<GPTConfig>): GPTConfig {
  const cfg: GPTConfig = {
    vocabSize: GPT2_VOCAB_SIZE,
    paddedVocabSize: padVocab(shape.vocabSize ?? GPT2_VOCAB_SIZE),
    layerNormEps: 1e-5,
    ...shape,
  };
  validateConfig(cfg);
  return cfg;
}

export function presetConfig(name: string, overrides: Partial<GPTConfig> = {}): GPTConfig {
  if (!isModelPreset(name)) {
    throw new StudioError(
      ErrorCode.BAD_CONFIG,
      `Unknown model preset "${name}".`,
      `Use one of: ${Object.keys(MODEL_PRESETS).join(', ')}.`,
    );
  }
  return makeConfig({ ...MODEL_PRESETS[name], ...overrides });
}

export function validateConfig(c: GPTConfig): void {
  const ints: (keyof GPTConfig)[] = ['nLayer', 'nHead', 'nEmbd', 'blockSize', 'vocabSize', 'paddedVocabSize'];
  for (const k of ints) {
    const v = c[k];
    if (!Number.isInteger(v) || v <= 0) {
      throw new StudioError(
        ErrorCode.BAD_CONFIG,
        `Model config ${k} = ${v} is not a positive integer.`,
        `Set ${k} to a positive integer.`,
      );
    }
  }
  if (c.nEmbd % c.nHead !== 0) {
    throw new StudioError(
      ErrorCode.BAD_CONFIG,
      `Model config n_embd = ${c.nEmbd} is not divisible by n_head = ${c.nHead}.`,
      `Pick n_head among the divisors of ${c.nEmbd}.`,
    );
  }
  if (c.paddedVocabSize < c.vocabSize) {
    throw new StudioError(
      ErrorCode.BAD_CONFIG,
      `Model config padded vocab ${c.paddedVocabSize} is smaller than vocab ${c.vocabSize}.`,
      `Set the padded vocab to at least ${c.vocabSize} (50304 is the usual choice for GPT-2).`,
    );
  }
}

/** One named parameter tensor, in the engine's layout: matmul weights are [out, in] (nn.Linear, as llm.c). */
export interface ParamSpec {
  name: string;
  shape: number[];
  /** weight decay applies to tensors of rank >= 2 (matmul weights and embeddings) */
  decay: boolean;
  init: 'normal' | 'normal-scaled' | 'zeros' | 'ones';
}

/** The parameters of a GPT-2, in a fixed order, with GPT-2 names (as in the HF file, without `transformer.`). */
export function paramSpecs(c: GPTConfig): ParamSpec[] {
  const C = c.nEmbd;
  const specs: ParamSpec[] = [
    { name: 'wte.weight', shape: [c.paddedVocabSize, C], decay: true, init: 'normal' },
    { name: 'wpe.weight', shape: [c.blockSize, C], decay: true, init: 'normal' },
  ];
  for (let i = 0; i < c.nLayer; i++) {
    const p = `h.${i}.`;
    specs.push(
      { name: p + 'ln_1.weight', shape: [C], decay: false, init: 'ones' },
      { name: p + 'ln_1.bias', shape: [C], decay: false, init: 'zeros' },
      { name: p + 'attn.c_attn.weight', shape: [3 * C, C], decay: true, init: 'normal' },
      { name: p + 'attn.c_attn.bias', shape: [3 * C], decay: false, init: 'zeros' },
      { name: p + 'attn.c_proj.weight', shape: [C, C], decay: true, init: 'normal-scaled' },
      { name: p + 'attn.c_proj.bias', shape: [C], decay: false, init: 'zeros' },
      { name: p + 'ln_2.weight', shape: [C], decay: false, init: 'ones' },
      { name: p + 'ln_2.bias', shape: [C], decay: false, init: 'zeros' },
      { name: p + 'mlp.c_fc.weight', shape: [4 * C, C], decay: true, init: 'normal' },
      { name: p + 'mlp.c_fc.bias', shape: [4 * C], decay: false, init: 'zeros' },
      { name: p + 'mlp.c_proj.weight', shape: [C, 4 * C], decay: true, init: 'normal-scaled' },
      { name: p + 'mlp.c_proj.bias', shape: [C], decay: false, init: 'zeros' },
    );
  }
  specs.push(
    { name: 'ln_f.weight', shape: [C], decay: false, init: 'ones' },
    { name: 'ln_f.bias', shape: [C], decay: false, init: 'zeros' },
  );
  return specs;
}

export const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

export interface DecayGroups {
  decayTensors: number;
  decayParams: number;
  noDecayTensors: number;
  noDecayParams: number;
}

export function decayGroups(c: GPTConfig): DecayGroups {
  const g: DecayGroups = { decayTensors: 0, decayParams: 0, noDecayTensors: 0, noDecayParams: 0 };
  for (const s of paramSpecs(c)) {
    if (s.decay) {
      g.decayTensors++;
      g.decayParams += numel(s.shape);
    } else {
      g.noDecayTensors++;
      g.noDecayParams += numel(s.shape);
    }
  }
  return g;
}

/** Total parameters, counting the tied wte once and its padded rows. */
export function paramCount(c: GPTConfig): number {
  return paramSpecs(c).reduce((a, s) => a + numel(s.shape), 0);
}

/**
 * Training FLOPs per token (forward + backward), as in the PaLM paper's appendix B and nanoGPT's estimate_mfu:
 * 6 * N + 12 * L * C * T, where N excludes the position embedding (it is a lookup, not a matmul) and the
 * second term is the attention scores and weighted sum at full context T.
 */
export function flopsPerToken(c: GPTConfig, seqLen = c.blockSize): number {
  const n = paramCount(c) - c.blockSize * c.nEmbd;
  return 6 * n + 12 * c.nLayer * c.nEmbd * seqLen;
}

/** The HF-style config.json that `transformers` reads, for export. */
export function toHfConfig(c: GPTConfig): Record<string, unknown> {
  return {
    model_type: 'gpt2',
    architectures: ['GPT2LMHeadModel'],
    n_layer: c.nLayer,
    n_head: c.nHead,
    n_embd: c.nEmbd,
    vocab_size: c.vocabSize,
    n_positions: c.blockSize,
    n_ctx: c.blockSize,
    layer_norm_epsilon: c.layerNormEps,
    activation_function: 'gelu_new',
    tie_word_embeddings: true,
    bos_token_id: EOT_TOKEN,
    eos_token_id: EOT_TOKEN,
  };
}
