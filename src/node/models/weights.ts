/**
 * GPT-2 weights in the Hugging Face layout (`openai-community/gpt2` and friends), imported into and exported from the
 * engine layout of `paramSpecs`.
 *
 * The HF file differs from the engine in four ways:
 * - names may carry a `transformer.` prefix, and the file may hold `lm_head.weight` (tied to `wte.weight`);
 * - the attention blocks hold causal-mask buffers `h.N.attn.bias` / `h.N.attn.masked_bias`, which are not parameters;
 * - the matmul weights of Conv1D layers (attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj) are stored [in, out],
 *   where the engine keeps [out, in] as nn.Linear does;
 * - `wte.weight` has exactly vocab_size rows, where the engine may pad it (50257 -> 50304).
 */
import fs from 'node:fs';
import path from 'node:path';
import { ErrorCode, StudioError } from '../../shared/errors';
import {
  makeConfig,
  paramSpecs,
  toHfConfig,
  validateConfig,
  type GPTConfig,
  type ParamSpec,
} from '../../core/model/config';
import { transpose2d, type HostTensor, type NamedTensors } from '../../core/tensors';
import {
  fsyncDir,
  SafetensorsReader,
  writeSafetensorsFrom,
  type SafetensorsEntry,
  type TensorSource,
} from './safetensors';

const PREFIX = 'transformer.';
const LM_HEAD = 'lm_head.weight';
/** Non-parameter buffers of HF's GPT2Attention (the causal mask and its fill value). */
const MASK_BUFFER = /^h\.\d+\.attn\.(bias|masked_bias)$/;
/** Matmul weights that HF stores as Conv1D, [in, out]. */
const CONV1D_WEIGHT = /^h\.\d+\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight$/;
/** n_head of OpenAI's released shapes, by n_embd. */
const KNOWN_HEADS: Record<number, { nHead: number; preset: string }> = {
  768: { nHead: 12, preset: 'gpt2' },
  1024: { nHead: 16, preset: 'gpt2-medium' },
  1280: { nHead: 20, preset: 'gpt2-large' },
  1600: { nHead: 25, preset: 'gpt2-xl' },
};

export const isConv1dWeight = (name: string): boolean => CONV1D_WEIGHT.test(name);

const fmtShape = (s: readonly number[]): string => `[${s.join(', ')}]`;
const numel = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);
const sameShape = (a: readonly number[], b: readonly number[]): boolean =>
  a.length === b.length && a.every((v, i) => v === b[i]);

/** Lists at most `max` items, then says how many more there are. */
function listSome(items: string[], max = 8): string {
  const head = items.slice(0, max).join(', ');
  return items.length > max ? `${head} and ${items.length - max} more` : head;
}

export interface LoadGpt2Options {
  /**
   * Rows of wte in the loaded tensors. Rows past the file's are zeros; rows past it in the file are dropped (they
   * can only be padding). Default: the file's row count, i.e. no padding.
   */
  paddedVocabSize?: number;
  /** n_head when the folder has no config.json and n_embd is not one of OpenAI's shapes. */
  nHead?: number;
  /** check the names and shapes and return the config, without reading any tensor data (tensors come back empty) */
  headerOnly?: boolean;
}

export interface LoadedGpt2Weights {
  config: GPTConfig;
  /** by GPT-2 name without prefix, in paramSpecs order and engine layout */
  tensors: NamedTensors;
  /** the absolute path of the safetensors file that was read */
  file: string;
  /** what the loader inferred, skipped or converted, one line each, for the user */
  notes: string[];
}

/** The fields of an HF GPT-2 config.json that we use; any may be absent. */
interface HfConfigFields {
  n_layer?: number;
  n_head?: number;
  n_embd?: number;
  vocab_size?: number;
  n_positions?: number;
  layer_norm_epsilon?: number;
  activation_function?: string;
}

