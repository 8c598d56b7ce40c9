/**
 * What a killed worker leaves in a run's checkpoints folder, and how the next start cleans it: a kill while pruning
 * must never leave a half-deleted checkpoint under its real name, and partial writes are removed with the space they
 * held reported.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { makeConfig, paramSpecs } from '../src/core/model/config';
import { initWeights } from '../src/core/model/init';
import { checkRunConfig } from '../src/shared/run-config';
import {
  cleanCheckpointLeftovers,
  listCheckpointSteps,
  pruneCheckpoints,
  readCheckpoint,
  writeCheckpoint,
} from '../src/node/checkpoints/files';

const mc = makeConfig({ nLayer: 1, nHead: 2, nEmbd: 16, blockSize: 16, vocabSize: 64, paddedVocabSize: 64 });
const rc = (() => {
  const r = checkRunConfig({ dataset: 'x', max_steps: 10, warmup_steps: 1 });
  if (!r.ok) throw new Error('config');
  return r.config;
})();

function save(runDir: string, step: number) {
  const w = initWeights(mc, step);
  const zeros = new Map(
    paramSpecs(mc).map((s) => [
      s.name,
      { dtype: 'F32' as const, shape: s.shape, data: new Float32Array(s.shape.reduce((a, b) => a * b, 1)) },
    ]),
  );
  return writeCheckpoint(runDir, {
    state: {
      step,
      runId: 'r',
      runConfig: rc,
      modelConfig: mc,
      trainer: {
        step,
        tokensSeen: 0,
        data: null,
        guard: { losses: [], consecutiveSkips: 0, rollbacksInARow: 0, skips: 0, rollbacks: 0 },
      },
      engine: 'test',
      metrics: {},
    },
    weights: w,
    optimizer: { step, m: zeros, v: zeros },
  });
}

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe('checkpoint leftovers', () => {
  it('prunes by renaming first, and lists only complete checkpoints', () => {
    const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-ck-'));
    dirs.push(runDir);
    for (const s of [1, 2, 3, 4]) save(runDir, s);
    expect(pruneCheckpoints(runDir, 2)).toEqual([1, 2]);
    expect(listCheckpointSteps(runDir)).toEqual([3, 4]);
    expect(fs.readdirSync(path.join(runDir, 'checkpoints')).sort()).toEqual(['step_000003', 'step_000004']);
    // what an older studio killed mid-prune left: a folder under its real name with only some of its files
    const half = path.join(runDir, 'checkpoints', 'step_000005');
    fs.mkdirSync(half);
    fs.writeFileSync(path.join(half, 'state.json'), '{}');
    fs.writeFileSync(path.join(half, 'config.json'), '{}');
    expect(listCheckpointSteps(runDir)).toEqual([3, 4]);
    for (const s of listCheckpointSteps(runDir))
      expect(() => readCheckpoint(path.join(runDir, 'checkpoints', `step_00000${s}`))).not.toThrow();
  });

  it('removes partial writes, interrupted deletions and incomplete folders, restores a moved-aside re-save, and reports the space', () => {
    const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-ck-'));
    dirs.push(runDir);
    const parent = path.join(runDir, 'checkpoints');
    save(runDir, 1);
    save(runDir, 3);
    // a kill between the two renames of a re-save of step 3: the old copy aside, the name free
    fs.renameSync(path.join(parent, 'step_000003'), path.join(parent, '.old-step_000003-4242'));
    fs.mkdirSync(path.join(parent, '.tmp-step_000002-999'));
    fs.writeFileSync(path.join(parent, '.tmp-step_000002-999', 'model.safetensors'), Buffer.alloc(4096));
    fs.mkdirSync(path.join(parent, '.deleting-step_000000-1-2'));
    fs.writeFileSync(path.join(parent, '.deleting-step_000000-1-2', 'optimizer.safetensors'), Buffer.alloc(1024));
    fs.mkdirSync(path.join(parent, 'step_000005'));
    fs.writeFileSync(path.join(parent, 'step_000005', 'state.json'), '{}');
    const r = cleanCheckpointLeftovers(runDir);
    expect(r.restored).toEqual(['step_000003']);
    expect(r.removed.sort()).toEqual(['.deleting-step_000000-1-2', '.tmp-step_000002-999', 'step_000005']);
    expect(r.freedBytes).toBeGreaterThanOrEqual(4096 + 1024 + 2);
    expect(fs.readdirSync(parent).sort()).toEqual(['step_000001', 'step_000003']);
    expect(listCheckpointSteps(runDir)).toEqual([1, 3]);
    expect(readCheckpoint(path.join(parent, 'step_000003')).state.step).toBe(3);
    expect(cleanCheckpointLeftovers(runDir)).toEqual({ removed: [], restored: [], freedBytes: 0 });
  });
});
