/**
 * The nodes of a multi-node run in the store: Run.nodes, kept in runs.nodes_json and replaced by setRunNodes,
 * which node 0's service calls every few seconds while such a run trains.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode, StudioError } from '../src/shared/errors';
import { openStore, type RunNode, type Store } from '../src/node/store';

let home: string;
const open: Store[] = [];
beforeEach(() => {
  home = mkdtempSync(path.join(os.tmpdir(), 'gpt2-nodes-'));
});
afterEach(() => {
  for (const s of open.splice(0)) s.close();
  rmSync(home, { recursive: true, force: true });
});

function store(): Store {
  const s = openStore(home);
  open.push(s);
  return s;
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(StudioError);
    return (e as StudioError).code;
  }
  throw new Error('expected a StudioError, but nothing was thrown');
}

const T = Date.UTC(2026, 2, 14, 9, 30, 0);

const node0: RunNode = {
  node: 0,
  host: 'gpu-a01.lab.internal',
  ranks: [0, 1, 2, 3],
  status: 'running',
  joinedAt: T,
  lastHeartbeat: T + 62_000,
  step: 412,
  tokPerSec: 181_234.5,
};
const node1: RunNode = {
  node: 1,
  host: 'gpu-a02.lab.internal',
  ranks: [4, 5, 6, 7],
  status: 'lost',
  joinedAt: T + 1_500,
  lastHeartbeat: T + 31_000,
  step: null,
  tokPerSec: null,
};

describe('run nodes', () => {
  it('a new run is on one node: nodes is []', () => {
    const s = store();
    const run = s.createRun({ name: 'one node', config: {} });
    expect(run.nodes).toEqual([]);
    expect(s.getRun(run.id)?.nodes).toEqual([]);
  });

  it('round-trips through setRunNodes: by node rank, ranks ascending, only the fields of a node; [] clears', () => {
    const s = store();
    const run = s.createRun({ name: 'two nodes', config: { max_steps: 1000 } });
    // given out of order, with a rank list out of order and a field that is not a node's
    s.setRunNodes(run.id, [{ ...node1, ranks: [7, 4, 6, 5], extra: 'dropped' } as RunNode, node0]);
    expect(s.getRun(run.id)?.nodes).toEqual([node0, node1]);
    expect(s.listRuns()[0]?.nodes).toEqual([node0, node1]);
    // another connection (another process: the CLI) reads the same
    const other = openStore(home);
    try {
      expect(other.getRun(run.id)?.nodes).toEqual([node0, node1]);
    } finally {
      other.close();
    }
    // a heartbeat replaces the list
    const beat = { ...node0, lastHeartbeat: T + 65_000, step: 413 };
    s.setRunNodes(run.id, [beat, { ...node1, status: 'left' }]);
    expect(s.getRun(run.id)?.nodes).toEqual([beat, { ...node1, status: 'left' }]);
    s.setRunNodes(run.id, []);
    expect(s.getRun(run.id)?.nodes).toEqual([]);
  });

  it('changes nothing else: one row written, every other field of the run as it was', () => {
    const s = store();
    const run = s.createRun({ name: 'quiet', config: { max_steps: 10 }, tags: ['dp'] });
    s.updateRun(run.id, { status: 'running', startedAt: T, pid: 4242 });
    s.recordStep(run.id, { step: 3, metrics: { 'train/loss': 5.5 }, wallTime: T / 1000, tokensSeen: 2048 });
    s.addCheckpoint(run.id, { step: 3, path: '/x/step_000003', sizeBytes: 10 });
    const before = s.getRun(run.id)!;
    const changes = () => s.database.prepare('SELECT total_changes()').pluck().get() as number;
    const was = changes();
    s.setRunNodes(run.id, [node0, node1]);
    expect(changes() - was).toBe(1);
    expect(s.getRun(run.id)).toEqual({ ...before, nodes: [node0, node1] });
    expect(s.getMetrics(run.id)['train/loss']?.steps).toEqual([3]);
  });

  it('refuses a malformed node before writing, and an unknown run as NOT_FOUND', () => {
    const s = store();
    const run = s.createRun({ name: 'checked', config: {} });
    s.setRunNodes(run.id, [node0]);
    const bad: unknown[] = [
      [node0, { ...node1, node: 0 }], // a node rank twice
      [{ ...node0, node: -1 }],
      [{ ...node0, host: ' ' }],
      [{ ...node0, ranks: [0, 1.5] }],
      [{ ...node0, ranks: 'all' }],
      [{ ...node0, status: 'dead' }],
      [{ ...node0, lastHeartbeat: Number.NaN }],
      [{ ...node0, step: -3 }],
      [{ ...node0, tokPerSec: Number.POSITIVE_INFINITY }],
      [null],
      { 0: node0 },
    ];
    for (const nodes of bad)
      expect(codeOf(() => s.setRunNodes(run.id, nodes as RunNode[]))).toBe(ErrorCode.BAD_ARGUMENT);
    // nothing of the refused lists was written
    expect(s.getRun(run.id)?.nodes).toEqual([node0]);
    expect(codeOf(() => s.setRunNodes('run-nope', [node0]))).toBe(ErrorCode.NOT_FOUND);
  });

  it('a deleted run takes its nodes with it', () => {
    const s = store();
    const run = s.createRun({ name: 'gone', config: {} });
    s.setRunNodes(run.id, [node0, node1]);
    expect(s.deleteRun(run.id)).toBe(true);
    expect(codeOf(() => s.setRunNodes(run.id, [node0]))).toBe(ErrorCode.NOT_FOUND);
  });
});
