/**
 * Malformed inputs are refused cleanly (see ../shared/fixtures/bad-inputs/README.md): every broken file of the
 * fixture folder, every out-of-range run config field, and HellaSwag data that is a folder, empty or all bad. Each
 * case goes through the command a user types (the CLI's `main`, as bin/gpt2-studio.mjs calls it) and through the
 * function or service behind it, and expects:
 *   - a non-zero exit, a message that names the file (or the config field) and says what is wrong, a hint, no stack;
 *   - the StudioError code of its kind (BAD_SAFETENSORS, BAD_SHARD, BAD_DATA, BAD_CONFIG);
 *   - the workspace exactly as it was: no run, model, dataset, download or partial file left behind.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main';
import { parseHellaswag } from '../../src/core/evals/hellaswag';
import { openShardLoader } from '../../src/node/datasets/loader';
import { readShardLayout, readShardTokens } from '../../src/node/datasets/shards';
import { Studio } from '../../src/node/studio';
import { loadGpt2Weights } from '../../src/node/models/weights';
import { ErrorCode, StudioError } from '../../src/shared/errors';
import { hasFixture, sharedPath } from '../shared';

const BAD = sharedPath('fixtures/bad-inputs');
const present = hasFixture('fixtures/bad-inputs/README.md');
/** small real weights, for the one HellaSwag case that gets as far as scoring */
const TINY = sharedPath('fixtures/gpt2-tiny');
const tinyPresent = hasFixture('fixtures/gpt2-tiny/model.safetensors');

/** What each broken safetensors file must be refused for (the README's list of causes). */
const SAFETENSORS: Record<string, RegExp> = {
  'st_empty.safetensors': /0 bytes long \(empty\); expected at least 8 bytes/,
  'st_header_longer_than_file.safetensors': /header length is \d+ bytes.*but the file has only \d+ bytes/,
  'st_header_not_json.safetensors': /header .* is not valid UTF-8 JSON/,
  'st_offsets_past_end.safetensors': /data_offsets \[\d+, \d+\], past the end of the data section/,
  'st_shape_vs_bytes.safetensors':
    /shape \[[\d, ]+\] and dtype \w+, which need .* bytes, but its data_offsets .* hold \d+ bytes/,
  'st_unsupported_dtype.safetensors': /dtype "\w+", which is not supported; supported dtypes are/,
};

/** What each broken shard must be refused for. */
const SHARDS: Record<string, RegExp> = {
  'shard_bad_magic.bin': /starts with magic number \d+; an llm\.c token shard starts with 20240520/,
  'shard_truncated.bin': /but its header says \d+ tokens, so it should have \d+ bytes: it is truncated/,
  'shard_odd_bytes.bin': /an odd number, but tokens are 2-byte uint16 values/,
};

const HELLASWAG = 'hellaswag_bad_lines.jsonl';
/** the broken lines of hellaswag_bad_lines.jsonl and what each is reported for */
const HELLASWAG_BAD_LINES: [number, RegExp][] = [
  [2, /not valid JSON/],
  [3, /"endings" must hold 4 strings; found 3/],
  [4, /"label" must be 0, 1, 2 or 3, found 7/],
  [5, /no "ctx" string/],
];

/** A run config that trains: each config case breaks one field of it. */
const BASE = {
  model: { n_layer: 1, n_head: 2, n_embd: 32, block_size: 64 },
  dataset: 'builtin',
  engine: 'native-cpu',
  total_batch_size: 256,
  batch_size: 4,
  seq_len: 64,
  max_steps: 4,
  warmup_steps: 1,
  eval_interval: 0,
  hellaswag_interval: 0,
  sample_interval: 2,
  checkpoint_interval: 0,
  keep_last: 0,
  seed: 1,
  sample: { prompt: 'Once', count: 1, max_tokens: 8 },
};

/** [case, the field the error must name, the broken config] */
const CONFIGS: [string, string, Record<string, unknown>][] = [
  ['vocab_size: 1e9', 'model.vocab_size', { model: { ...BASE.model, vocab_size: 1e9 } }],
  ['n_embd: 1e7', 'model.n_embd', { model: { ...BASE.model, n_embd: 1e7 } }],
  ['block_size: 1e8', 'model.block_size', { model: { ...BASE.model, block_size: 1e8 } }],
  ['n_layer: 1e6', 'model.n_layer', { model: { ...BASE.model, n_layer: 1e6 } }],
  ['seed: -1', 'seed', { seed: -1 }],
  ['eval_iters: 1e9', 'eval_iters', { eval_interval: 2, eval_iters: 1e9 }],
  // sampling is on (sample_interval 2), so the sample must fit in the 64-token context
  ['sample.max_tokens: 1000 (context 64)', 'sample.max_tokens', { sample: { ...BASE.sample, max_tokens: 1000 } }],
  ['sample.max_tokens: 64 (context 64)', 'sample.max_tokens', { sample: { ...BASE.sample, max_tokens: 64 } }],
];

