import { describe, expect, it } from 'vitest';
import type { RunStatus } from '../../../shared/contract';
import { groupRuns, runDataset, runEngine, statusChoices, statusCounts, statusSummary } from './runs-view';

interface R {
  id: string;
  status: RunStatus;
  preset: string | null;
  config: Record<string, unknown>;
  engine: string | null;
  attempts: { engine: string }[];
  tags: string[];
}

const run = (id: string, status: RunStatus, more: Partial<R> = {}): R => ({
  id,
  status,
  preset: null,
  config: {},
  engine: null,
  attempts: [],
  tags: [],
  ...more,
});

// groupRuns reads only the fields above; the casts spare the tests the whole Run record
const group = (rs: R[], by: Parameters<typeof groupRuns>[1]) =>
  groupRuns(rs as unknown as Parameters<typeof groupRuns>[0], by).map((g) => ({
    label: g.label,
    ids: (g.runs as unknown as R[]).map((r) => r.id),
  }));

describe('runs view', () => {
  const runs = [
    run('a', 'done', { config: { dataset: 'tiny' }, preset: 'nano', tags: ['x', 'y'], attempts: [{ engine: 'tfjs' }] }),
    run('b', 'running', { config: { dataset: 'builtin' }, preset: 'small', engine: 'native-cpu' }),
    run('c', 'failed', { config: { dataset: 'tiny' }, tags: ['y'] }),
    run('d', 'done', { preset: 'nano', engine: 'auto' }),
  ];

  it('counts the runs by status', () => {
    expect(statusCounts(runs)).toEqual({ done: 2, running: 1, failed: 1 });
    expect(statusCounts([])).toEqual({});
  });

  it('offers All and the statuses that occur, with counts, in the usual order', () => {
    const choices = statusChoices(runs, 'all');
    expect(choices.map((c) => c.value)).toEqual(['all', 'running', 'done', 'failed']);
    expect(statusSummary(choices)).toBe('All 4 · Running 1 · Done 2 · Failed 1');
  });

  it('keeps a selected status that no run has any more, at 0', () => {
    expect(statusChoices(runs, 'paused').find((c) => c.value === 'paused')).toEqual({
      value: 'paused',
      label: 'Paused',
      count: 0,
    });
  });

  it('groups by dataset, preset, engine and status, the runs without a value last', () => {
    expect(group(runs, 'dataset')).toEqual([
      { label: 'builtin', ids: ['b'] },
      { label: 'tiny', ids: ['a', 'c'] },
      { label: 'No dataset', ids: ['d'] },
    ]);
    expect(group(runs, 'preset')).toEqual([
      { label: 'nano', ids: ['a', 'd'] },
      { label: 'small', ids: ['b'] },
      { label: 'No preset', ids: ['c'] },
    ]);
    expect(group(runs, 'engine')).toEqual([
      { label: 'native-cpu', ids: ['b'] },
      { label: 'tfjs', ids: ['a'] },
      { label: 'Not started yet', ids: ['c', 'd'] },
    ]);
    expect(group(runs, 'status')).toEqual([
      { label: 'Running', ids: ['b'] },
      { label: 'Done', ids: ['a', 'd'] },
      { label: 'Failed', ids: ['c'] },
    ]);
  });

  it('puts a run with two tags in both tag groups', () => {
    expect(group(runs, 'tag')).toEqual([
      { label: 'x', ids: ['a'] },
      { label: 'y', ids: ['a', 'c'] },
      { label: 'No tag', ids: ['b', 'd'] },
    ]);
  });

  it('makes one group of every run when grouping by nothing', () => {
    expect(group(runs, 'none')).toEqual([{ label: '', ids: ['a', 'b', 'c', 'd'] }]);
    expect(group([], 'dataset')).toEqual([]);
  });

  it('reads the dataset and the engine that ran', () => {
    expect(runDataset({ config: { dataset: 'tiny' } })).toBe('tiny');
    expect(runDataset({ config: { dataset: 3 } })).toBeUndefined();
    expect(runEngine({ engine: 'auto', attempts: [] })).toBeUndefined();
    expect(runEngine({ engine: 'native-cpu', attempts: [] })).toBe('native-cpu');
  });
});
