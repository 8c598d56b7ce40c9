/**
 * Starting a training worker process. The Studio service only sees a WorkerHandle; Node uses
 * child_process.fork, and the Electron main passes a spawner built on utilityProcess.fork over the same entry.
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ParentMessage, WorkerMessage } from './protocol';

export interface WorkerHandle {
  readonly pid: number | undefined;
  send(m: ParentMessage): void;
  onMessage(cb: (m: WorkerMessage) => void): void;
  onExit(cb: (code: number | null, signal: string | null) => void): void;
  kill(signal?: NodeJS.Signals): void;
}

export type WorkerSpawner = () => WorkerHandle;

/** The worker's entry file (it loads the TypeScript sources through tsx). */
export const WORKER_ENTRY = fileURLToPath(new URL('./worker-entry.mjs', import.meta.url));

/** A spawner that forks `entry` (the sources' worker-entry.mjs, or the built app's train-worker.js). */
export function forkWorkerFrom(entry: string): WorkerSpawner {
  return () => forkOne(entry);
}

export const forkWorker: WorkerSpawner = forkWorkerFrom(WORKER_ENTRY);

function forkOne(entry: string): WorkerHandle {
  const child = fork(entry, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [] });
  return {
    get pid() {
      return child.pid;
    },
    send: (m) => {
      if (child.connected) child.send(m);
    },
    onMessage: (cb) => child.on('message', (m) => cb(m as WorkerMessage)),
    onExit: (cb) => child.on('exit', (code, signal) => cb(code, signal)),
    kill: (signal = 'SIGTERM') => {
      child.kill(signal);
    },
  };
}

/** How long an error that only reports another rank's failure waits for that rank's own error. */
const CONSEQUENCE_WAIT_MS = 2_000;
const CONSEQUENCE = /rank \d+ failed, so rank \d+ stops/;

/**
 * Data parallel: `world` worker processes that look like one WorkerHandle to the Studio service.
 *   - `start` goes to rank 0, which makes the communicator and answers with its id (`comm-id`); then ranks
 *     1..world-1 start with that id. `stop` and `pause` go to every rank (they agree on when to stop).
 *   - Rank 0 reports the run (steps, evals, checkpoints); the other ranks report only their errors.
 *     Messages are renumbered, so the service sees one sequence.
 *   - When a rank dies, the others are killed (they would wait for it forever); the group has exited when every
 *     process has, with rank 0's exit code, or the first failure's.
 */
export function spawnGroup(spawn: WorkerSpawner, world: number): WorkerHandle {
  const ranks: (WorkerHandle | null)[] = new Array(world).fill(null);
  const alive = new Set<number>();
  const messageCbs: ((m: WorkerMessage) => void)[] = [];
  const exitCbs: ((code: number | null, signal: string | null) => void)[] = [];
  let seq = 0;
  let start: Extract<ParentMessage, { type: 'start' }> | null = null;
  let pendingControl: ParentMessage[] = [];
  let firstFailure: { code: number | null; signal: string | null } | null = null;
  let rank0Exit: { code: number | null; signal: string | null } | null = null;
  let heldError: { m: WorkerMessage; timer: NodeJS.Timeout } | null = null;
  let errorSent = false;
  let exited = false;

  const relay = (m: WorkerMessage) => {
    const out = { ...m, seq: ++seq } as WorkerMessage;
    for (const cb of messageCbs) cb(out);
  };
  const relayError = (m: WorkerMessage) => {
    if (errorSent) return;
    errorSent = true;
    if (heldError) clearTimeout(heldError.timer);
    heldError = null;
    relay(m);
  };
  const killAll = (signal: NodeJS.Signals = 'SIGTERM') => {
    for (const r of alive) ranks[r]?.kill(signal);
  };
  const onRankMessage = (r: number, m: WorkerMessage) => {
    if (m.type === 'comm-id') {
      if (r === 0 && start) launchOthers(m.id);
      return;
    }
    if (m.type === 'error') {
      const err = r === 0 ? m : ({ ...m, error: { ...m.error, message: `rank ${r}: ${m.error.message}` } } as WorkerMessage);
      if (m.type === 'error' && CONSEQUENCE.test(m.error.message) && !heldError && !errorSent) {
        // this rank stopped because another one failed: give that one a moment to say why
        heldError = { m: err, timer: setTimeout(() => heldError && relayError(heldError.m), CONSEQUENCE_WAIT_MS) };
        return;
      }
      relayError(err);
      return;
    }
    if (r === 0) relay(m);
  };
  const onRankExit = (r: number, code: number | null, signal: string | null) => {
    alive.delete(r);
    if (r === 0) rank0Exit = { code, signal };
    if ((code !== 0 || signal) && !firstFailure) {
      firstFailure = { code, signal };
      killAll();
    }
    if (alive.size === 0 && !exited) {
      exited = true;
      if (heldError) relayError(heldError.m);
      const e = firstFailure ?? rank0Exit ?? { code: 0, signal: null };
      for (const cb of exitCbs) cb(e.code, e.signal);
    }
  };
  const launch = (r: number, m: ParentMessage) => {
    const h = spawn();
    ranks[r] = h;
    alive.add(r);
    h.onMessage((msg) => onRankMessage(r, msg));
    h.onExit((code, signal) => onRankExit(r, code, signal));
    h.send(m);
  };
  const launchOthers = (commId: string) => {
    if (!start || firstFailure) return;
    for (let r = 1; r < world; r++) launch(r, { ...start, rank: r, commId });
    for (const c of pendingControl) for (let r = 1; r < world; r++) ranks[r]?.send(c);
    pendingControl = [];
  };

  const group: WorkerHandle = {
    get pid() {
      return ranks[0]?.pid;
    },
    send(m) {
      if (m.type === 'start') {
        start = m;
        launch(0, { ...m, rank: 0 });
        return;
      }
      for (const r of alive) ranks[r]?.send(m);
      if (ranks.slice(1).some((h) => h === null)) pendingControl.push(m);
    },
    onMessage: (cb) => void messageCbs.push(cb),
    onExit: (cb) => void exitCbs.push(cb),
    kill(signal = 'SIGTERM') {
      killAll(signal);
    },
  };
  return group;
}
