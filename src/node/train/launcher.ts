/**
 * Starting a training worker process. The Studio service only sees a WorkerHandle; Node uses
 * child_process.fork, and the Electron main passes a spawner built on utilityProcess.fork over the same entry.
 */
import { fork } from 'node:child_process';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCode } from '../../shared/errors';
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

/** How long an error that only reports another rank's failure (PEER_FAILED) waits for that rank's own error. */
const CONSEQUENCE_WAIT_MS = 2_000;
/** The text of such an error from a worker that sends it without the code. */
const CONSEQUENCE = /rank \d+ failed, so rank \d+ stops/;
/** How long the other ranks get to stop by themselves after one reported an error, before they are killed. */
const ERROR_GRACE_MS = 3_000;

/**
 * Data parallel: `world` worker processes that look like one WorkerHandle to the Studio service.
 *   - Every rank's process starts at once (they boot in parallel); `start` goes to rank 0, which makes the
 *     communicator and answers with its id and the engine it resolved (`comm-id`); the other ranks then get `start`
 *     with both, so that every rank runs the same engine. `stop` and `pause` go to every rank (they vote on when
 *     to stop).
 *   - Rank 0 reports the run (steps, evals, checkpoints); the other ranks report only their errors. Messages are
 *     renumbered, so the service sees one sequence. An error that only says another rank failed waits a moment
 *     for that rank's own.
 *   - When a rank dies or reports an error, the others are killed (soon after, for an error): they would wait for
 *     it forever. The group has exited when every process has, with rank 0's exit code, or the first failure's.
 *     A shared-memory communicator's name is removed then, in case a rank died before everyone had joined.
 *   - Multi-node: `node` says which ranks of `world` run here (NodeShare); the group is this node's processes, and
 *     its first process reports for the node.
 */
export function spawnGroup(spawn: WorkerSpawner, world: number, node: NodeShare = {}): WorkerHandle {
  // the processes of this node: local index i is global rank first + i
  const first = node.first ?? 0;
  const local = node.local ?? world;
  const ranks: WorkerHandle[] = [];
  const alive = new Set<number>();
  const messageCbs: ((m: WorkerMessage) => void)[] = [];
  const exitCbs: ((code: number | null, signal: string | null) => void)[] = [];
  let seq = 0;
  let start: Extract<ParentMessage, { type: 'start' }> | null = null;
  let othersStarted = false;
  let pendingControl: ParentMessage[] = [];
  let firstFailure: { code: number | null; signal: string | null } | null = null;
  let rank0Exit: { code: number | null; signal: string | null } | null = null;
  let heldError: { m: WorkerMessage; timer: NodeJS.Timeout } | null = null;
  let errorSent = false;
  let killed = false;
  let exited = false;
  let graceTimer: NodeJS.Timeout | null = null;
  let commId: string | null = null;

  const relay = (m: WorkerMessage) => {
    const out = { ...m, seq: ++seq } as WorkerMessage;
    for (const cb of messageCbs) cb(out);
  };
  const killAll = (signal: NodeJS.Signals = 'SIGTERM') => {
    killed = true;
    for (const r of alive) ranks[r]!.kill(signal);
  };
  const relayError = (m: WorkerMessage) => {
    if (errorSent) return;
    errorSent = true;
    if (heldError) clearTimeout(heldError.timer);
    heldError = null;
    relay(m);
    // the run has failed: the ranks that are still running would wait for the failed one
    graceTimer = setTimeout(() => killAll(), ERROR_GRACE_MS);
    graceTimer.unref?.();
  };
  const onRankMessage = (r: number, m: WorkerMessage) => {
    if (m.type === 'comm-id') {
      if (r === 0 && first === 0) {
        node.onCommId?.(m.id, m.engine);
        startOthers(m.id, m.engine);
      }
      return;
    }
    if (m.type === 'error') {
      const g = first + r;
      const err =
        g === 0 ? m : ({ ...m, error: { ...m.error, message: `rank ${g}: ${m.error.message}` } } as WorkerMessage);
      if (m.error.code === ErrorCode.PEER_FAILED || CONSEQUENCE.test(m.error.message)) {
        // this rank stopped because another one failed: give that one a moment to say why (keep the first such)
        if (!heldError && !errorSent)
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
      if (graceTimer) clearTimeout(graceTimer);
      if (heldError) relayError(heldError.m);
      removeSegment(commId);
      const e = firstFailure ?? rank0Exit ?? { code: 0, signal: null };
      for (const cb of exitCbs) cb(e.code, e.signal);
    }
  };
  const startOthers = (id: string, engine: string) => {
    commId = id;
    if (!start || killed || othersStarted) return;
    othersStarted = true;
    for (let r = first === 0 ? 1 : 0; r < local; r++) {
      if (!alive.has(r)) continue;
      ranks[r]!.send({ ...start, rank: first + r, commId: id, engine });
      // local index 0 got every control message already (it is sent to it directly)
      if (r !== 0) for (const c of pendingControl) ranks[r]!.send(c);
    }
    pendingControl = [];
  };

  // every process boots now; ranks 1.. wait for their start message
  for (let r = 0; r < local; r++) {
    const h = spawn();
    ranks.push(h);
    alive.add(r);
    h.onMessage((msg) => onRankMessage(r, msg));
    h.onExit((code, signal) => onRankExit(r, code, signal));
  }

  return {
    get pid() {
      return ranks[0]!.pid;
    },
    send(m) {
      if (m.type === 'start') {
        start = m;
        if (first === 0) ranks[0]!.send({ ...m, rank: 0 });
        else if (!m.commId || !m.engine)
          throw new Error('a node without rank 0 starts its ranks with the communicator id and engine of rank 0');
        else startOthers(m.commId, m.engine);
        return;
      }
      if (alive.has(0)) ranks[0]!.send(m);
      if (!othersStarted) {
        pendingControl.push(m);
        return;
      }
      for (let r = 1; r < local; r++) if (alive.has(r)) ranks[r]!.send(m);
    },
    onMessage: (cb) => void messageCbs.push(cb),
    onExit: (cb) => void exitCbs.push(cb),
    kill(signal = 'SIGTERM') {
      killAll(signal);
    },
  };
}

/**
 * A node's share of a data-parallel group (multi-node runs): its ranks are first .. first + local - 1 of `world`.
 * The node with rank 0 learns the communicator id from it (onCommId, to hand to the other nodes); a node without
 * it is started with the id and engine in its `start` message, and starts all its ranks at once.
 */
export interface NodeShare {
  first?: number;
  local?: number;
  onCommId?: (id: string, engine: string) => void;
}

/** Removes a shared-memory communicator's name if it is still there (Linux keeps them in /dev/shm). */
function removeSegment(id: string | null): void {
  const m = id ? /^shm:\/([A-Za-z0-9._-]+)$/.exec(id) : null;
  if (!m || process.platform !== 'linux') return;
  try {
    rmSync(path.join('/dev/shm', m[1]!), { force: true });
  } catch {
    // already gone
  }
}