/** A stack frame line, as Node prints them: never shown to a user for these errors. */
const STACK = /^\s+at .+:\d+:\d+\)?$/m;

interface Refusal {
  input: string;
  via: string;
  exit: number;
  code: string;
}

describe.skipIf(!present)('bad inputs are refused with a named error, and leave the workspace as it was', () => {
  let home: string;
  let inputs: string;
  let studio: Studio;
  const refusals: Refusal[] = [];
  const started = performance.now();

  beforeAll(async () => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-faults-bad-'));
    // the user's own files live outside the workspace, as they would
    inputs = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-faults-inputs-'));
    // a workspace in use: one dataset, so that a config case fails for its own field and not for a missing dataset
    expect(await main(['prepare', 'builtin', '--size-mb', '1', '--home', home], { out: () => {}, err: () => {} })).toBe(
      0,
    );
    studio = new Studio({ home });
  });

  afterAll(() => {
    studio?.close();
    for (const d of [home, inputs]) if (d) fs.rmSync(d, { recursive: true, force: true });
    if (refusals.length === 0) return;
    // the record of this suite: quoted in the reliability notes
    const w = Math.max(...refusals.map((r) => r.input.length));
    const v = Math.max(...refusals.map((r) => r.via.length));
    console.log(
      [
        'fault suite: bad inputs',
        `${'input'.padEnd(w)}  ${'via'.padEnd(v)}  exit  code             left behind`,
        ...refusals.map(
          (r) =>
            `${r.input.padEnd(w)}  ${r.via.padEnd(v)}  ${String(r.exit).padStart(4)}  ${r.code.padEnd(15)}  nothing`,
        ),
        `bad inputs refused: ${refusals.length} refusals of ${new Set(refusals.map((r) => r.input)).size} inputs, each with a named code, the file or field in its message, no stack, and the workspace unchanged; duration ${((performance.now() - started) / 1000).toFixed(1)} s`,
      ].join('\n'),
    );
  });

  async function cli(args: string[]): Promise<{ exit: number; out: string; err: string }> {
    let out = '';
    let err = '';
    const exit = await main([...args, '--home', home], { out: (s) => (out += s), err: (s) => (err += s) });
    return { exit, out, err };
  }

  /** Every path in the workspace except the database files (which any command may touch), sorted. */
  function workspace(): string[] {
    return (fs.readdirSync(home, { recursive: true }) as string[])
      .filter((p) => !/^studio\.db(-wal|-shm|-journal)?$/.test(p))
      .sort();
  }

  /** What the service lists: runs, models and datasets. */
  async function listed(): Promise<{ runs: string[]; models: string[]; datasets: string[] }> {
    return {
      runs: (await studio.invoke('runs-list')).map((r) => r.id),
      models: (await studio.invoke('models-list')).map((m) => m.key),
      datasets: (await studio.invoke('datasets-list')).map((d) => d.id),
    };
  }

  /** Runs `body` and checks that the workspace and the service's lists are the same afterwards. */
  async function leavesNothing(body: () => Promise<void>): Promise<void> {
    const files = workspace();
    const before = await listed();
    expect(before.datasets).toEqual(['builtin']);
    await body();
    expect(workspace(), 'files in the workspace').toEqual(files);
    expect(await listed()).toEqual(before);
    expect(studio.store.integrityCheck()).toEqual(['ok']);
  }

  /** A refusal as the user sees it: non-zero exit, what was wrong with `names` in it, a hint, and no stack. */
  function expectRefused(r: { exit: number; err: string }, names: string, what: RegExp): void {
    expect(r.exit, r.err).not.toBe(0);
    expect(r.err).toMatch(/^error: /m);
    expect(r.err).toContain(names);
    expect(r.err).toMatch(what);
    expect(r.err).toMatch(/^hint: \S/m);
    expect(r.err).not.toMatch(STACK);
  }

  /** The StudioError that `f` throws (or rejects with). */
  async function caught(f: () => unknown): Promise<StudioError> {
    try {
      await f();
    } catch (e) {
      expect(e, String(e)).toBeInstanceOf(StudioError);
      return e as StudioError;
    }
    throw new Error('expected an error, but none was thrown');
  }

  const record = (input: string, via: string, exit: number, code: string) => refusals.push({ input, via, exit, code });

  it('every file of the fixture folder has a case here', () => {
    const files = fs
      .readdirSync(BAD)
      .filter((f) => f !== 'README.md')
      .sort();
    expect(files).toEqual([...Object.keys(SAFETENSORS), ...Object.keys(SHARDS), HELLASWAG].sort());
  });

  it.each(Object.keys(SAFETENSORS))(
    '%s: import and info --weights refuse it (BAD_SAFETENSORS), naming the file; nothing is imported',
    async (name) => {
      const file = path.join(BAD, name);
      await leavesNothing(async () => {
        const imp = await cli(['import', file]);
        expectRefused(imp, file, SAFETENSORS[name]!);
        const info = await cli(['info', '--weights', file]);
        expectRefused(info, file, SAFETENSORS[name]!);

        const e1 = await caught(() => studio.invoke('models-import', { path: file }));
        expect(e1.code).toBe(ErrorCode.BAD_SAFETENSORS);
        expect(e1.message).toContain(file);
        const e2 = await caught(() => loadGpt2Weights(file));
        expect(e2.code).toBe(ErrorCode.BAD_SAFETENSORS);
        expect(e2.message).toMatch(SAFETENSORS[name]!);
        expect(fs.readdirSync(path.join(home, 'models'))).toEqual([]);
        record(name, 'import', imp.exit, e1.code);
        record(name, 'info --weights', info.exit, e2.code);
      });
    },
  );

  it.each(Object.keys(SHARDS))(
    '%s: prepare local and the shard reader refuse it (BAD_SHARD), naming the file; no dataset is made',
    async (name) => {
      const file = path.join(BAD, name);
      await leavesNothing(async () => {
        const prep = await cli(['prepare', 'local', '--file', file, '--name', 'imported']);
        expectRefused(prep, file, SHARDS[name]!);

        // the header check, the whole-file read, and the loader a run opens (it checks every shard before training)
        for (const read of [
          () => readShardLayout(file),
          () => readShardTokens(file),
          () => openShardLoader([file], { B: 1, T: 8 }),
        ]) {
          const e = await caught(read);
          expect(e.code).toBe(ErrorCode.BAD_SHARD);
          expect(e.message).toContain(file);
          expect(e.message).toMatch(SHARDS[name]!);
        }
        expect(fs.existsSync(path.join(home, 'datasets', 'imported'))).toBe(false);
        record(name, 'prepare local', prep.exit, ErrorCode.BAD_SHARD);
        record(name, 'shard reader', 1, ErrorCode.BAD_SHARD);
      });
    },
  );

  // --weights is not read before the data is parsed: the strict refusals need no model
  const weights = tinyPresent ? TINY : path.join(BAD, 'st_empty.safetensors');

  it(`${HELLASWAG}: --strict refuses it at line 2 (BAD_DATA), naming the file`, async () => {
    const file = path.join(BAD, HELLASWAG);
    await leavesNothing(async () => {
      const r = await cli(['hellaswag', '--weights', weights, '--data', file, '--strict']);
      expectRefused(r, `${file}, line 2`, /not valid JSON/);
      const e = await caught(() => parseHellaswag(fs.readFileSync(file, 'utf8'), { strict: true, source: file }));
      expect(e.code).toBe(ErrorCode.BAD_DATA);
      expect(e.message).toBe(`${file}, line 2: not valid JSON.`);
      record(HELLASWAG, 'hellaswag --strict', r.exit, e.code);
    });
  });

  it(`${HELLASWAG}: the default mode reports each broken line by number, skips it, and scores lines 1 and 6`, async () => {
    const file = path.join(BAD, HELLASWAG);
    const parsed = parseHellaswag(fs.readFileSync(file, 'utf8'), { source: file });
    expect(parsed.examples.map((x) => x.line)).toEqual([1, 6]);
    // line 6 stores its label as the string "2", as the Hugging Face copy does
    expect(parsed.examples[1]!.label).toBe(2);
    expect(parsed.skipped.map((s) => s.line)).toEqual(HELLASWAG_BAD_LINES.map(([l]) => l));
    HELLASWAG_BAD_LINES.forEach(([, what], i) => expect(parsed.skipped[i]!.message).toMatch(what));
    if (!tinyPresent) return; // scoring needs the gpt2-tiny fixture
    await leavesNothing(async () => {
      const r = await cli(['hellaswag', '--weights', TINY, '--data', file, '--engine', 'native-cpu']);
      expect(r.exit, r.err).toBe(0);
      for (const [line, what] of HELLASWAG_BAD_LINES) {
        expect(r.err).toMatch(
          new RegExp(
            `^warning: ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}, line ${line}: ${what.source}; skipped$`,
            'm',
          ),
        );
      }
      expect(r.err).toContain('4 malformed line(s) skipped');
      expect(r.out).toMatch(/^acc: \d\/2=/);
      expect(r.err).not.toMatch(STACK);
    });
  });

  it('HellaSwag data that is a folder, an empty file, or only broken lines: a clear error in both modes, no stack', async () => {
    const empty = path.join(inputs, 'empty.jsonl');
    fs.writeFileSync(empty, '');
    const allBad = path.join(inputs, 'all-bad.jsonl');
    // the fixture's broken lines alone
    fs.writeFileSync(
      allBad,
      fs.readFileSync(path.join(BAD, HELLASWAG), 'utf8').split('\n').slice(1, 5).join('\n') + '\n',
    );
    await leavesNothing(async () => {
      // exit 2 is the CLI's BAD_ARGUMENT
      const dir = await cli(['hellaswag', '--weights', weights, '--data', BAD]);
      expectRefused(dir, BAD, /is a folder, not a file/);
      expect(dir.exit).toBe(2);
      record('a folder as --data', 'hellaswag', dir.exit, ErrorCode.BAD_ARGUMENT);

      for (const strict of [false, true]) {
        const flags = strict ? ['--strict'] : [];
        const via = `hellaswag${strict ? ' --strict' : ''}`;
        const e = await cli(['hellaswag', '--weights', weights, '--data', empty, ...flags]);
        expectRefused(e, empty, /holds no HellaSwag example: it is empty/);
        const ee = await caught(() => parseHellaswag('', { strict, source: empty }));
        expect(ee.code).toBe(ErrorCode.BAD_DATA);
        record('an empty HellaSwag file', via, e.exit, ee.code);

        const b = await cli(['hellaswag', '--weights', weights, '--data', allBad, ...flags]);
        expectRefused(
          b,
          allBad,
          strict
            ? /, line 1: not valid JSON/
            : /holds no valid HellaSwag example: all 4 lines are malformed \(line 1: not valid JSON\)/,
        );
        const be = await caught(() => parseHellaswag(fs.readFileSync(allBad, 'utf8'), { strict, source: allBad }));
        expect(be.code).toBe(ErrorCode.BAD_DATA);
        record('only broken HellaSwag lines', via, b.exit, be.code);
      }
    });
  });

  it('the base config of the config cases is valid', async () => {
    expect(await studio.invoke('config-validate', { config: BASE })).toEqual([]);
  });

  it.each(CONFIGS)(
    'train --config with %s exits non-zero naming %s (BAD_CONFIG); no run is made',
    async (label, field, patch) => {
      const config = { ...BASE, ...patch };
      const file = path.join(inputs, `${label.replace(/[^a-z0-9]+/gi, '-')}.json`);
      fs.writeFileSync(file, JSON.stringify(config));
      await leavesNothing(async () => {
        const r = await cli(['train', '--config', file]);
        expectRefused(r, field, /The run config is not valid/);
        // the message says which field, with its limit
        expect(r.err).toMatch(
          new RegExp(`${field.replace('.', '\\.')}: ${field.replace('.', '\\.')} (must be|= \\d+ leaves)`),
        );
        const runs = await cli(['runs', '--json']);
        expect(runs.exit).toBe(0);
        expect(JSON.parse(runs.out)).toEqual([]);
        expect(fs.readdirSync(path.join(home, 'runs'))).toEqual([]);

        const errors = await studio.invoke('config-validate', { config });
        expect(errors.map((x) => x.field)).toEqual([field]);
        const e = await caught(() => studio.invoke('runs-create', { config }));
        expect(e.code).toBe(ErrorCode.BAD_CONFIG);
        record(label, 'train --config', r.exit, e.code);
      });
    },
  );
});