function readHfConfig(file: string): HfConfigFields {
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new StudioError(
      ErrorCode.BAD_CONFIG,
      `Model config ${file} could not be read as JSON: ${(e as Error).message}.`,
      'Fix or delete config.json; without it the shapes are inferred from the weights.',
      { cause: e },
    );
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new StudioError(
      ErrorCode.BAD_CONFIG,
      `Model config ${file} is ${JSON.stringify(parsed)}; expected a JSON object.`,
      'Fix or delete config.json.',
    );
  }
  const raw = parsed as Record<string, unknown>;
  const out: HfConfigFields = {};
  const intKeys = ['n_layer', 'n_head', 'n_embd', 'vocab_size'] as const;
  for (const k of intKeys) {
    if (raw[k] === undefined) continue;
    out[k] = positiveInt(file, k, raw[k]);
  }
  // n_positions is the modern key; n_ctx the older one.
  const posKey = raw.n_positions !== undefined ? 'n_positions' : raw.n_ctx !== undefined ? 'n_ctx' : null;
  if (posKey) out.n_positions = positiveInt(file, posKey, raw[posKey]);
  const eps = raw.layer_norm_epsilon;
  if (eps !== undefined) {
    if (typeof eps !== 'number' || !(eps > 0) || !Number.isFinite(eps)) {
      throw new StudioError(
        ErrorCode.BAD_CONFIG,
        `Model config ${file}: layer_norm_epsilon = ${JSON.stringify(eps)}; expected a positive number.`,
        'Set it to 1e-5, as GPT-2 does.',
      );
    }
    out.layer_norm_epsilon = eps;
  }
  if (typeof raw.activation_function === 'string') out.activation_function = raw.activation_function;
  return out;
}

function positiveInt(file: string, key: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
    throw new StudioError(
      ErrorCode.BAD_CONFIG,
      `Model config ${file}: ${key} = ${JSON.stringify(v)}; expected a positive integer.`,
      `Fix ${key} in config.json, or delete the file to infer the shapes from the weights.`,
    );
  }
  return v;
}

/** Finds the safetensors file and the config.json that goes with `pathArg` (a file or a folder). */
function resolveInputs(pathArg: string): { file: string; configFile: string | null } {
  const abs = path.resolve(pathArg);
  let stat: fs.Stats;
  try {
    stat = fs.statSync(abs);
  } catch (e) {
    throw new StudioError(
      ErrorCode.FILE_NOT_FOUND,
      `No GPT-2 weights at ${abs}: the path does not exist.`,
      'Pass a .safetensors file, or a folder that holds model.safetensors (and config.json).',
      { cause: e },
    );
  }
  const dir = stat.isDirectory() ? abs : path.dirname(abs);
  const file = stat.isDirectory() ? path.join(abs, 'model.safetensors') : abs;
  if (stat.isDirectory() && !fs.existsSync(file)) {
    const sharded = fs.existsSync(path.join(abs, 'model.safetensors.index.json'));
    throw new StudioError(
      ErrorCode.FILE_NOT_FOUND,
      `Folder ${abs} has no model.safetensors${sharded ? ' (it holds a sharded checkpoint, model.safetensors.index.json)' : ''}.`,
      sharded
        ? 'Sharded checkpoints are not supported; save the model as one file (save_pretrained with a large max_shard_size).'
        : 'Pass a .safetensors file, or a folder that holds model.safetensors (download the model first).',
    );
  }
  const configFile = path.join(dir, 'config.json');
  return { file, configFile: fs.existsSync(configFile) ? configFile : null };
}

/**
 * Loads GPT-2 weights in the HF layout from a .safetensors file or a folder holding model.safetensors, with
 * config.json (from the same folder) when there is one. Every tensor is checked against the config's shapes before
 * any data is read; tensors are then read one at a time, so at most one extra copy of one tensor is alive.
 */
