import { afterEach, describe, expect, it, vi } from 'vitest';
import { existsSync } from 'node:fs';
import {
  formatResult,
  lastJsonLine,
  median,
  printResult,
  REFERENCE_SCRIPT,
  referenceArgv,
  timeIt,
  type BenchResult,
} from './lib';
import { StudioError } from '../src/shared/errors';

describe('median', () => {
  it('takes the middle of an odd count, unsorted input', () => {
    expect(median([5, 1, 3])).toBe(3);
    expect(median([7])).toBe(7);
  });

  it('averages the two middle values of an even count', () => {
    expect(median([4, 1, 3, 2])).toBe(2.5);
  });

  it('sorts numerically, not as strings', () => {
    expect(median([10, 9, 100])).toBe(10);
  });

  it('does not modify its input', () => {
    const xs = [3, 1, 2];
    median(xs);
    expect(xs).toEqual([3, 1, 2]);
  });

  it('rejects an empty list', () => {
    expect(() => median([])).toThrow(StudioError);
  });
});

describe('result line', () => {
  const base: BenchResult = {
    name: 'train-c2',
    figure: 1234.5,
    unit: 'tokens/s',
    peer: 'pytorch',
    peerFigure: 1000,
    ratio: 1.2345,
  };

  afterEach(() => vi.restoreAllMocks());

  it('is one JSON line with the keys in the documented order', () => {
    const line = formatResult({ ...base, notes: 'two\nlines', config: { nLayer: 6 } });
    expect(line).not.toContain('\n');
    expect(Object.keys(JSON.parse(line))).toEqual([
      'name',
      'figure',
      'unit',
      'peer',
      'peerFigure',
      'ratio',
      'config',
      'notes',
    ]);
    expect(JSON.parse(line).notes).toBe('two\nlines');
  });

  it('keeps null peers and omits absent optional fields', () => {
    const line = formatResult({ ...base, peer: null, peerFigure: null, ratio: null });
    expect(JSON.parse(line)).toEqual({
      name: 'train-c2',
      figure: 1234.5,
      unit: 'tokens/s',
      peer: null,
      peerFigure: null,
      ratio: null,
    });
  });

  it('printResult writes exactly one newline-terminated line to stdout', () => {
    const writes: string[] = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      writes.push(String(chunk));
      return true;
    });
    printResult(base);
    expect(writes).toHaveLength(1);
    expect(writes[0]!.endsWith('\n')).toBe(true);
    expect(writes[0]!.slice(0, -1)).not.toContain('\n');
    expect(JSON.parse(writes[0]!)).toEqual(base);
  });
});

describe('timeIt', () => {
  it('runs warm-up untimed and returns one duration in seconds per iteration', async () => {
    let calls = 0;
    const times = await timeIt(
      async () => {
        calls++;
      },
      { warmup: 2, iters: 3 },
    );
    expect(calls).toBe(5);
    expect(times).toHaveLength(3);
    for (const t of times) expect(t).toBeGreaterThanOrEqual(0);
  });

  it('rejects zero iterations', async () => {
    await expect(timeIt(async () => {}, { warmup: 0, iters: 0 })).rejects.toThrow(StudioError);
  });
});

describe('reference helpers', () => {
  it('resolves the script next to this file', () => {
    expect(existsSync(REFERENCE_SCRIPT)).toBe(true);
  });

  it('builds the train_gpt2.py command line', () => {
    const argv = referenceArgv({
      mode: 'forward',
      nLayer: 6,
      nHead: 6,
      nEmbd: 384,
      vocab: 50304,
      blockSize: 256,
      batch: 4,
      seq: 256,
      steps: 3,
      warmup: 1,
      threads: 2,
    });
    expect(argv.slice(1)).toEqual([
      '--mode',
      'forward',
      '--n-layer',
      '6',
      '--n-head',
      '6',
      '--n-embd',
      '384',
      '--vocab',
      '50304',
      '--block-size',
      '256',
      '--batch',
      '4',
      '--seq',
      '256',
      '--steps',
      '3',
      '--warmup',
      '1',
      '--threads',
      '2',
    ]);
  });

  it('finds the last JSON object line among log output', () => {
    expect(lastJsonLine('loading\n{"a": 1}\nwarning\n{"b": 2}\n\n')).toEqual({ b: 2 });
    expect(lastJsonLine('no json here\n[1,2]\n')).toBeNull();
  });
});
