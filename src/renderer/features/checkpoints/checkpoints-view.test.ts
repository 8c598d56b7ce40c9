import { describe, expect, it } from 'vitest';
import {
  branchBlocked,
  DEFAULT_PROMPT,
  deleteBlocked,
  deleteConsequences,
  sortCheckpoints,
  startingPrompt,
  valLossText,
  type CheckpointEntry,
} from './checkpoints-view';

const entry = (p: Partial<CheckpointEntry>): CheckpointEntry => ({
  runId: 'run-a',
  step: 10,
  path: '/x',
  sizeBytes: 100,
  valLoss: null,
  valLossStep: null,
  hellaswag: null,
  createdAt: 1000,
  runName: 'A',
  runStatus: 'done',
  keepLast: 3,
  latest: false,
  sft: false,
  ...p,
});

describe("a checkpoint's val loss says where it comes from", () => {
  it('its own weights: the value; a stop or pause checkpoint: the step it was measured at', () => {
    expect(valLossText(entry({ step: 50, valLoss: 3.14159, valLossStep: 50 })).text).toBe('3.1416');
    expect(valLossText(entry({ step: 57, valLoss: 3.14159, valLossStep: 50 })).text).toBe('3.1416 @ step 50');
    expect(valLossText(entry({ step: 57, valLoss: null, valLossStep: null })).text).toBe('—');
  });
});

describe('checkpoint table helpers', () => {
  const list = [
    entry({ step: 10, valLoss: 3.1, createdAt: 1, sizeBytes: 5 }),
    entry({ step: 20, valLoss: null, createdAt: 2, sizeBytes: 7, hellaswag: 0.3 }),
    entry({ step: 30, valLoss: 2.5, createdAt: 3, sizeBytes: 6, runId: 'run-b', runName: 'b' }),
  ];

  it('sorts by a column, missing values last in both directions', () => {
    expect(sortCheckpoints(list, { key: 'valLoss', dir: 'asc' }).map((c) => c.step)).toEqual([30, 10, 20]);
    expect(sortCheckpoints(list, { key: 'valLoss', dir: 'desc' }).map((c) => c.step)).toEqual([10, 30, 20]);
    expect(sortCheckpoints(list, { key: 'hellaswag', dir: 'asc' }).map((c) => c.step)).toEqual([20, 30, 10]);
    expect(sortCheckpoints(list, { key: 'size', dir: 'desc' }).map((c) => c.step)).toEqual([20, 30, 10]);
    expect(sortCheckpoints(list, { key: 'created', dir: 'desc' }).map((c) => c.step)).toEqual([30, 20, 10]);
    expect(sortCheckpoints(list, { key: 'run', dir: 'asc' }).map((c) => c.runName)).toEqual(['A', 'A', 'b']);
  });

  it('refuses deleting the newest checkpoint of a running run only', () => {
    expect(deleteBlocked(entry({ latest: true, runStatus: 'running' }))).toMatch(/running run cannot be deleted/);
    expect(deleteBlocked(entry({ latest: false, runStatus: 'running' }))).toBeNull();
    expect(deleteBlocked(entry({ latest: true, runStatus: 'stopped' }))).toBeNull();
  });

  it('says what deleting means with keep_last', () => {
    const run = [entry({ step: 30, latest: true }), entry({ step: 20 }), entry({ step: 10 })];
    expect(deleteConsequences(run[0]!, run)[0]).toMatch(/resuming that run would continue from step 20/);
    expect(deleteConsequences(run[2]!, run)).toEqual([
      expect.stringMatching(
        /^keep_last is 3 .*nothing else is removed now; if the run is resumed, it keeps its newest 3 checkpoints/,
      ),
    ]);
    const running = run.map((c) => ({ ...c, runStatus: 'running' as const }));
    expect(deleteConsequences(running[1]!, running)).toEqual([
      expect.stringMatching(/removed anyway after 2 more checkpoints/),
    ]);
    expect(
      deleteConsequences(entry({ keepLast: 0, latest: true, step: 5 }), [
        entry({ keepLast: 0, latest: true, step: 5 }),
      ]),
    ).toEqual([
      expect.stringMatching(/only checkpoint .* start it over from step 0/),
      expect.stringMatching(/keep_last is 0 .* keeps every checkpoint/),
    ]);
  });

  it('refuses resuming from the end of a run', () => {
    expect(branchBlocked(entry({ step: 50 }), 50)).toMatch(/nothing left to train/);
    expect(branchBlocked(entry({ step: 40 }), 50)).toBeNull();
    expect(branchBlocked(entry({ step: 40 }), undefined)).toBeNull();
  });

  it("starts the Sample dialog and the gallery from the same prompt: the runs' own, else the config default", () => {
    expect(DEFAULT_PROMPT).toBe("Hello, I'm a language model,");
    const sample = (prompt: unknown) => ({ sample: { prompt } });
    expect(startingPrompt([sample('Once')])).toBe('Once');
    expect(startingPrompt([sample('Once'), sample('Once')])).toBe('Once');
    expect(startingPrompt([sample('Once'), sample('Twice')])).toBe(DEFAULT_PROMPT);
    expect(startingPrompt([sample('Once'), {}])).toBe(DEFAULT_PROMPT);
    expect(startingPrompt([undefined, sample('  '), sample(3)])).toBe(DEFAULT_PROMPT);
    expect(startingPrompt([])).toBe(DEFAULT_PROMPT);
  });
});
