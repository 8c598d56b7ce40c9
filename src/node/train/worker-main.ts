/**
 * Process glue of the training worker: reads ParentMessages from the IPC channel (child_process.fork's
 * process.send, Electron utilityProcess's parentPort, or under mpirun the Unix socket GPT2_STUDIO_WORKER_SOCKET
 * names: see mpi-spawn.ts), runs the job, numbers every outgoing message, and exits once the last one is delivered.
 */
import { connectParentSocket, WORKER_SOCKET_ENV, type ParentSocket } from './mpi-spawn';
import type { ParentMessage, WorkerMessage, WorkerPayload } from './protocol';
import { runWorker } from './worker';

interface ParentPort {
  on(ev: 'message', cb: (e: { data: ParentMessage }) => void): void;
  postMessage(m: WorkerMessage): void;
}

export async function startWorkerProcess(): Promise<void> {
  // Ctrl-C in a terminal signals the whole process group. The parent turns it into a stop (a checkpoint first), or
  // on a second Ctrl-C ends, which disconnects this process: the worker must not die of the signal itself.
  process.on('SIGINT', () => {});
  const port = (process as unknown as { parentPort?: ParentPort }).parentPort;
  // under mpirun there is no IPC channel: the studio listens on a Unix socket instead
  const socketPath = process.env[WORKER_SOCKET_ENV];
  let sock: ParentSocket | null = null;
  if (socketPath) {
    try {
      sock = await connectParentSocket(socketPath);
    } catch (e) {
      console.error((e as Error).message);
      process.exit(1);
    }
  }
  let seq = 0;
  const listeners: ((m: ParentMessage) => void)[] = [];
  // messages that arrive before the job listens (e.g. a stop right behind the start) are kept for it
  const early: ParentMessage[] = [];
  const post = (m: WorkerPayload): Promise<void> => {
    const msg = { ...m, seq: ++seq } as WorkerMessage;
    if (sock) return sock.post(msg);
    if (port) {
      port.postMessage(msg);
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      if (!process.send) return resolve();
      process.send(msg, undefined, {}, () => resolve());
    });
  };
  const pending: Promise<void>[] = [];
  const start = await new Promise<Extract<ParentMessage, { type: 'start' }>>((resolve) => {
    const onMsg = (m: ParentMessage) => {
      if (m.type === 'start') resolve(m);
      else if (listeners.length === 0) early.push(m);
      for (const l of listeners) l(m);
    };
    if (sock) {
      sock.onMessage(onMsg);
      // the studio is gone (or ended this worker): as on 'disconnect' below
      sock.onClose(() => process.exit(1));
    } else if (port) port.on('message', (e) => onMsg(e.data));
    else {
      process.on('message', (m) => onMsg(m as ParentMessage));
      // the parent is gone: nobody records this run any more, so stop (its last checkpoint is the resume point)
      process.on('disconnect', () => process.exit(1));
    }
  });
  const ok = await runWorker(start, {
    send: (m) => {
      pending.push(post(m));
    },
    onMessage: (cb) => {
      listeners.push(cb);
      for (const m of early.splice(0)) cb(m);
    },
  });
  await Promise.all(pending);
  // a failed job exits with 1, so that a data-parallel group stops its other ranks at once
  process.exit(ok ? 0 : 1);
}
