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