export function loadGpt2Weights(pathArg: string, opts: LoadGpt2Options = {}): LoadedGpt2Weights {
  const { file, configFile } = resolveInputs(pathArg);
  const notes: string[] = [];
  const hf = configFile ? readHfConfig(configFile) : {};

  const reader = SafetensorsReader.open(file);
  try {
    // ---- names: strip the prefix, set aside lm_head and the mask buffers ----
    const byName = new Map<string, SafetensorsEntry>();
    let lmHead: SafetensorsEntry | null = null;
    let prefixed = 0;
    let skipped = 0;
    for (const e of reader.header.tensors) {
      if (e.name === LM_HEAD) {
        lmHead = e;
        continue;
      }
      const name = e.name.startsWith(PREFIX) ? e.name.slice(PREFIX.length) : e.name;
      if (name !== e.name) prefixed++;
      if (MASK_BUFFER.test(name)) {
        skipped++;
        continue;
      }
      const other = byName.get(name);
      if (other) {
        throw new StudioError(
          ErrorCode.BAD_WEIGHTS,
          `GPT-2 weights ${file} hold the tensor "${name}" twice, as "${other.name}" and "${e.name}".`,
          'Keep one copy of each tensor (with or without the "transformer." prefix), then import again.',
        );
      }
      byName.set(name, e);
    }
    if (prefixed > 0) notes.push(`Removed the "${PREFIX}" prefix from ${prefixed} tensor names.`);
    if (skipped > 0)
      notes.push(
        `Skipped ${skipped} attention-mask buffers (h.N.attn.bias / h.N.attn.masked_bias); they are not parameters.`,
      );

    // ---- config: config.json where it says, else the tensor shapes ----
    const wte = byName.get('wte.weight');
    const wpe = byName.get('wpe.weight');
    if (!wte || !wpe || wte.shape.length !== 2 || wpe.shape.length !== 2) {
      const what = !wte
        ? 'no "wte.weight"'
        : !wpe
          ? 'no "wpe.weight"'
          : `"wte.weight" of shape ${fmtShape(wte.shape)} and "wpe.weight" of shape ${fmtShape(wpe.shape)}`;
      const names = reader.header.tensors.map((t) => t.name);
      throw new StudioError(
        ErrorCode.BAD_WEIGHTS,
        `GPT-2 weights ${file} have ${what}; expected 2-D token and position embeddings with GPT-2 names (wte.weight, wpe.weight, h.0.ln_1.weight, ...). The file holds: ${names.length ? listSome(names) : 'no tensors'}.`,
        'Import a GPT-2 checkpoint saved by transformers (GPT2LMHeadModel.save_pretrained) or exported by the studio.',
      );
    }
    const fileRows = wte.shape[0]!;
    const inferred: string[] = [];
    const nEmbd = hf.n_embd ?? (inferred.push(`n_embd ${wte.shape[1]}`), wte.shape[1]!);
    const vocabSize = hf.vocab_size ?? (inferred.push(`vocab_size ${fileRows}`), fileRows);
    const blockSize = hf.n_positions ?? (inferred.push(`n_positions ${wpe.shape[0]}`), wpe.shape[0]!);
    let nLayer = hf.n_layer;
    if (nLayer === undefined) {
      // one more than the highest block index in the names; missing blocks below it are reported as missing tensors
      let maxIndex = -1;
      for (const name of byName.keys()) {
        const m = /^h\.(\d+)\./.exec(name);
        if (m) maxIndex = Math.max(maxIndex, Number(m[1]));
      }
      nLayer = maxIndex + 1;
      inferred.push(`n_layer ${nLayer}`);
      if (nLayer === 0) {
        throw new StudioError(
          ErrorCode.BAD_WEIGHTS,
          `GPT-2 weights ${file} hold no transformer blocks (no h.0.* tensors); expected at least one.`,
          'Import a complete GPT-2 checkpoint.',
        );
      }
    }
    if (inferred.length > 0) {
      notes.push(
        `${configFile ? `${configFile} does not give` : 'No config.json next to the weights; inferred'} ${inferred.join(', ')} from the tensor shapes.`,
      );
    }
    let nHead = opts.nHead ?? hf.n_head;
    if (opts.nHead !== undefined && hf.n_head !== undefined && opts.nHead !== hf.n_head) {
      notes.push(`Using n_head ${opts.nHead} as asked, instead of ${hf.n_head} from ${configFile}.`);
    }
    if (nHead === undefined) {
      const known = KNOWN_HEADS[nEmbd];
      if (known) {
        nHead = known.nHead;
        notes.push(`Inferred n_head ${nHead} from n_embd ${nEmbd} (the ${known.preset} shape).`);
      } else if (nEmbd % 64 === 0) {
        nHead = nEmbd / 64;
        notes.push(
          `Inferred n_head ${nHead} as n_embd / 64 (head size 64, as in GPT-2); pass n_head explicitly if that is wrong.`,
        );
      } else {
        throw new StudioError(
          ErrorCode.BAD_WEIGHTS,
          `GPT-2 weights ${file}: n_head cannot be inferred for n_embd ${nEmbd} (not one of OpenAI's shapes, not a multiple of 64), and there is no config.json giving it.`,
          'Put the config.json that came with the weights next to them, or pass n_head explicitly.',
        );
      }
    }
    if (!Number.isSafeInteger(nHead) || nHead <= 0 || nEmbd % nHead !== 0) {
      throw new StudioError(
        ErrorCode.BAD_CONFIG,
        `GPT-2 weights ${file}: n_head ${nHead}${configFile && hf.n_head === nHead ? ` (from ${configFile})` : ''} does not divide n_embd ${nEmbd}; expected a positive divisor.`,
        `Fix n_head in config.json; GPT-2 uses head size 64 (n_head = n_embd / 64).`,
      );
    }
    if (hf.activation_function !== undefined && hf.activation_function !== 'gelu_new') {
      notes.push(
        `config.json sets activation_function "${hf.activation_function}"; the studio computes gelu_new (the tanh approximation), as GPT-2 does.`,
      );
    }

    const paddedVocabSize = opts.paddedVocabSize ?? Math.max(fileRows, vocabSize);
    if (!Number.isSafeInteger(paddedVocabSize) || paddedVocabSize < vocabSize) {
      throw new StudioError(
        ErrorCode.BAD_ARGUMENT,
        `Padded vocabulary size ${paddedVocabSize} for ${file} is smaller than the vocabulary, ${vocabSize}; expected an integer >= ${vocabSize}.`,
        "Use 50304 for GPT-2 (a multiple of 64), or leave it unset to keep the file's rows.",
      );
    }
    const config = makeConfig({
      nLayer,
      nHead,
      nEmbd,
      blockSize,
      vocabSize,
      paddedVocabSize,
      layerNormEps: hf.layer_norm_epsilon ?? 1e-5,
    });
    const source = configFile
      ? `from ${configFile}${inferred.length ? ' and the tensor shapes' : ''}`
      : 'inferred from the tensor shapes';

    // ---- check every name and shape before reading any data ----
    const specs = paramSpecs(config);
    const expected = new Set(specs.map((s) => s.name));
    const missing: string[] = [];
    const misshaped: string[] = [];
    for (const spec of specs) {
      const e = byName.get(spec.name);
      if (!e) {
        missing.push(spec.name);
        continue;
      }
      const want = fileShape(spec, config);
      // wte may hold more rows than the vocabulary (padding saved by another tool); the rest must match exactly
      const ok =
        spec.name === 'wte.weight'
          ? e.shape.length === 2 && e.shape[0]! >= vocabSize && e.shape[1] === nEmbd
          : sameShape(e.shape, want);
      if (!ok) {
        const layout = isConv1dWeight(spec.name) ? ' (HF Conv1D layout [in, out])' : '';
        misshaped.push(`"${e.name}" has shape ${fmtShape(e.shape)}, expected ${fmtShape(want)}${layout}`);
      }
    }
    const unexpected = [...byName.entries()].filter(([name]) => !expected.has(name)).map(([, e]) => e.name);
    if (lmHead && !sameShape(lmHead.shape, wte.shape)) {
      misshaped.push(
        `"${LM_HEAD}" has shape ${fmtShape(lmHead.shape)}, expected the shape of wte.weight ${fmtShape(wte.shape)} (tied)`,
      );
    }
    if (missing.length || misshaped.length || unexpected.length) {
      const parts: string[] = [];
      if (missing.length) parts.push(`missing tensor${missing.length > 1 ? 's' : ''} ${listSome(missing)}`);
      if (misshaped.length) parts.push(`tensor ${listSome(misshaped, 4)}`);
      if (unexpected.length) parts.push(`unexpected tensor${unexpected.length > 1 ? 's' : ''} ${listSome(unexpected)}`);
      throw new StudioError(
        ErrorCode.BAD_WEIGHTS,
        `GPT-2 weights ${file} do not match the model config (n_layer ${nLayer}, n_head ${nHead}, n_embd ${nEmbd}, vocab_size ${vocabSize}, n_positions ${blockSize}; ${source}): ${parts.join('; ')}.`,
        configFile
          ? `Check that ${configFile} belongs to these weights, or re-download/re-export them.`
          : 'Re-download or re-export the weights, or put their config.json next to them.',
      );
    }

    // ---- read, one tensor at a time ----
    const tensors: NamedTensors = new Map();
    if (opts.headerOnly) return { config, tensors, file, notes };
    const C = nEmbd;
    for (const spec of specs) {
      const e = byName.get(spec.name)!;
      let t: HostTensor;
      if (spec.name === 'wte.weight') {
        t = readEmbedding(reader, e, lmHead, paddedVocabSize, C, notes);
      } else if (isConv1dWeight(spec.name)) {
        t = transpose2d(reader.read(e.name)); // [in, out] -> [out, in]; the raw copy is garbage right after
      } else {
        t = reader.read(e.name);
      }
      tensors.set(spec.name, t);
    }
    if (fileRows !== paddedVocabSize) {
      notes.push(
        fileRows < paddedVocabSize
          ? `Padded wte.weight from ${fileRows} to ${paddedVocabSize} rows with zeros.`
          : `Dropped rows ${paddedVocabSize}..${fileRows - 1} of wte.weight (padding beyond vocab_size ${vocabSize}).`,
      );
    } else if (fileRows > vocabSize) {
      notes.push(
        `wte.weight has ${fileRows} rows for a vocabulary of ${vocabSize}; rows ${vocabSize}..${fileRows - 1} are kept as padding.`,
      );
    }
    const dtypes = [...new Set(reader.header.tensors.map((t) => t.dtype))];
    notes.unshift(
      `Read ${tensors.size} tensors from ${file} (${dtypes.join(', ')}${dtypes.some((d) => d !== 'F32') ? ', converted to F32' : ''}); config ${source}.`,
    );
    return { config, tensors, file, notes };
  } finally {
    reader.close();
  }
}

