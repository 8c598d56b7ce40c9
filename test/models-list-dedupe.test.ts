/**
 * models-list offers a checkpoint once even when a branched run shares its files by hard links: under the run that
 * wrote it. A copied checkpoint (another file) is a model of its own.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ModelService, onePerWeightsFile, weightsIdentity } from '../src/node/models/service';
import type { Store } from '../src/node/store';
import type { ModelEntry } from '../src/shared/models';

let tmp: string;

beforeEach(() => {
  tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-models-dedupe-')));
});
afterEach(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

const modelConfig = {
  nLayer: 1,
  nHead: 1,
  nEmbd: 8,
  blockSize: 8,
  vocabSize: 16,
  paddedVocabSize: 16,
  layerNormEps: 1e-5,
};

/** A checkpoint folder with what list() reads (state.json) and a weights file of its own. */
function writeCheckpoint(dir: string, runId: string, step: number): void {
  fs.mkdirSync(dir, { recursive: true });
  const state = {
    format: 'gpt2-studio-checkpoint',
    version: 1,
    createdAt: new Date().toISOString(),
    runId,
    step,
    modelConfig,
    trainer: {},
    runConfig: {},
  };
  fs.writeFileSync(path.join(dir, 'state.json'), JSON.stringify(state));
  fs.writeFileSync(path.join(dir, 'model.safetensors'), `weights of ${runId} at ${step}`);
  fs.writeFileSync(path.join(dir, 'config.json'), '{}');
}

/** A branch of `src` as the checkpoint service makes it: the weights hard-linked, its own state.json. */
function branchCheckpoint(src: string, dir: string, runId: string, link = true): void {
  fs.mkdirSync(dir, { recursive: true });
  for (const f of ['model.safetensors', 'config.json']) {
    if (link) fs.linkSync(path.join(src, f), path.join(dir, f));
    else fs.copyFileSync(path.join(src, f), path.join(dir, f));
  }
  const state = JSON.parse(fs.readFileSync(path.join(src, 'state.json'), 'utf8')) as Record<string, unknown>;
  fs.writeFileSync(path.join(dir, 'state.json'), JSON.stringify({ ...state, runId }));
}

interface FakeRun {
  id: string;
  name: string;
  createdAt: number;
}
interface FakeCheckpoint {
  runId: string;
  step: number;
  path: string;
}

function service(runs: FakeRun[], checkpoints: FakeCheckpoint[]): ModelService {
  const store = {
    listRuns: () => runs,
    listCheckpoints: () =>
      checkpoints.map((c) => ({ ...c, sizeBytes: 10, valLoss: null, hellaswag: null, createdAt: 1000 })),
  } as unknown as Store;
  return new ModelService(path.join(tmp, 'home'), () => store);
}

describe('models-list and shared checkpoints', () => {
  it('lists a hard-linked checkpoint once, under the run that made it', () => {
    const a = path.join(tmp, 'runs', 'run-a', 'checkpoints', 'step_000004');
    const a8 = path.join(tmp, 'runs', 'run-a', 'checkpoints', 'step_000008');
    const b = path.join(tmp, 'runs', 'run-b', 'checkpoints', 'step_000004');
    const b8 = path.join(tmp, 'runs', 'run-b', 'checkpoints', 'step_000008');
    writeCheckpoint(a, 'run-a', 4);
    writeCheckpoint(a8, 'run-a', 8);
    branchCheckpoint(a, b, 'run-b');
    writeCheckpoint(b8, 'run-b', 8); // the branch trained on: its own weights
    expect(weightsIdentity(a)).toBe(weightsIdentity(b));
    expect(weightsIdentity(a)).not.toBe(weightsIdentity(a8));

    // the branch first (newest first, as the store lists them): the source's entry is still the one kept
    const list = service(
      [
        { id: 'run-a', name: 'source', createdAt: 1 },
        { id: 'run-b', name: 'source from step 4', createdAt: 2 },
      ],
      [
        { runId: 'run-b', step: 8, path: b8 },
        { runId: 'run-b', step: 4, path: b },
        { runId: 'run-a', step: 8, path: a8 },
        { runId: 'run-a', step: 4, path: a },
      ],
    ).list();
    expect(list.map((m) => m.key)).toEqual(['ckpt:run-b:8', 'ckpt:run-a:8', 'ckpt:run-a:4']);
    expect(list.find((m) => m.key === 'ckpt:run-a:4')?.label).toBe('source · step 4');
  });

  it('keeps the branch once its source is deleted', () => {
    const a = path.join(tmp, 'a', 'step_000004');
    const b = path.join(tmp, 'b', 'step_000004');
    writeCheckpoint(a, 'run-a', 4);
    branchCheckpoint(a, b, 'run-b');
    fs.rmSync(path.join(tmp, 'a'), { recursive: true });
    const list = service(
      [{ id: 'run-b', name: 'branch', createdAt: 2 }],
      [{ runId: 'run-b', step: 4, path: b }],
    ).list();
    expect(list.map((m) => m.key)).toEqual(['ckpt:run-b:4']);
  });

  it('lists a copied checkpoint (no hard links on that disk) as a model of its own', () => {
    const a = path.join(tmp, 'a', 'step_000004');
    const b = path.join(tmp, 'b', 'step_000004');
    writeCheckpoint(a, 'run-a', 4);
    branchCheckpoint(a, b, 'run-b', false);
    const list = service(
      [
        { id: 'run-a', name: 'source', createdAt: 1 },
        { id: 'run-b', name: 'branch', createdAt: 2 },
      ],
      [
        { runId: 'run-a', step: 4, path: a },
        { runId: 'run-b', step: 4, path: b },
      ],
    ).list();
    expect(list.map((m) => m.key)).toEqual(['ckpt:run-a:4', 'ckpt:run-b:4']);
  });

  it('falls back to the real path of a checkpoint without weights, so a folder reached twice counts once', () => {
    const dir = path.join(tmp, 'x');
    fs.mkdirSync(dir);
    fs.symlinkSync(dir, path.join(tmp, 'y'));
    expect(weightsIdentity(path.join(tmp, 'y'))).toBe(weightsIdentity(dir));
    expect(weightsIdentity(dir)).toBe(`path:${dir}`);
  });

  it('keeps the entry of the earliest run whatever the order', () => {
    const e = (key: string) => ({ key }) as ModelEntry;
    const kept = onePerWeightsFile([
      { entry: e('ckpt:c:1'), identity: 'i', runCreatedAt: 3 },
      { entry: e('ckpt:a:1'), identity: 'i', runCreatedAt: 1 },
      { entry: e('ckpt:x:1'), identity: 'j', runCreatedAt: 9 },
      { entry: e('ckpt:b:1'), identity: 'i', runCreatedAt: 2 },
    ]);
    expect(kept.map((m) => m.key)).toEqual(['ckpt:a:1', 'ckpt:x:1']);
  });
});
