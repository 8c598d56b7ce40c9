/**
 * spawnGroup, the data-parallel group of worker processes, with stand-in processes: the start handshake (rank 0's
 * communicator id and engine reach the others), stop requests before the others have started, errors (the cause
 * is reported, not another rank's consequence), and that a failed or dead rank takes the others down.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { spawnGroup, type WorkerHandle } from '../src/node/train/launcher';
import type { ParentMessage, WorkerMessage, WorkerPayload } from '../src/node/train/protocol';
import { checkRunConfig } from '../src/shared/run-config';

class FakeWorker implements WorkerHandle {
  static pids = 100;
  readonly pid = FakeWorker.pids++;
  received: ParentMessage[] = [];
  killedWith: string | null = null;
  private msgCb: ((m: WorkerMessage) => void) | null = null;
  private exitCb: ((code: number | null, signal: string | null) => void) | null = null;
  private seq = 0;
  send(m: ParentMessage) {
    this.received.push(m);
  }
  onMessage(cb: (m: WorkerMessage) => void) {
    this.msgCb = cb;
  }
  onExit(cb: (code: number | null, signal: string | null) => void) {
    this.exitCb = cb;
  }
  kill(signal = 'SIGTERM') {
    if (this.killedWith) return;
    this.killedWith = signal;
    queueMicrotask(() => this.exitCb?.(null, signal));
  }
  emit(m: WorkerPayload) {
    this.msgCb?.({ ...m, seq: ++this.seq } as WorkerMessage);
  }
  exit(code: number | null, signal: string | null = null) {
    this.exitCb?.(code, signal);
  }
}

const parsed = checkRunConfig({ dataset: 'd', world_size: 2, max_steps: 10, warmup_steps: 2 });
if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
const start: Extract<ParentMessage, { type: 'start' }> = {
  type: 'start',
  runId: 'r1',
  home: '/tmp/h',
  config: parsed.config,
};
const error = (message: string): WorkerPayload => ({ type: 'error', error: { code: 'INTERNAL', message, hint: '' } });

function group(world: number) {
  const workers: FakeWorker[] = [];
  const g = spawnGroup(() => {
    const w = new FakeWorker();
    workers.push(w);
    return w;
  }, world);
  const seen: WorkerMessage[] = [];
  const exits: [number | null, string | null][] = [];
  g.onMessage((m) => seen.push(m));
  g.onExit((code, signal) => exits.push([code, signal]));
  return { g, workers, seen, exits };
}

afterEach(() => vi.useRealTimers());

describe('spawnGroup (data-parallel worker group)', () => {
  it("starts every process at once, and the other ranks with rank 0's communicator id and engine", () => {
    const { g, workers, seen } = group(3);
    expect(workers).toHaveLength(3);
    g.send(start);
    expect(workers[0]!.received).toEqual([{ ...start, rank: 0 }]);
    expect(workers[1]!.received).toEqual([]);
    g.send({ type: 'stop' }); // before the others have started: kept for them
    workers[0]!.emit({ type: 'comm-id', id: 'shm:/gpt2-studio-x', engine: 'native-cpu' });
    for (const r of [1, 2]) {
      expect(workers[r]!.received).toEqual([
        { ...start, rank: r, commId: 'shm:/gpt2-studio-x', engine: 'native-cpu' },
        { type: 'stop' },
      ]);
    }
    expect(workers[0]!.received.at(-1)).toEqual({ type: 'stop' });
    // rank 0 reports the run, renumbered; the others' non-error messages are not relayed; comm-id is internal
    workers[0]!.emit({ type: 'log', level: 'info', message: 'hello' });
    workers[1]!.emit({ type: 'log', level: 'info', message: 'from rank 1' });
    expect(seen.map((m) => [m.type, m.seq])).toEqual([['log', 1]]);
    expect(g.pid).toBe(workers[0]!.pid);
  });

  it('reports the failing rank\'s own error, not the other ranks\' "rank N failed" consequences', () => {
    vi.useFakeTimers();
    const { g, workers, seen } = group(3);
    g.send(start);
    workers[0]!.emit({ type: 'comm-id', id: 'shm:/x', engine: 'native-cpu' });
    workers[0]!.emit(error('data parallel: rank 1 failed, so rank 0 stops (exchanging gradients)'));
    workers[2]!.emit(error('data parallel: rank 1 failed, so rank 2 stops (exchanging gradients)'));
    expect(seen).toEqual([]);
    workers[1]!.emit(error('out of memory for the activations'));
    expect(seen).toHaveLength(1);
    expect((seen[0] as Extract<WorkerMessage, { type: 'error' }>).error.message).toBe(
      'rank 1: out of memory for the activations',
    );
    vi.advanceTimersByTime(5000);
    expect(seen).toHaveLength(1);
  });

  it('a consequence with no cause behind it is reported after a moment', () => {
    vi.useFakeTimers();
    const { g, workers, seen } = group(2);
    g.send(start);
    workers[0]!.emit(error('data parallel: rank 1 failed, so rank 0 stops (joining)'));
    expect(seen).toEqual([]);
    vi.advanceTimersByTime(2500);
    expect(seen).toHaveLength(1);
  });

  it('after an error, the ranks still running are killed (they would wait for the failed one)', async () => {
    vi.useFakeTimers();
    const { g, workers, exits } = group(2);
    g.send(start);
    workers[0]!.emit({ type: 'comm-id', id: 'shm:/x', engine: 'native-cpu' });
    workers[1]!.emit(error('rank 1 cannot build its model'));
    workers[1]!.exit(0);
    expect(workers[0]!.killedWith).toBeNull();
    vi.advanceTimersByTime(3500);
    expect(workers[0]!.killedWith).toBe('SIGTERM');
    await vi.runAllTimersAsync();
    expect(exits).toEqual([[null, 'SIGTERM']]);
  });

  it('a rank that dies takes the others down, and the group exits once, with the failure', async () => {
    const { g, workers, exits } = group(3);
    g.send(start);
    workers[0]!.emit({ type: 'comm-id', id: 'shm:/x', engine: 'native-cpu' });
    workers[2]!.exit(null, 'SIGKILL');
    expect(workers[0]!.killedWith).toBe('SIGTERM');
    expect(workers[1]!.killedWith).toBe('SIGTERM');
    await new Promise((r) => setTimeout(r, 0));
    expect(exits).toEqual([[null, 'SIGKILL']]);
  });

  it('killed before rank 0 answered, it starts no other rank', async () => {
    const { g, workers } = group(2);
    g.send(start);
    g.kill();
    workers[0]!.emit({ type: 'comm-id', id: 'shm:/x', engine: 'native-cpu' });
    expect(workers[1]!.received).toEqual([]);
    expect(workers[1]!.killedWith).toBe('SIGTERM');
  });

  it('the run config refuses more than 64 processes', () => {
    const r = checkRunConfig({
      dataset: 'd',
      max_steps: 10,
      warmup_steps: 2,
      world_size: 65,
      total_batch_size: 65 * 64 * 1024,
      batch_size: 64,
      seq_len: 1024,
    });
    expect(r.ok).toBe(false);
    expect(JSON.stringify(r.ok ? [] : r.errors)).toMatch(/world_size must be at most 64 processes/);
  });
});
