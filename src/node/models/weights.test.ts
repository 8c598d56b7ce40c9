import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode, StudioError } from '../../shared/errors';
import { makeConfig, paramSpecs, toHfConfig, type GPTConfig } from '../../core/model/config';
import { transpose2d, type HostTensor, type NamedTensors } from '../../core/tensors';
import { readSafetensors, readSafetensorsHeader, writeSafetensors } from './safetensors';
import { exportGpt2Weights, isConv1dWeight, loadGpt2Weights } from './weights';

// The shared fixtures live next to the repository (../shared), or where GPT2_STUDIO_SHARED says.
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const shared = process.env.GPT2_STUDIO_SHARED ?? path.resolve(repoRoot, '../shared');
const tinyDir = path.join(shared, 'fixtures', 'gpt2-tiny');
const tinyFile = path.join(tinyDir, 'model.safetensors');
const haveTiny = fs.existsSync(tinyFile);
if (!haveTiny) console.warn(`skipping the gpt2-tiny weight tests: no fixture at ${tinyFile} (set GPT2_STUDIO_SHARED)`);

let tmp = '';
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-studio-weights-'));
});
afterEach(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

function catchStudio(fn: () => unknown): StudioError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(StudioError);
    return e as StudioError;
  }
  throw new Error('expected a StudioError, but nothing was thrown');
}

/** Bit-for-bit equality of two float arrays (fast on millions of elements, unlike a deep toEqual). */
const sameBits = (a: Float32Array, b: Float32Array): boolean =>
  Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

/** Asserts two tensor maps hold the same names (in order), shapes and bit-identical data. */
function expectSameTensors(a: NamedTensors, b: NamedTensors): void {
  expect([...a.keys()]).toEqual([...b.keys()]);
  for (const [name, t] of a) {
    const u = b.get(name)!;
    expect(u.shape, name).toEqual(t.shape);
    expect(sameBits(u.data, t.data), name).toBe(true);
  }
}

/** Writes a tensor map (HF names and layout) plus an optional config.json into a new folder under tmp. */
function writeModelDir(name: string, tensors: Map<string, HostTensor>, config?: Record<string, unknown>): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir);
  writeSafetensors(path.join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  if (config) fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
  return dir;
}

/** Deterministic HF-layout tensors for a config (a cheap hash, not a real init), including the mask buffers. */
function syntheticHf(c: GPTConfig): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  let k = 1;
  for (const s of paramSpecs(c)) {
    const shape =
      s.name === 'wte.weight' ? [c.vocabSize, c.nEmbd] : isConv1dWeight(s.name) ? [s.shape[1]!, s.shape[0]!] : s.shape;
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = Math.sin(k++ * 0.37) * 0.02;
    out.set(s.name, { shape, data });
    if (s.name.endsWith('ln_1.bias'))
      out.set(s.name.replace('ln_1.bias', 'attn.bias'), {
        shape: [1, 1, c.blockSize, c.blockSize],
        data: new Float32Array(c.blockSize * c.blockSize).fill(1),
      });
  }
  return out;
}

