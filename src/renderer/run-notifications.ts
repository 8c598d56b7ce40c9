/**
 * What the app says when a run ends, and how many runs are active: pure functions over the `run-status` events,
 * used by useRunNotifications (desktop notifications, the in-app toasts, the Runs badge and the window title).
 */
import type { PlainError } from '../shared/errors';
import { ACTIVE_RUN_STATUSES, type RunStatus } from '../shared/records';

export type RunNoticeKind = 'done' | 'failed' | 'stopped';

/** One notification of a run's end: its title ("nano done") and a line of detail. */
export interface RunNotice {
  runId: string;
  kind: RunNoticeKind;
  title: string;
  body: string;
}

/** What is known of a run when it ends: its name, and the last train loss and step the app saw. */
export interface RunEndFacts {
  runId: string;
  name: string;
  status: RunStatus;
  error?: PlainError | null;
  finalLoss?: number | null;
  lastStep?: number | null;
}

/** A loss as the notification shows it: four significant digits ("3.214"), or null when it is not a number. */
function lossText(loss: number | null | undefined): string | null {
  return loss != null && Number.isFinite(loss) ? loss.toPrecision(4) : null;
}

/** A notification's title is one line: a long error message is cut (the run's page has all of it). */
const MAX_MESSAGE = 160;
function clip(text: string): string {
  const line = text.replace(/\s+/g, ' ');
  return line.length > MAX_MESSAGE ? `${line.slice(0, MAX_MESSAGE - 1)}…` : line;
}

/**
 * The notification a status gives, or null for one that is not an end (created, running, paused). A worker that
 * died without saying why (`interrupted`) is a failure too: the user must look at it.
 */
export function runNotice(f: RunEndFacts): RunNotice | null {
  const name = f.name.trim() || f.runId;
  switch (f.status) {
    case 'done': {
      const loss = lossText(f.finalLoss);
      return {
        runId: f.runId,
        kind: 'done',
        title: `${name} done`,
        body: loss !== null ? `Final loss ${loss}` : 'Training finished.',
      };
    }
    case 'failed':
    case 'interrupted': {
      const message = clip(
        f.error?.message.trim() ||
          (f.status === 'interrupted' ? 'the worker stopped without saying why' : 'no reason was given'),
      );
      return {
        runId: f.runId,
        kind: 'failed',
        title: `${name} failed: ${message}`,
        body: f.error?.hint.trim() || 'Open the run for its log.',
      };
    }
    case 'stopped':
      return {
        runId: f.runId,
        kind: 'stopped',
        title: `${name} stopped`,
        body: f.lastStep != null ? `Stopped after step ${f.lastStep}; resume it from its last checkpoint.` : 'Stopped.',
      };
    case 'created':
    case 'running':
    case 'paused':
      return null;
    default: {
      const never: never = f.status;
      return never;
    }
  }
}

const ACTIVE: ReadonlySet<RunStatus> = new Set(ACTIVE_RUN_STATUSES);

/** Whether a run in this status is training now (counted on the badge and in the title). */
export const isActiveStatus = (s: RunStatus): boolean => ACTIVE.has(s);

/** The statuses of the runs the app knows of, by run id. */
export type RunStatuses = ReadonlyMap<string, RunStatus>;

/** The statuses after a `run-status` event (a new map: the old one is not changed). */
export function applyRunStatus(map: RunStatuses, runId: string, status: RunStatus): RunStatuses {
  if (map.get(runId) === status) return map;
  const next = new Map(map);
  next.set(runId, status);
  return next;
}

/** The statuses after a run was deleted. */
export function removeRun(map: RunStatuses, runId: string): RunStatuses {
  if (!map.has(runId)) return map;
  const next = new Map(map);
  next.delete(runId);
  return next;
}

/**
 * The statuses after a fresh list of the runs: the list is the truth, except for runs whose events arrived while
 * it was on its way (`changedSince`), which keep what the events said.
 */
export function mergeRunList(
  map: RunStatuses,
  list: readonly { id: string; status: RunStatus }[],
  changedSince: ReadonlySet<string>,
): RunStatuses {
  const next = new Map<string, RunStatus>();
  for (const r of list) next.set(r.id, r.status);
  for (const id of changedSince) {
    const s = map.get(id);
    if (s !== undefined) next.set(id, s);
  }
  return next;
}

/** How many runs are active. */
export function countActive(map: RunStatuses): number {
  let n = 0;
  for (const s of map.values()) if (isActiveStatus(s)) n++;
  return n;
}

const COUNT_PREFIX = /^\(\d+\) /;

/** The window title with the number of active runs in front ("(2) Runs · GPT-2 Studio"), or without it at 0. */
export function titleWithCount(title: string, active: number): string {
  const bare = title.replace(COUNT_PREFIX, '');
  return active > 0 ? `(${active}) ${bare}` : bare;
}
