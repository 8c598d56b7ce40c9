/**
 * Opening studio.db: refuse what is not ours before SQLite touches it, set the connection's pragmas, migrate.
 */
import { closeSync, mkdirSync, openSync, readSync, statSync } from 'node:fs';
import Database from 'better-sqlite3';
import { ErrorCode, StudioError } from '../../shared/errors';
import { MIGRATIONS, type Migration, migrate, refuseFutureVersion } from './migrations';
import { Workspace } from '../workspace';

export const DATABASE_FILE = 'studio.db';

export interface OpenDatabaseOptions {
  /**
   * How long a statement waits for another process's write lock (the CLI and the app may share a workspace)
   * before failing with SQLITE_BUSY. Default 5000 ms.
   */
  busyTimeoutMs?: number;
  /**
   * 'normal' (default): WAL with synchronous=NORMAL. A commit is in the WAL file (in the OS's page cache) when it
   * returns, so a crashed or SIGKILLed *process* loses nothing committed: the OS still writes it out, and the next
   * open replays the WAL. No fsync happens per commit (only at WAL checkpoints), which is what makes one
   * transaction per training step cheap. The trade-off: on power loss or an OS crash, the last transactions
   * before the latest checkpoint of the WAL may be lost; the database stays consistent (never corrupt), and
   * those are metrics the resumed run recomputes. Checkpoint *files* are fsynced on their own (see
   * docs/ARCHITECTURE.md, "Storage").
   * 'full': synchronous=FULL, an fsync of the WAL at every commit, for those who want power-loss durability.
   */
  durability?: 'normal' | 'full';
  /** for tests of the migration machinery; default: MIGRATIONS */
  migrations?: readonly Migration[];
}

const SQLITE_MAGIC = Buffer.from('SQLite format 3\0', 'latin1');
const SQLITE_HEADER_SIZE = 100;

/** Opens (creating if needed) and migrates `<home>/studio.db`. Every failure is a StudioError naming the file. */
export function openDatabase(home: string, opts: OpenDatabaseOptions = {}): { db: Database.Database; file: string } {
  const file = new Workspace(home).database;
  try {
    mkdirSync(home, { recursive: true });
  } catch (e) {
    throw new StudioError(
      ErrorCode.BAD_CONFIG,
      `The workspace folder "${home}" cannot be created for the database: ${(e as NodeJS.ErrnoException).code ?? String(e)}.`,
      'Choose a writable folder with --home DIR or GPT2_STUDIO_HOME.',
      { cause: e },
    );
  }
  checkIsSqliteOrAbsent(file);

  let db: Database.Database;
  try {
    db = new Database(file);
  } catch (e) {
    throw asDatabaseError(e, file, 'cannot be opened');
  }
  try {
    db.pragma(`busy_timeout = ${Math.max(0, Math.round(opts.busyTimeoutMs ?? 5000))}`);
    // Per connection. Off by default in SQLite (better-sqlite3's build turns it on; we do not rely on that):
    // without it ON DELETE CASCADE does nothing.
    db.pragma('foreign_keys = ON');
    // Before anything writes (journal_mode writes the header): a newer studio's database stays untouched.
    refuseFutureVersion(db, file, opts.migrations ?? MIGRATIONS);
    // WAL: readers (the UI polling metrics) never block the writer (the run), and a commit is one append.
    const mode = String(db.pragma('journal_mode = WAL', { simple: true }));
    if (mode.toLowerCase() !== 'wal') {
      throw new StudioError(
        ErrorCode.BAD_DATABASE,
        `The database "${file}" could not be switched to WAL journaling (SQLite answered "${mode}").`,
        'Put the workspace on a local disk (WAL needs shared memory, which some network file systems lack), with --home DIR.',
      );
    }
    db.pragma(`synchronous = ${opts.durability === 'full' ? 'FULL' : 'NORMAL'}`);
    migrate(db, file, opts.migrations ?? MIGRATIONS);
    return { db, file };
  } catch (e) {
    db.close();
    throw asDatabaseError(e, file, 'cannot be used');
  }
}

/**
 * A file that is not a SQLite database is refused before SQLite opens it, so it is never written to. An empty file
 * is a valid empty database to SQLite (and what a crash between create and first write leaves), so it passes.
 */
function checkIsSqliteOrAbsent(file: string): void {
  let size: number;
  try {
    const st = statSync(file);
    if (!st.isFile()) {
      throw new StudioError(
        ErrorCode.BAD_DATABASE,
        `The database path "${file}" is not a file.`,
        'Move it aside, or choose another workspace with --home DIR.',
      );
    }
    size = st.size;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw asDatabaseError(e, file, 'cannot be read');
  }
  if (size === 0) return;
  const head = Buffer.alloc(Math.min(size, SQLITE_HEADER_SIZE));
  try {
    const fd = openSync(file, 'r');
    try {
      readSync(fd, head, 0, head.length, 0);
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    throw asDatabaseError(e, file, 'cannot be read');
  }
  if (head.length < SQLITE_HEADER_SIZE || !head.subarray(0, SQLITE_MAGIC.length).equals(SQLITE_MAGIC)) {
    const shown = JSON.stringify(head.subarray(0, 16).toString('latin1'));
    throw new StudioError(
      ErrorCode.BAD_DATABASE,
      `The file "${file}" is not a SQLite database (${size} bytes, starting with ${shown}; a SQLite database starts with "SQLite format 3"). It was left untouched.`,
      `Move or rename that file to let the studio create a new database there, or choose another workspace with --home DIR.`,
    );
  }
}

/** Passes a StudioError through; names the file in anything else (SQLITE_NOTADB, SQLITE_CORRUPT, EACCES, ...). */
function asDatabaseError(e: unknown, file: string, what: string): StudioError {
  if (e instanceof StudioError) return e;
  const code = (e as { code?: unknown }).code;
  const message = e instanceof Error ? e.message : String(e);
  const corrupt = code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT';
  return new StudioError(
    ErrorCode.BAD_DATABASE,
    `The database "${file}" ${what}: ${message}${typeof code === 'string' ? ` (${code})` : ''}.`,
    corrupt
      ? 'The file is damaged. Move it aside (keep it: `sqlite3 studio.db .recover` may save its data) to start a new one, or choose another workspace with --home DIR.'
      : 'Check that the workspace folder is readable and writable, and that no other program holds the file, or choose another workspace with --home DIR.',
    { cause: e },
  );
}