describe.skipIf(!haveTiny)('loadGpt2Weights on ../shared/fixtures/gpt2-tiny', () => {
  const hfConfig = haveTiny ? JSON.parse(fs.readFileSync(path.join(tinyDir, 'config.json'), 'utf8')) : {};

  it('loads the 28 parameters with the config of config.json, Conv1D weights transposed to [out, in]', () => {
    const w = loadGpt2Weights(tinyFile);
    expect(w.file).toBe(path.resolve(tinyFile));
    expect(w.tensors.size).toBe(28); // wte, wpe, 12 per block, ln_f weight and bias
    expect([...w.tensors.keys()]).toEqual(paramSpecs(w.config).map((s) => s.name));
    expect(w.config).toEqual({
      nLayer: 2,
      nHead: 2,
      nEmbd: 32,
      blockSize: 128,
      vocabSize: 50257,
      paddedVocabSize: 50257,
      layerNormEps: 1e-5,
    });
    expect([w.config.nLayer, w.config.nHead, w.config.nEmbd, w.config.vocabSize, w.config.blockSize]).toEqual([
      hfConfig.n_layer,
      hfConfig.n_head,
      hfConfig.n_embd,
      hfConfig.vocab_size,
      hfConfig.n_positions,
    ]);
    for (const s of paramSpecs(w.config)) expect(w.tensors.get(s.name)!.shape, s.name).toEqual(s.shape);
    expect(w.tensors.get('h.0.attn.c_attn.weight')!.shape).toEqual([96, 32]);
    expect(w.notes.join('\n')).toMatch(/Skipped 2 attention-mask buffers/);

    // every Conv1D weight is exactly the transpose of the raw tensor; everything else is the raw tensor
    const raw = readSafetensors(tinyFile);
    for (const [name, t] of w.tensors) {
      const r = raw.get(name)!;
      expectSameTensors(new Map([[name, t]]), new Map([[name, isConv1dWeight(name) ? transpose2d(r) : r]]));
    }
    const rawCAttn = raw.get('h.0.attn.c_attn.weight')!; // [in 32, out 96]
    expect(w.tensors.get('h.0.attn.c_attn.weight')!.data[5 * 32 + 7]).toBe(rawCAttn.data[7 * 96 + 5]);
  });

  it('loads the same from the folder, and pads wte with zero rows when asked', () => {
    const fromFile = loadGpt2Weights(tinyFile);
    const fromDir = loadGpt2Weights(tinyDir);
    expectSameTensors(fromDir.tensors, fromFile.tensors);

    const padded = loadGpt2Weights(tinyDir, { paddedVocabSize: 50304 });
    expect(padded.config.paddedVocabSize).toBe(50304);
    expect(padded.config.vocabSize).toBe(50257);
    const wte = padded.tensors.get('wte.weight')!;
    expect(wte.shape).toEqual([50304, 32]);
    expect(sameBits(wte.data.subarray(0, 50257 * 32), fromFile.tensors.get('wte.weight')!.data)).toBe(true);
    expect(sameBits(wte.data.subarray(50257 * 32), new Float32Array(47 * 32))).toBe(true);
    expect(padded.notes.join('\n')).toContain('Padded wte.weight from 50257 to 50304 rows');

    const err = catchStudio(() => loadGpt2Weights(tinyDir, { paddedVocabSize: 50000 }));
    expect(err.code).toBe(ErrorCode.BAD_ARGUMENT);
    expect(err.message).toMatch(/50000.*50257/);
  });

  it('accepts the transformer. prefix, an explicit tied lm_head and another head count, giving the same tensors', () => {
    const base = loadGpt2Weights(tinyFile);
    const raw = readSafetensors(tinyFile);
    const variant = new Map<string, HostTensor>();
    for (const [name, t] of raw) variant.set('transformer.' + name, t);
    variant.set('lm_head.weight', { shape: raw.get('wte.weight')!.shape, data: raw.get('wte.weight')!.data.slice() });
    variant.set('transformer.h.0.attn.masked_bias', { shape: [], data: new Float32Array([-1e4]) });
    const dir = writeModelDir('variant', variant, { ...hfConfig, n_head: 4 });

    const w = loadGpt2Weights(dir);
    expect(w.config.nHead).toBe(4);
    expect({ ...w.config, nHead: 2 }).toEqual(base.config);
    expectSameTensors(w.tensors, base.tensors);
    const notes = w.notes.join('\n');
    expect(notes).toContain('Removed the "transformer." prefix from 31 tensor names');
    expect(notes).toContain('lm_head.weight is tied to wte.weight');
    expect(notes).toContain('Skipped 3 attention-mask buffers');
  });

  it('refuses an untied lm_head, naming both tensors', () => {
    const raw = readSafetensors(tinyFile);
    const head = raw.get('wte.weight')!.data.slice();
    head[3 * 32 + 1]! += 0.01;
    raw.set('lm_head.weight', { shape: [50257, 32], data: head });
    const dir = writeModelDir('untied', raw, hfConfig);
    const err = catchStudio(() => loadGpt2Weights(dir));
    expect(err.code).toBe(ErrorCode.BAD_WEIGHTS);
    expect(err.message).toMatch(/"lm_head\.weight" differs from "wte\.weight" \(row 3, column 1/);
    expect(err.message).toContain('untied output heads are not supported');
    expect(err.message).toContain(path.join(dir, 'model.safetensors'));
  });

  it('exports in the HF layout and re-imports bit-exactly, with or without the prefix', () => {
    const w = loadGpt2Weights(tinyFile, { paddedVocabSize: 50304 });
    const out = path.join(tmp, 'export', 'nested');
    const { modelFile, configFile } = exportGpt2Weights(out, w.config, w.tensors);
    expect(fs.readdirSync(out).sort()).toEqual(['config.json', 'model.safetensors']);
    expect(JSON.parse(fs.readFileSync(configFile, 'utf8'))).toEqual(toHfConfig(w.config));

    // the file is the fixture minus the mask buffers, tensor for tensor and bit for bit
    const h = readSafetensorsHeader(modelFile);
    expect(h.metadata.format).toBe('pt');
    expect(
      h.tensors.some((t) => t.name === 'lm_head.weight' || /^h\.\d+\.attn\.(bias|masked_bias)$/.test(t.name)),
    ).toBe(false);
    const exported = readSafetensors(modelFile);
    const fixture = readSafetensors(tinyFile, { filter: (n) => !/\.attn\.bias$/.test(n) });
    expect(exported.get('wte.weight')!.shape).toEqual([50257, 32]);
    expect(exported.get('h.1.mlp.c_fc.weight')!.shape).toEqual([32, 128]);
    expectSameTensors(new Map([...exported].sort()), new Map([...fixture].sort()));

    const back = loadGpt2Weights(out, { paddedVocabSize: 50304 });
    expect(back.config).toEqual(w.config);
    expectSameTensors(back.tensors, w.tensors);

    const outPrefixed = path.join(tmp, 'export-prefixed');
    exportGpt2Weights(outPrefixed, w.config, w.tensors, { prefix: true });
    expect(
      readSafetensorsHeader(path.join(outPrefixed, 'model.safetensors')).tensors.every((t) =>
        t.name.startsWith('transformer.'),
      ),
    ).toBe(true);
    expectSameTensors(loadGpt2Weights(outPrefixed, { paddedVocabSize: 50304 }).tensors, w.tensors);
  });

  it('names a missing, a mis-shaped and an unexpected tensor, and the file', () => {
    const raw = readSafetensors(tinyFile);
    raw.delete('h.1.mlp.c_fc.bias');
    let dir = writeModelDir('missing', raw, hfConfig);
    let err = catchStudio(() => loadGpt2Weights(dir));
    expect(err.code).toBe(ErrorCode.BAD_WEIGHTS);
    expect(err.message).toContain('missing tensor h.1.mlp.c_fc.bias');
    expect(err.message).toContain(path.join(dir, 'model.safetensors'));

    const raw2 = readSafetensors(tinyFile);
    raw2.set('h.0.attn.c_attn.weight', { shape: [32, 95], data: new Float32Array(32 * 95) });
    dir = writeModelDir('misshaped', raw2, hfConfig);
    err = catchStudio(() => loadGpt2Weights(dir));
    expect(err.code).toBe(ErrorCode.BAD_WEIGHTS);
    expect(err.message).toContain(
      '"h.0.attn.c_attn.weight" has shape [32, 95], expected [32, 96] (HF Conv1D layout [in, out])',
    );

    const raw3 = readSafetensors(tinyFile);
    raw3.set('h.2.ln_1.weight', { shape: [32], data: new Float32Array(32) });
    dir = writeModelDir('extra', raw3, hfConfig);
    err = catchStudio(() => loadGpt2Weights(dir));
    expect(err.code).toBe(ErrorCode.BAD_WEIGHTS);
    expect(err.message).toContain('unexpected tensor h.2.ln_1.weight');
    expect(err.message).toContain('n_layer 2');

    // a config.json that does not belong to the weights
    dir = writeModelDir('wrong-config', readSafetensors(tinyFile), { ...hfConfig, n_embd: 64, n_head: 1 });
    err = catchStudio(() => loadGpt2Weights(dir));
    expect(err.code).toBe(ErrorCode.BAD_WEIGHTS);
    expect(err.message).toMatch(/"wpe\.weight" has shape \[128, 32\], expected \[128, 64\]/);
    expect(err.hint).toContain(path.join(dir, 'config.json'));
  });

  it('without config.json, infers the shapes and asks for n_head when n_embd gives no answer', () => {
    const dir = writeModelDir('no-config', readSafetensors(tinyFile));
    const err = catchStudio(() => loadGpt2Weights(dir));
    expect(err.code).toBe(ErrorCode.BAD_WEIGHTS);
    expect(err.message).toMatch(/n_head cannot be inferred for n_embd 32/);
    const w = loadGpt2Weights(dir, { nHead: 2 });
    expect(w.config).toEqual(loadGpt2Weights(tinyFile).config);
    expect(w.notes.join('\n')).toContain(
      'inferred n_embd 32, vocab_size 50257, n_positions 128, n_layer 2 from the tensor shapes',
    );
  });
});

describe('loadGpt2Weights on synthetic files', () => {
  it('infers n_head from the gpt2 shape (768 -> 12) and from n_embd / 64, and reports it', () => {
    const c768 = makeConfig({ nLayer: 1, nHead: 12, nEmbd: 768, blockSize: 4, vocabSize: 8, paddedVocabSize: 8 });
    const w = loadGpt2Weights(path.join(writeModelDir('w768', syntheticHf(c768)), 'model.safetensors'));
    expect(w.config).toEqual(c768);
    expect(w.notes.join('\n')).toContain('Inferred n_head 12 from n_embd 768 (the gpt2 shape)');

    const c128 = makeConfig({ nLayer: 3, nHead: 2, nEmbd: 128, blockSize: 16, vocabSize: 10, paddedVocabSize: 10 });
    const hf = syntheticHf(c128);
    const w2 = loadGpt2Weights(writeModelDir('w128', hf));
    expect(w2.config).toEqual(c128);
    expect(w2.notes.join('\n')).toContain('Inferred n_head 2 as n_embd / 64');
    expect(w2.tensors.get('h.2.mlp.c_proj.weight')).toEqual(transpose2d(hf.get('h.2.mlp.c_proj.weight')!));
  });

  it('treats extra wte rows in the file as padding', () => {
    const c = makeConfig({ nLayer: 1, nHead: 1, nEmbd: 8, blockSize: 4, vocabSize: 5, paddedVocabSize: 5 });
    const hf = syntheticHf(c);
    const wte = new Float32Array(8 * 8);
    wte.set(hf.get('wte.weight')!.data);
    hf.set('wte.weight', { shape: [8, 8], data: wte });
    const dir = writeModelDir('padded-file', hf, { ...toHfConfig(c) });
    const w = loadGpt2Weights(dir);
    expect(w.config.vocabSize).toBe(5);
    expect(w.config.paddedVocabSize).toBe(8);
    expect(w.notes.join('\n')).toContain('rows 5..7 are kept as padding');
    const trimmed = loadGpt2Weights(dir, { paddedVocabSize: 6 });
    expect(trimmed.tensors.get('wte.weight')!.shape).toEqual([6, 8]);
    expect(sameBits(trimmed.tensors.get('wte.weight')!.data, wte.subarray(0, 6 * 8))).toBe(true);
  });

  it('gives FILE_NOT_FOUND naming the resolved path', () => {
    const rel = path.relative(process.cwd(), path.join(tmp, 'absent'));
    let err = catchStudio(() => loadGpt2Weights(rel));
    expect(err.code).toBe(ErrorCode.FILE_NOT_FOUND);
    expect(err.message).toContain(path.join(tmp, 'absent'));
    err = catchStudio(() => loadGpt2Weights(tmp));
    expect(err.code).toBe(ErrorCode.FILE_NOT_FOUND);
    expect(err.message).toContain(`${tmp} has no model.safetensors`);
  });

  it('refuses to export tensors that do not match the config, writing nothing', () => {
    const c = makeConfig({ nLayer: 1, nHead: 1, nEmbd: 8, blockSize: 4, vocabSize: 5, paddedVocabSize: 8 });
    const tensors: NamedTensors = new Map(
      paramSpecs(c).map((s) => [
        s.name,
        { shape: s.shape, data: new Float32Array(s.shape.reduce((a, b) => a * b, 1)) },
      ]),
    );
    tensors.delete('ln_f.bias');
    tensors.set('h.0.mlp.c_fc.weight', { shape: [8, 32], data: new Float32Array(256) });
    const out = path.join(tmp, 'out');
    const err = catchStudio(() => exportGpt2Weights(out, c, tensors));
    expect(err.code).toBe(ErrorCode.BAD_WEIGHTS);
    expect(err.message).toContain('"h.0.mlp.c_fc.weight" has shape [8, 32], expected [32, 8]');
    expect(err.message).toContain('missing tensor "ln_f.bias"');
    expect(fs.existsSync(out)).toBe(false);
  });
});
