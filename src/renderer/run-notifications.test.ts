import { describe, expect, it } from 'vitest';
import {
  applyRunStatus,
  countActive,
  mergeRunList,
  removeRun,
  runNotice,
  titleWithCount,
  type RunStatuses,
} from './run-notifications';

describe('runNotice', () => {
  it('says a run is done, with its final loss when known', () => {
    expect(runNotice({ runId: 'r1', name: 'nano', status: 'done', finalLoss: 3.214567 })).toEqual({
      runId: 'r1',
      kind: 'done',
      title: 'nano done',
      body: 'Final loss 3.215',
    });
    expect(runNotice({ runId: 'r1', name: 'nano', status: 'done' })?.body).toBe('Training finished.');
    expect(runNotice({ runId: 'r1', name: 'nano', status: 'done', finalLoss: Number.NaN })?.body).toBe(
      'Training finished.',
    );
  });

  it('says a run failed, with the error message in the title and its hint below', () => {
    const n = runNotice({
      runId: 'r2',
      name: 'big',
      status: 'failed',
      error: { code: 'DISK_FULL', message: 'No space left on /data.', hint: 'Free some disk space.' },
    });
    expect(n).toEqual({
      runId: 'r2',
      kind: 'failed',
      title: 'big failed: No space left on /data.',
      body: 'Free some disk space.',
    });
  });

  it('cuts a long error message to one line', () => {
    const message = `line one\n${'x'.repeat(400)}`;
    const n = runNotice({ runId: 'r', name: 'a', status: 'failed', error: { code: 'INTERNAL', message, hint: '' } });
    expect(n!.title.startsWith('a failed: line one x')).toBe(true);
    expect(n!.title.endsWith('…')).toBe(true);
    expect(n!.title.length).toBeLessThan(200);
    expect(n!.body).toBe('Open the run for its log.');
  });

  it('treats an interrupted run as failed', () => {
    expect(runNotice({ runId: 'r3', name: 'c', status: 'interrupted' })?.title).toBe(
      'c failed: the worker stopped without saying why',
    );
  });

  it('says a run was stopped, and at which step', () => {
    expect(runNotice({ runId: 'r4', name: 'd', status: 'stopped', lastStep: 12 })).toEqual({
      runId: 'r4',
      kind: 'stopped',
      title: 'd stopped',
      body: 'Stopped after step 12; resume it from its last checkpoint.',
    });
  });

  it('gives nothing for a status that is not an end', () => {
    for (const status of ['created', 'running', 'paused'] as const)
      expect(runNotice({ runId: 'r', name: 'x', status })).toBeNull();
  });

  it('names a run without a name by its id', () => {
    expect(runNotice({ runId: 'run-1', name: '  ', status: 'stopped' })?.title).toBe('run-1 stopped');
  });
});

describe('active runs', () => {
  it('counts running runs as the status events arrive', () => {
    let m: RunStatuses = new Map();
    m = applyRunStatus(m, 'a', 'running');
    m = applyRunStatus(m, 'b', 'running');
    m = applyRunStatus(m, 'c', 'created');
    expect(countActive(m)).toBe(2);
    m = applyRunStatus(m, 'a', 'done');
    expect(countActive(m)).toBe(1);
    m = applyRunStatus(m, 'b', 'paused');
    expect(countActive(m)).toBe(0);
    m = applyRunStatus(m, 'b', 'running');
    expect(countActive(m)).toBe(1);
    m = removeRun(m, 'b');
    expect(countActive(m)).toBe(0);
  });

  it('returns the same map when nothing changes', () => {
    const m: RunStatuses = new Map([['a', 'running']]);
    expect(applyRunStatus(m, 'a', 'running')).toBe(m);
    expect(removeRun(m, 'zz')).toBe(m);
  });

  it('takes a fresh list as the truth, but keeps what events said while it was loading', () => {
    const m: RunStatuses = new Map([
      ['a', 'running'],
      ['b', 'done'],
    ]);
    // a ended while the list was away (the list still has it running); c is new
    const merged = mergeRunList(
      m,
      [
        { id: 'a', status: 'running' },
        { id: 'c', status: 'running' },
      ],
      new Set(['b']),
    );
    expect([...merged.entries()].sort()).toEqual([
      ['a', 'running'],
      ['b', 'done'],
      ['c', 'running'],
    ]);
    expect(countActive(merged)).toBe(2);
  });
});

describe('titleWithCount', () => {
  it('puts the count in front while runs are active, once', () => {
    expect(titleWithCount('GPT-2 Studio', 1)).toBe('(1) GPT-2 Studio');
    expect(titleWithCount('(1) Runs · GPT-2 Studio', 2)).toBe('(2) Runs · GPT-2 Studio');
    expect(titleWithCount('(3) Runs · GPT-2 Studio', 0)).toBe('Runs · GPT-2 Studio');
    expect(titleWithCount('Runs · GPT-2 Studio', 0)).toBe('Runs · GPT-2 Studio');
  });
});
