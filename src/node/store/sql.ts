/**
 * The one SQL helper of the store's table modules: prepared statements cached per SQL text on a better-sqlite3
 * connection, IMMEDIATE transactions, and the checks that turn a bad argument into a StudioError before it
 * reaches SQLite.
 */
import type Database from 'better-sqlite3';
import { ErrorCode, StudioError, type PlainError } from '../../shared/errors';

/** What better-sqlite3 binds. (It refuses booleans and undefined.) */
export type SqlValue = string | number | bigint | Buffer | null;
/** Positional values, or one object for @named parameters. */
export type BindArg = SqlValue | Record<string, SqlValue>;

export class Sql {
  private readonly stmts = new Map<string, Database.Statement<BindArg[], unknown>>();

  constructor(readonly db: Database.Database) {}

  // The casts below are the one place rows meet their types: the schema (STRICT tables, CHECKs) guarantees them.
  all<R>(sql: string, ...params: BindArg[]): R[] {
    return this.stmt(sql).all(...params) as R[];
  }

  get<R>(sql: string, ...params: BindArg[]): R | undefined {
    return this.stmt(sql).get(...params) as R | undefined;
  }

  run(sql: string, ...params: BindArg[]): Database.RunResult {
    return this.stmt(sql).run(...params);
  }

  /**
   * Runs `fn` in one IMMEDIATE transaction: the write lock is taken at BEGIN, so no other connection writes between
   * what `fn` reads and what it writes. Inside another transaction, it runs in a savepoint of that one.
   */
  immediate<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  /** Forgets the prepared statements (before the connection closes). */
  clear(): void {
    this.stmts.clear();
  }

  /** Prepared once per SQL text and reused. */
  private stmt(sql: string): Database.Statement<BindArg[], unknown> {
    let s = this.stmts.get(sql);
    if (!s) {
      s = this.db.prepare<BindArg[], unknown>(sql);
      this.stmts.set(sql, s);
    }
    return s;
  }
}

/** `WHERE a AND b` for the conditions given, or nothing. */
export function whereAll(conditions: readonly string[]): string {
  return conditions.length ? `WHERE ${conditions.join(' AND ')}` : '';
}

export function isConstraint(e: unknown, code: string): boolean {
  return typeof e === 'object' && e !== null && (e as { code?: unknown }).code === code;
}

/** Runs an INSERT of a row with a primary key `id`, turning a clash into BAD_ARGUMENT ("A run with the id ..."). */
export function insertUnique<T>(what: string, id: string, insert: () => T): T {
  try {
    return insert();
  } catch (e) {
    if (isConstraint(e, 'SQLITE_CONSTRAINT_PRIMARYKEY')) {
      throw new StudioError(
        ErrorCode.BAD_ARGUMENT,
        `${what} with the id "${id}" already exists.`,
        'Choose another id, or leave it out to get a new one.',
        { cause: e },
      );
    }
    throw e;
  }
}

/** The rows whose process is gone, or was never known. */
export function orphaned<R extends { pid: number | null }>(
  rows: readonly R[],
  isPidAlive: (pid: number) => boolean,
): R[] {
  return rows.filter((r) => r.pid === null || !isPidAlive(r.pid));
}

/** " (pid N)", or nothing for an unknown pid: for messages about a process. */
export function pidNote(pid: number | null): string {
  return pid === null ? '' : ` (pid ${pid})`;
}

export function badArgument(message: string, hint: string): StudioError {
  return new StudioError(ErrorCode.BAD_ARGUMENT, message, hint);
}

export function checkInt(v: number, what: string): number {
  if (!Number.isSafeInteger(v) || v < 0)
    throw badArgument(
      `${what} must be a whole number >= 0, got ${JSON.stringify(v)}.`,
      `Pass a non-negative integer as ${what}.`,
    );
  return v;
}

export function checkFinite(v: number, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v))
    throw badArgument(`${what} must be a finite number, got ${JSON.stringify(v)}.`, `Pass a finite number as ${what}.`);
  return v;
}

export function checkLimit(v: number | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  if (!Number.isSafeInteger(v) || v < 1)
    throw badArgument(
      `limit must be a whole number >= 1, got ${JSON.stringify(v)}.`,
      'Pass a positive limit, or leave it out.',
    );
  return v;
}

export function checkText(v: string, what: string): string {
  if (typeof v !== 'string' || v.trim() === '')
    throw badArgument(`The ${what} must be a non-empty string, got ${JSON.stringify(v)}.`, `Give a ${what}.`);
  return v;
}

export function checkMember<T extends string>(v: T, allowed: readonly T[], what: string): T {
  if (!allowed.includes(v))
    throw badArgument(
      `${JSON.stringify(v)} is not a ${what}; expected one of ${allowed.join(', ')}.`,
      `Use one of ${allowed.join(', ')}.`,
    );
  return v;
}

/** Tags are trimmed, de-duplicated strings; empty ones are dropped. */
export function checkTags(tags: readonly string[]): string[] {
  if (!Array.isArray(tags) || tags.some((t) => typeof t !== 'string')) {
    throw badArgument(
      `Tags must be a list of strings, got ${JSON.stringify(tags)}.`,
      'Pass tags like ["baseline", "fineweb"].',
    );
  }
  return [...new Set(tags.map((t) => t.trim()).filter((t) => t !== ''))];
}

/** A JSON object as text for a JSON column; anything else (an array, null, a number) is a bad argument. */
export function jsonObject(v: object, what: string): string {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw badArgument(
      `The ${what} must be a JSON object, got ${Array.isArray(v) ? 'an array' : JSON.stringify(v)}.`,
      `Pass the ${what} as an object.`,
    );
  }
  return JSON.stringify(v);
}

export function nullOr<T>(v: T | null, f: (v: T) => SqlValue): SqlValue {
  return v === null ? null : f(v);
}

export function parseObject(text: string): Record<string, unknown> {
  return JSON.parse(text) as Record<string, unknown>;
}

export function parseError(text: string | null): PlainError | null {
  return text === null ? null : (JSON.parse(text) as PlainError);
}
