/** Errors of the datasets code: network, authentication, disk and cancellation. */
import { ErrorCode, StudioError } from '../../shared/errors';

export const DatasetErrorCode = {
  /** DNS, refused connection, time-out, dropped connection after the retries */
  network: ErrorCode.NETWORK,
  /** 401 / 403 */
  auth: ErrorCode.UNAUTHORIZED,
  /** 404 */
  notFound: ErrorCode.NOT_FOUND,
  /** ENOSPC, EDQUOT */
  diskFull: ErrorCode.DISK_FULL,
  /** the user cancelled */
  cancelled: ErrorCode.CANCELLED,
} as const satisfies Record<string, ErrorCode>;

/** Thrown when a preparation or download is cancelled. `isCancelled` recognizes it. */
export class CancelledError extends StudioError {
  readonly cancelled = true;
  constructor(what: string) {
    super(
      DatasetErrorCode.cancelled,
      `${what} was cancelled.`,
      'Run the same preparation again to continue where it stopped.',
    );
  }
}

export function isCancelled(e: unknown): boolean {
  return e instanceof CancelledError;
}

/** Throws CancelledError when the signal is aborted. */
export function throwIfCancelled(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw new CancelledError(what);
}

const errno = (e: unknown): string | undefined => (e as NodeJS.ErrnoException | undefined)?.code;

/**
 * Turns a file-system error into a StudioError that names the file and what was being done. A full disk says so
 * and how to go on. A StudioError passes through unchanged.
 */
export function fsError(e: unknown, action: string, file: string): StudioError {
  if (e instanceof StudioError) return e;
  const code = errno(e);
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new StudioError(
      DatasetErrorCode.diskFull,
      `The disk is full (${code}) while ${action} "${file}".`,
      'Free some space, or choose a workspace on a larger disk with --home DIR (or GPT2_STUDIO_HOME), then run the same command again: finished parts are kept and it continues where it stopped.',
      { cause: e },
    );
  }
  if (code === 'ENOENT') {
    return new StudioError(
      ErrorCode.FILE_NOT_FOUND,
      `No such file or folder: "${file}" (while ${action} it).`,
      'Check the path.',
      { cause: e },
    );
  }
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    return new StudioError(
      ErrorCode.BAD_CONFIG,
      `Permission denied (${code}) while ${action} "${file}".`,
      "Choose a writable workspace with --home DIR, or fix the folder's permissions.",
      { cause: e },
    );
  }
  return new StudioError(
    ErrorCode.INTERNAL,
    `${code ?? 'Error'} while ${action} "${file}": ${(e as Error)?.message ?? String(e)}`,
    '',
    { cause: e },
  );
}
