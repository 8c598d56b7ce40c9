/** What the Runs table derives from the run list: status counts for the filter, and groups. */
import type { RunStatus } from '../../../shared/contract';
import { RUN_STATUS_LIST, STATUS_LABEL, type Run } from '../../run-info';

export type StatusFilter = RunStatus | 'all';

/** How many runs have each status; statuses no run has are absent. */
export function statusCounts(runs: readonly Pick<Run, 'status'>[]): Partial<Record<RunStatus, number>> {
  const c: Partial<Record<RunStatus, number>> = {};
  for (const r of runs) c[r.status] = (c[r.status] ?? 0) + 1;
  return c;
}

/**
 * The choices of the status filter, with their counts: All, then each status some run has (in the list's usual
 * order), plus the selected one when no run has it any more, so that the selection stays visible.
 */
export function statusChoices(
  runs: readonly Pick<Run, 'status'>[],
  selected: StatusFilter,
): { value: StatusFilter; label: string; count: number }[] {
  const counts = statusCounts(runs);
  const out: { value: StatusFilter; label: string; count: number }[] = [
    { value: 'all', label: 'All', count: runs.length },
  ];
  for (const s of RUN_STATUS_LIST) {
    const n = counts[s] ?? 0;
    if (n > 0 || s === selected) out.push({ value: s, label: STATUS_LABEL[s], count: n });
  }
  return out;
}

/** "All 12 · Running 1 · Done 9 · Failed 2" */
export const statusSummary = (choices: readonly { label: string; count: number }[]): string =>
  choices.map((c) => `${c.label} ${c.count}`).join(' · ');

export const GROUP_BYS = ['none', 'dataset', 'preset', 'engine', 'status', 'tag'] as const;
export type GroupBy = (typeof GROUP_BYS)[number];

export const GROUP_LABEL: Record<GroupBy, string> = {
  none: 'Nothing',
  dataset: 'Dataset',
  preset: 'Preset',
  engine: 'Engine',
  status: 'Status',
  tag: 'Tag',
};

/** The dataset a run trains on, as its config names it. */
export function runDataset(run: Pick<Run, 'config'>): string | undefined {
  const d = run.config.dataset;
  return typeof d === 'string' && d !== '' ? d : undefined;
}

/** The engine that ran the run's latest attempt, else the one its config asked for (unless "auto"). */
export function runEngine(run: Pick<Run, 'engine' | 'attempts'>): string | undefined {
  const a = run.attempts.length ? run.attempts[run.attempts.length - 1] : undefined;
  if (a) return a.engine;
  return run.engine && run.engine !== 'auto' ? run.engine : undefined;
}

export interface RunGroup<R> {
  /** a stable key (also the group's value, or '' for the runs without one) */
  key: string;
  /** the group's header: "builtin", "No dataset" */
  label: string;
  runs: R[];
}

type GroupRun = Pick<Run, 'status' | 'preset' | 'config' | 'engine' | 'attempts' | 'tags'>;

function keysOf(run: GroupRun, by: Exclude<GroupBy, 'none'>): string[] {
  switch (by) {
    case 'dataset':
      return [runDataset(run) ?? ''];
    case 'preset':
      return [run.preset ?? ''];
    case 'engine':
      return [runEngine(run) ?? ''];
    case 'status':
      return [run.status];
    case 'tag':
      return run.tags.length ? [...new Set(run.tags)] : [''];
  }
}

const NONE_LABEL: Record<Exclude<GroupBy, 'none'>, string> = {
  dataset: 'No dataset',
  preset: 'No preset',
  engine: 'Not started yet',
  status: '',
  tag: 'No tag',
};

/**
 * The runs in groups, each keeping the list's order: groups by name (statuses in their usual order), the runs
 * without a value last. By tag, a run with two tags is in both groups. 'none' is one group of every run.
 */
export function groupRuns<R extends GroupRun>(runs: readonly R[], by: GroupBy): RunGroup<R>[] {
  if (by === 'none') return [{ key: '', label: '', runs: [...runs] }];
  const groups = new Map<string, R[]>();
  for (const r of runs)
    for (const k of keysOf(r, by)) {
      const g = groups.get(k);
      if (g) g.push(r);
      else groups.set(k, [r]);
    }
  const rank = (k: string) => (by === 'status' ? RUN_STATUS_LIST.indexOf(k as RunStatus) : 0);
  return [...groups.entries()]
    .sort(([a], [b]) => {
      if ((a === '') !== (b === '')) return a === '' ? 1 : -1;
      return rank(a) - rank(b) || a.localeCompare(b);
    })
    .map(([key, rs]) => ({
      key,
      label: key === '' ? NONE_LABEL[by] : by === 'status' ? STATUS_LABEL[key as RunStatus] : key,
      runs: rs,
    }));
}