/** The shape a parameter has in the HF file: Conv1D weights transposed, wte with vocab_size rows. */
function fileShape(spec: ParamSpec, c: GPTConfig): number[] {
  if (spec.name === 'wte.weight') return [c.vocabSize, c.nEmbd];
  if (isConv1dWeight(spec.name)) return [spec.shape[1]!, spec.shape[0]!];
  return spec.shape;
}

/**
 * Reads wte into a [paddedRows, C] array (zeros past the file's rows) and, when the file holds lm_head.weight,
 * checks that it equals wte: the studio's GPT-2 ties the output head to the token embedding.
 */
function readEmbedding(
  reader: SafetensorsReader,
  wte: SafetensorsEntry,
  lmHead: SafetensorsEntry | null,
  paddedRows: number,
  C: number,
  notes: string[],
): HostTensor {
  const fileRows = wte.shape[0]!;
  const data = new Float32Array(paddedRows * C);
  // `fileData` is wte as stored: a view into `data` when it fits, else a temporary copy that is then cut down.
  let fileData: Float32Array;
  if (paddedRows >= fileRows) {
    reader.readInto(wte.name, data);
    fileData = data.subarray(0, fileRows * C);
  } else {
    fileData = reader.read(wte.name).data;
    data.set(fileData.subarray(0, paddedRows * C));
  }
  if (lmHead) {
    const head = reader.read(lmHead.name).data;
    let maxDiff = 0;
    let worst = -1;
    for (let i = 0; i < head.length; i++) {
      const a = head[i]!;
      const b = fileData[i]!;
      if (Number.isNaN(a) && Number.isNaN(b)) continue;
      const d = Math.abs(a - b);
      // "tiny": float rounding of a tied copy, never a trained separate head. NaN differences count as large.
      if (!(d <= 1e-6 + 1e-5 * Math.abs(b))) {
        throw new StudioError(
          ErrorCode.BAD_WEIGHTS,
          `GPT-2 weights ${reader.file}: "${lmHead.name}" differs from "${wte.name}" (row ${Math.floor(i / C)}, column ${i % C}: ${a} vs ${b}); untied output heads are not supported, the studio ties lm_head to wte as GPT-2 does.`,
          'Import a model with tied embeddings (tie_word_embeddings = true), or remove lm_head.weight if it is a stale copy of wte.',
        );
      }
      if (d > maxDiff) {
        maxDiff = d;
        worst = i;
      }
    }
    notes.push(
      `${lmHead.name} is tied to wte.weight (largest difference ${maxDiff}${worst >= 0 ? ` at row ${Math.floor(worst / C)}` : ''}); it was checked and not kept.`,
    );
  }
  return { shape: [paddedRows, C], data };
}

