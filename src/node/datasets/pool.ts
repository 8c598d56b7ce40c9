/**
 * A pool of worker threads that tokenize text with GPT-2's BPE. Requests are answered in any order internally but
 * each `encode` call resolves with its own tokens, so callers keep their order by awaiting in sequence.
 */
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { ErrorCode, StudioError, type PlainError } from '../../shared/errors';

/** A stretch of text, with `<|endoftext|>` before it when it starts a document. */
export interface Piece {
  text: string;
  eot: boolean;
}

/** Messages to a worker. */
export interface ToWorker {
  type: 'encode';
  id: number;
  pieces: Piece[];
}

/** Messages from a worker. */
export type FromWorker =
  | { type: 'ready' }
  | { type: 'encoded'; id: number; tokens: Uint16Array }
  | { type: 'failed'; id: number; error: PlainError };

/** The default pool size: one thread per core but one (the main thread reads input and writes shards). */
export function defaultWorkerCount(): number {
  const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  return Math.max(1, cores - 1);
}

interface Task {
  id: number;
  pieces: Piece[];
  resolve: (t: Uint16Array) => void;
  reject: (e: unknown) => void;
}

interface Slot {
  worker: Worker;
  busy: Map<number, Task>;
}

/** Requests a worker holds at once: two, so that it never waits for the next message. */
const PER_WORKER = 2;

/** The tokenizer worker's entry from the sources (the built app passes its bundle, out/main/tokenize-worker.mjs). */
export const TOKENIZE_WORKER_ENTRY: URL = new URL('./tokenize-worker.mjs', import.meta.url);

export class TokenizerPool {
  readonly size: number;
  private readonly slots: Slot[] = [];
  /** every worker started, ready or not (for close) */
  private readonly workers: Worker[] = [];
  private readonly queue: Task[] = [];
  private nextId = 1;
  private failure: StudioError | null = null;
  private closed = false;

  private constructor(
    size: number,
    private readonly entry: URL | string,
  ) {
    this.size = size;
  }

  /** Starts `size` workers (default: cores - 1) and waits until each has loaded the tokenizer. */
  static async start(size = defaultWorkerCount(), entry: URL | string = TOKENIZE_WORKER_ENTRY): Promise<TokenizerPool> {
    if (!Number.isInteger(size) || size < 1 || size > 256) {
      throw new StudioError(
        ErrorCode.BAD_ARGUMENT,
        `The tokenizer pool needs 1 to 256 workers; got ${size}.`,
        'Pass --workers N with N >= 1.',
      );
    }
    const pool = new TokenizerPool(size, entry);
    try {
      await Promise.all(Array.from({ length: size }, () => pool.spawn()));
    } catch (e) {
      await pool.close();
      throw e;
    }
    return pool;
  }

  private spawn(): Promise<void> {
    return new Promise((resolve, reject) => {
      const worker = new Worker(this.entry);
      this.workers.push(worker);
      const slot: Slot = { worker, busy: new Map() };
      let started = false;
      worker.on('message', (m: FromWorker) => {
        if (m.type === 'ready') {
          started = true;
          this.slots.push(slot);
          resolve();
          this.dispatch();
          return;
        }
        const task = slot.busy.get(m.id);
        if (!task) return;
        slot.busy.delete(m.id);
        if (m.type === 'encoded') task.resolve(m.tokens);
        else task.reject(StudioError.fromPlain(m.error));
        this.dispatch();
      });
      const die = (why: string, cause?: unknown): void => {
        if (this.closed) return;
        const err = new StudioError(
          ErrorCode.INTERNAL,
          started ? `A tokenizer worker stopped: ${why}.` : `A tokenizer worker failed to start: ${why}.`,
          started
            ? 'Run the preparation again; it continues where it stopped.'
            : 'Check that the dependencies are installed (npm ci), including tsx.',
          { cause },
        );
        this.fail(err);
        if (!started) reject(err);
      };
      worker.on('error', (e) => die(e.message, e));
      worker.on('exit', (code) => die(`it exited with code ${code}`));
    });
  }

  /** Tokenizes the pieces, in order, into one array. */
  encode(pieces: Piece[]): Promise<Uint16Array> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(new StudioError(ErrorCode.INTERNAL, 'The tokenizer pool is closed.', ''));
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, pieces, resolve, reject });
      this.dispatch();
    });
  }

  private dispatch(): void {
    while (this.queue.length > 0) {
      let best: Slot | undefined;
      for (const s of this.slots) if (s.busy.size < PER_WORKER && (!best || s.busy.size < best.busy.size)) best = s;
      if (!best) return;
      const task = this.queue.shift()!;
      best.busy.set(task.id, task);
      const msg: ToWorker = { type: 'encode', id: task.id, pieces: task.pieces };
      best.worker.postMessage(msg);
    }
  }

  private fail(err: StudioError): void {
    if (this.failure) return;
    this.failure = err;
    for (const s of this.slots) for (const t of s.busy.values()) t.reject(err);
    for (const t of this.queue.splice(0)) t.reject(err);
    void this.close();
  }

  /** Stops the workers; pending requests are rejected. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const err = this.failure ?? new StudioError(ErrorCode.INTERNAL, 'The tokenizer pool was closed.', '');
    for (const s of this.slots) for (const t of s.busy.values()) t.reject(err);
    for (const t of this.queue.splice(0)) t.reject(err);
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
