import { randomBytes } from 'node:crypto';
import { ErrorCode, StudioError } from '../../shared/errors';

/**
 * A short id that sorts by creation time: `<prefix>-YYYYMMDD-HHMMSS-xxxx` (UTC, 4 random hex digits),
 * e.g. run-20261128-193000-ab12. Ids created in the same second sort in random order; callers that need a strict
 * order sort by created_at, then id.
 */
export function newId(prefix: string, now: number = Date.now()): string {
  const d = new Date(now);
  const p2 = (n: number) => String(n).padStart(2, '0');
  const date = `${d.getUTCFullYear()}${p2(d.getUTCMonth() + 1)}${p2(d.getUTCDate())}`;
  const time = `${p2(d.getUTCHours())}${p2(d.getUTCMinutes())}${p2(d.getUTCSeconds())}`;
  return `${prefix}-${date}-${time}-${randomBytes(2).toString('hex')}`;
}

/**
 * Ids name folders (runs/<id>/, datasets/<id>/), so they must be one safe path segment: letters, digits, `.`, `_`
 * and `-`, starting with a letter or digit (which rules out `.` and `..`), at most 100 characters.
 */
const SAFE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

export function checkId(id: string, what: string): string {
  if (typeof id !== 'string' || !SAFE_ID.test(id)) {
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `The ${what} id ${JSON.stringify(id)} is not valid: it names a folder, so it may hold only letters, digits, ".", "_" and "-", must start with a letter or digit, and be at most 100 characters.`,
      `Leave the id out to get a generated one, or choose one like "my-${what}-1".`,
    );
  }
  return id;
}
