/**
 * One error type for the whole studio. It carries a machine-readable code, a message that says what was
 * wrong (with the value and the file), and a hint that says what to do. At a process boundary it travels as
 * a plain object (see toPlain / fromPlain).
 */
export const ErrorCode = {
  BAD_ARGUMENT: 'BAD_ARGUMENT',
  BAD_CONFIG: 'BAD_CONFIG',
  FILE_NOT_FOUND: 'FILE_NOT_FOUND',
  BAD_SAFETENSORS: 'BAD_SAFETENSORS',
  BAD_WEIGHTS: 'BAD_WEIGHTS',
  BAD_SHARD: 'BAD_SHARD',
  BAD_CHECKPOINT: 'BAD_CHECKPOINT',
  BAD_DATA: 'BAD_DATA',
  ENGINE_UNAVAILABLE: 'ENGINE_UNAVAILABLE',
  NUMERIC: 'NUMERIC',
  CANCELLED: 'CANCELLED',
  NETWORK: 'NETWORK',
  DISK_FULL: 'DISK_FULL',
  /** the plan of a run does not fit in the memory this machine has */
  OUT_OF_MEMORY: 'OUT_OF_MEMORY',
  UNAUTHORIZED: 'UNAUTHORIZED',
  /** a path outside the workspace and the allowed folders, or a URL to a private address, asked for from outside */
  FORBIDDEN: 'FORBIDDEN',
  /** a client sent more changes than the server's rate limit allows */
  RATE_LIMITED: 'RATE_LIMITED',
  NOT_FOUND: 'NOT_FOUND',
  /** studio.db is not a SQLite database, or is damaged */
  BAD_DATABASE: 'BAD_DATABASE',
  /** studio.db was written by a newer studio (its user_version is above the newest migration this build knows) */
  DATABASE_TOO_NEW: 'DATABASE_TOO_NEW',
  /** a run or eval whose process died (crash, kill, power loss) before it finished */
  INTERRUPTED: 'INTERRUPTED',
  /** another process of a data-parallel group failed or vanished, so this one stopped */
  PEER_FAILED: 'PEER_FAILED',
  /** the GPU device went away under a run (driver reset, GPU removed): the run is interrupted, and resumable */
  DEVICE_LOST: 'DEVICE_LOST',
  INTERNAL: 'INTERNAL',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface PlainError {
  code: ErrorCode;
  message: string;
  hint: string;
  stack?: string;
  /** the HTTP server's id of the request that failed (its log line carries the same id) */
  requestId?: string;
}

export class StudioError extends Error {
  readonly code: ErrorCode;
  readonly hint: string;

  constructor(code: ErrorCode, message: string, hint = '', options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StudioError';
    this.code = code;
    this.hint = hint;
  }

  toPlain(): PlainError {
    return { code: this.code, message: this.message, hint: this.hint, stack: this.stack };
  }

  static fromPlain(p: PlainError): StudioError {
    const e = new StudioError(p.code, p.message, p.hint);
    if (p.stack) e.stack = p.stack;
    return e;
  }
}

/** Turns anything thrown into a plain error object, keeping a StudioError's code and hint. */
/**
 * A full disk, whoever noticed it: Node's ENOSPC, SQLite's SQLITE_FULL ("database or disk is full"), and the
 * shared-memory file SQLite could not grow (SQLITE_IOERR_SHMSIZE) when the disk holds a few KB.
 */
export function isDiskFull(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return (
    code === 'ENOSPC' ||
    code === 'SQLITE_FULL' ||
    code === 'SQLITE_IOERR_SHMSIZE' ||
    code === 'EDQUOT' ||
    (e instanceof Error && /database or disk is full|no space left on device/i.test(e.message))
  );
}

export function toPlainError(e: unknown): PlainError {
  if (e instanceof StudioError) return e.toPlain();
  if (isDiskFull(e)) {
    return {
      code: ErrorCode.DISK_FULL,
      message: `The disk is full: ${(e as Error).message}.`,
      hint: 'Free space on the disk that holds the workspace (delete old checkpoints or datasets, or move the workspace with --home), then resume; nothing written before was lost.',
      stack: (e as Error).stack,
    };
  }
  if (e instanceof Error) return { code: ErrorCode.INTERNAL, message: e.message, hint: '', stack: e.stack };
  return { code: ErrorCode.INTERNAL, message: String(e), hint: '' };
}