export interface ExportGpt2Options {
  /** write `transformer.`-prefixed names, as some older HF files do (default: no prefix, as openai-community/gpt2) */
  prefix?: boolean;
  /** extra `__metadata__` entries; `format: "pt"`, which transformers requires, is always set */
  metadata?: Record<string, string>;
}

/**
 * Writes `model.safetensors` and `config.json` into `dir` (created if needed) in the HF GPT-2 layout, so that
 * `GPT2LMHeadModel.from_pretrained(dir)` loads them: Conv1D weights back to [in, out], wte cut to vocab_size rows,
 * no mask buffers and no lm_head (tied). Each file is written atomically. Tensors are transposed one at a time
 * while writing, so the export holds at most one extra copy of one tensor.
 */
export function exportGpt2Weights(
  dir: string,
  config: GPTConfig,
  tensors: NamedTensors,
  opts: ExportGpt2Options = {},
): { modelFile: string; configFile: string } {
  validateConfig(config);
  const absDir = path.resolve(dir);
  const specs = paramSpecs(config);
  const problems: string[] = [];
  for (const spec of specs) {
    const t = tensors.get(spec.name);
    if (!t) problems.push(`missing tensor "${spec.name}"`);
    else if (!sameShape(t.shape, spec.shape))
      problems.push(`tensor "${spec.name}" has shape ${fmtShape(t.shape)}, expected ${fmtShape(spec.shape)}`);
    else if (t.data.length !== numel(spec.shape))
      problems.push(`tensor "${spec.name}" has ${t.data.length} values for shape ${fmtShape(spec.shape)}`);
  }
  const names = new Set(specs.map((s) => s.name));
  const extra = [...tensors.keys()].filter((n) => !names.has(n));
  if (extra.length) problems.push(`unexpected tensor${extra.length > 1 ? 's' : ''} ${listSome(extra)}`);
  if (problems.length) {
    throw new StudioError(
      ErrorCode.BAD_WEIGHTS,
      `Cannot export GPT-2 weights to ${absDir}: they do not match the config (n_layer ${config.nLayer}, n_embd ${config.nEmbd}, padded vocab ${config.paddedVocabSize}, n_positions ${config.blockSize}): ${listSome(problems, 4)}.`,
      'Export the weights of a model built from this config (engine layout, as paramSpecs lists).',
    );
  }

  const prefix = opts.prefix ? PREFIX : '';
  const sources: TensorSource[] = specs.map((spec) => {
    const t = tensors.get(spec.name)!;
    if (spec.name === 'wte.weight') {
      // the real vocabulary only: padded rows are not part of the HF model
      return {
        name: prefix + spec.name,
        shape: [config.vocabSize, config.nEmbd],
        data: () => t.data.subarray(0, config.vocabSize * config.nEmbd),
      };
    }
    if (isConv1dWeight(spec.name)) {
      return { name: prefix + spec.name, shape: [spec.shape[1]!, spec.shape[0]!], data: () => transpose2d(t).data };
    }
    return { name: prefix + spec.name, shape: spec.shape, data: () => t.data };
  });

  try {
    fs.mkdirSync(absDir, { recursive: true });
  } catch (e) {
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `Cannot create the export folder ${absDir}: ${(e as Error).message}.`,
      'Choose a folder you can write to.',
      { cause: e },
    );
  }
  const modelFile = path.join(absDir, 'model.safetensors');
  const configFile = path.join(absDir, 'config.json');
  writeSafetensorsFrom(modelFile, sources, { ...opts.metadata, format: 'pt' });
  writeTextAtomic(configFile, JSON.stringify(toHfConfig(config), null, 2) + '\n');
  return { modelFile, configFile };
}

/** Writes a text file through a fsynced temporary file and a rename; removes the temporary file on failure. */
function writeTextAtomic(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    const fd = fs.openSync(tmp, 'w');
    try {
      fs.writeFileSync(fd, text);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `Cannot write ${file}: ${(e as Error).message}.`,
      'Check that the folder is writable and the disk has free space.',
      { cause: e },
    );
  }
  fsyncDir(path.dirname(file));
}
