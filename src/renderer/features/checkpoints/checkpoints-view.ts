/** What the Checkpoints page derives from the checkpoint list: keys, sorting, what delete and keep_last mean. */
import type { HandlerResult } from '../../../shared/contract';
import { sampleSchema } from '../../../shared/run-config';

export type CheckpointEntry = HandlerResult<'checkpoints-list'>[number];

/**
 * A checkpoint's val loss, saying where it comes from: "3.1234" when it was measured on the checkpoint's own
 * weights (or by an older studio, which did not record the step), "3.1234 @ step 50" when it is the last value
 * measured before a stop or pause wrote the checkpoint.
 */
export function valLossText(c: Pick<CheckpointEntry, 'step' | 'valLoss' | 'valLossStep'>): {
  text: string;
  title?: string;
} {
  if (c.valLoss === null || !Number.isFinite(c.valLoss)) return { text: '—' };
  const v = c.valLoss.toFixed(4);
  if (c.valLossStep === null || c.valLossStep === c.step)
    return { text: v, title: c.valLossStep === null ? undefined : "measured on this checkpoint's weights" };
  return {
    text: `${v} @ step ${c.valLossStep}`,
    title: `measured at step ${c.valLossStep}, before the run stopped at step ${c.step}; this checkpoint's own weights were not evaluated`,
  };
}

/** A checkpoint's key, as models-list spells it (`ckpt:<runId>:<step>`): the Chat link and the row id. */
export const ckptKey = (c: Pick<CheckpointEntry, 'runId' | 'step'>): string => `ckpt:${c.runId}:${c.step}`;

export type SortKey = 'step' | 'run' | 'valLoss' | 'hellaswag' | 'size' | 'created';
export type SortDir = 'asc' | 'desc';
export interface Sort {
  key: SortKey;
  dir: SortDir;
}

export const SORT_KEYS: readonly SortKey[] = ['step', 'run', 'valLoss', 'hellaswag', 'size', 'created'];

/** The direction a column sorts in first: the "best first" one (lowest loss, highest accuracy, newest). */
export const firstDir = (key: SortKey): SortDir => (key === 'valLoss' || key === 'run' ? 'asc' : 'desc');

function value(c: CheckpointEntry, key: SortKey): number | string | null {
  switch (key) {
    case 'step':
      return c.step;
    case 'run':
      return c.runName.toLowerCase();
    case 'valLoss':
      return c.valLoss !== null && Number.isFinite(c.valLoss) ? c.valLoss : null;
    case 'hellaswag':
      return c.hellaswag;
    case 'size':
      return c.sizeBytes;
    case 'created':
      return c.createdAt;
  }
}

/** Sorted by one column; missing values (no val loss, not evaluated) last in both directions; ties by newest. */
export function sortCheckpoints(list: readonly CheckpointEntry[], sort: Sort): CheckpointEntry[] {
  const sign = sort.dir === 'asc' ? 1 : -1;
  return [...list].sort((a, b) => {
    const va = value(a, sort.key);
    const vb = value(b, sort.key);
    if (va === null || vb === null) {
      if (va !== vb) return va === null ? 1 : -1;
    } else if (va !== vb) {
      return (va < vb ? -1 : 1) * sign;
    }
    return b.createdAt - a.createdAt || b.step - a.step || (a.runId < b.runId ? -1 : a.runId > b.runId ? 1 : 0);
  });
}

/** Why a checkpoint cannot be deleted now, or null when it can. */
export function deleteBlocked(c: CheckpointEntry): string | null {
  if (c.latest && c.runStatus === 'running') {
    return `The newest checkpoint of a running run cannot be deleted: the run resumes from it, and keep_last removes the older ones. Stop the run first, or delete an older checkpoint.`;
  }
  return null;
}

/** What deleting this checkpoint means, with keep_last: one or two sentences for the confirm dialog. */
export function deleteConsequences(c: CheckpointEntry, all: readonly CheckpointEntry[]): string[] {
  const mine = all
    .filter((x) => x.runId === c.runId)
    .map((x) => x.step)
    .sort((a, b) => b - a);
  const out: string[] = [];
  if (c.latest) {
    const next = mine.find((s) => s < c.step);
    out.push(
      next !== undefined
        ? `This is the newest checkpoint of “${c.runName}”: resuming that run would continue from step ${next} instead, and train the steps after it again.`
        : `This is the only checkpoint of “${c.runName}”: resuming that run would start it over from step 0.`,
    );
  }
  const k = c.keepLast;
  if (k === 0) {
    out.push('keep_last is 0 for this run: it keeps every checkpoint it writes, and nothing else is removed.');
  } else if (c.runStatus === 'running') {
    const rank = mine.indexOf(c.step);
    const left = k - rank;
    out.push(
      `keep_last is ${k} for this run: as it trains on, it keeps its newest ${k} checkpoint${k === 1 ? '' : 's'}` +
        (rank >= 0 && left > 0
          ? `, so this one would be removed anyway after ${left} more checkpoint${left === 1 ? '' : 's'}.`
          : '.'),
    );
  } else {
    out.push(
      `keep_last is ${k} for this run: nothing else is removed now; if the run is resumed, it keeps its newest ${k} checkpoint${k === 1 ? '' : 's'} and removes older ones.`,
    );
  }
  return out;
}

/** The run's planned steps (max_steps), from a checkpoint's run config when the list carries it; see canBranch. */
export function branchBlocked(c: CheckpointEntry, plannedSteps: number | undefined): string | null {
  if (plannedSteps !== undefined && c.step >= plannedSteps) {
    return `Step ${c.step} is the end of the run (${plannedSteps} steps): a run from here would have nothing left to train. Start a new run from this config with a higher max_steps instead.`;
  }
  return null;
}

/** "Sample", "Chat" ... accept 2 to 10 checkpoints in the gallery. */
export const GALLERY_MIN = 2;
export const GALLERY_MAX = 10;

/** The prompt sampling starts from when a run's config has none: the run config's own default (sample.prompt). */
export const DEFAULT_PROMPT: string = sampleSchema.parse({}).prompt;

/**
 * The prompt the Sample dialog and the gallery start with: the one the runs sample with during training (their
 * configs' sample.prompt) when they agree on one, else DEFAULT_PROMPT.
 */
export function startingPrompt(configs: readonly (Record<string, unknown> | undefined)[]): string {
  const prompts = new Set(
    configs.map((c) => {
      const p = (c?.sample as { prompt?: unknown } | undefined)?.prompt;
      return typeof p === 'string' && p.trim() !== '' ? p : DEFAULT_PROMPT;
    }),
  );
  const [only] = prompts;
  return prompts.size === 1 && only !== undefined ? only : DEFAULT_PROMPT;
}
