/** What the pages derive from a Run: its step budget, its shape, what can be done with it. */
import type { HandlerResult } from '../shared/contract';
import type { RunStatus } from '../shared/contract';
import { engineLabel, mixedEngines, shapeLabel } from '../shared/run-facts';

export type Run = HandlerResult<'runs-get'>;

export const RUN_STATUS_LIST: readonly RunStatus[] = [
  'created',
  'running',
  'paused',
  'stopped',
  'done',
  'failed',
  'interrupted',
];

export const STATUS_LABEL: Record<RunStatus, string> = {
  created: 'Created',
  running: 'Running',
  paused: 'Paused',
  stopped: 'Stopped',
  done: 'Done',
  failed: 'Failed',
  interrupted: 'Interrupted',
};

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/** The run's optimizer steps in all (max_steps, or token_budget / total_batch_size), when its config says. */
export function plannedSteps(run: Pick<Run, 'config'>): number | undefined {
  const c = run.config;
  const max = num(c.max_steps);
  if (max !== undefined) return max;
  const budget = num(c.token_budget);
  const tbs = num(c.total_batch_size);
  return budget !== undefined && tbs ? Math.ceil(budget / tbs) : undefined;
}

/** The model preset (or "custom") of a run's config, e.g. "nano". */
/**
 * The model of a run: the shape that actually trained once an attempt has recorded it (a fine-tune takes the shape
 * of its weights), else the config's preset, else its explicit shape.
 */
export function modelLabel(run: Pick<Run, 'config'> & { attempts?: Run['attempts'] }): string {
  const a = run.attempts?.length ? run.attempts[run.attempts.length - 1] : undefined;
  const m = run.config.model as Record<string, unknown> | undefined;
  if (a) return `${typeof m?.preset === 'string' ? `${m.preset} · ` : ''}${shapeLabel(a.model)}`;
  if (typeof m?.preset === 'string') return m.preset;
  if (typeof m?.n_layer === 'number' && typeof m?.n_head === 'number' && typeof m?.n_embd === 'number')
    return `${m.n_layer}L·${m.n_head}H·${m.n_embd}C`;
  return 'custom';
}

/** "6L·6H·384C": the shape that trained (or the config's), for narrow places. */
export function shortShape(run: Pick<Run, 'config'> & { attempts?: Run['attempts'] }): string {
  const a = run.attempts?.length ? run.attempts[run.attempts.length - 1]!.model : undefined;
  if (a) return `${a.n_layer}L·${a.n_head}H·${a.n_embd}C`;
  const m = run.config.model as Record<string, unknown> | undefined;
  return typeof m?.preset === 'string' ? m.preset : modelLabel(run);
}

/** The engine that ran the run's latest attempt ("native-cpu (blas, 2 threads, fp32)"), or what the config asked for. */
export function engineUsedLabel(run: Pick<Run, 'engine' | 'attempts'>): string {
  const a = run.attempts?.length ? run.attempts[run.attempts.length - 1] : undefined;
  if (a) return engineLabel(a) + (mixedEngines(run.attempts) ? ' (earlier attempts ran on another engine)' : '');
  return run.engine && run.engine !== 'auto' ? run.engine : '—';
}

export const canStop = (s: RunStatus) => s === 'running';
export const canResume = (s: RunStatus) =>
  s === 'stopped' || s === 'paused' || s === 'interrupted' || s === 'failed' || s === 'created';
export const canDelete = (s: RunStatus) => s !== 'running';

/** Seconds the run has been (or was) training since its last start. */
export function runSeconds(run: Pick<Run, 'startedAt' | 'endedAt' | 'status'>, now: number): number | undefined {
  if (!run.startedAt) return undefined;
  const end = run.status === 'running' ? now : (run.endedAt ?? now);
  return Math.max(0, (end - run.startedAt) / 1000);
}

/** "a, b ,, c" -> ["a", "b", "c"] (trimmed, unique, at most 50 characters each). */
export function parseTags(text: string): string[] {
  const out: string[] = [];
  for (const t of text.split(',')) {
    const tag = t.trim().slice(0, 50);
    if (tag && !out.includes(tag)) out.push(tag);
  }
  return out;
}
