/**
 * The Checkpoints page: every run's checkpoints in one sortable table (filtered by run with #/checkpoints?run=<id>),
 * with per-row actions (sample, chat, HellaSwag, export, resume from here, delete) and a sample gallery across
 * the checkpoints ticked in the table. Kept live by run-checkpoint, run-deleted, run-status and eval-* events.
 */
import { Fragment, useCallback, useEffect, useId, useMemo, useRef, useState, type ReactNode } from 'react';
import { StudioError } from '../../../shared/errors';
import { ColumnsMenu } from '../../components/ColumnsMenu';
import { EmptyState } from '../../components/EmptyState';
import { ErrorNote } from '../../components/ErrorNote';
import { Icon } from '../../components/Icon';
import { StatusPill } from '../../components/StatusPill';
import { bytes, dateTime, fullDateTime, int } from '../../format';
import { href, pageHref, useHashQuery } from '../../router';
import { plannedSteps, type Run } from '../../run-info';
import { normalizeColumns, visibleColumns, type ColumnDef } from '../../components/table-columns';
import { useStudioEvent } from '../../useEvent';
import { useClient, useInvoke, useRequest } from '../../useInvoke';
import { usePersistentState } from '../../usePersistentState';
import { BranchDialog, DeleteDialog, ExportDialog, SampleDialog } from './CheckpointDialogs';
import {
  branchBlocked,
  ckptKey,
  deleteBlocked,
  firstDir,
  GALLERY_MAX,
  GALLERY_MIN,
  SORT_KEYS,
  sortCheckpoints,
  startingPrompt,
  valLossText,
  type CheckpointEntry,
  type SortDir,
  type SortKey,
} from './checkpoints-view';
import { SampleGallery } from './SampleGallery';
import './checkpoints.css';

const NO_CHECKPOINTS: CheckpointEntry[] = [];
const NO_RUNS: Run[] = [];
type Action = { kind: 'sample' | 'export' | 'branch' | 'delete'; c: CheckpointEntry };

/** A HellaSwag evaluation started from (or found running for) a row. */
interface EvalState {
  evalId: string;
  status: 'queued' | 'running' | 'done' | 'failed' | 'cancelled';
  done?: number;
  total?: number;
  accNorm?: number;
  error?: unknown;
}

/** The columns the user may show, hide and move; the step (each row's header) and the actions always show. */
type ColumnKey = Exclude<SortKey, 'step'>;
const COLUMNS: readonly (ColumnDef & { id: ColumnKey; num?: boolean })[] = [
  { id: 'run', label: 'Run' },
  { id: 'valLoss', label: 'Val loss', num: true },
  { id: 'hellaswag', label: 'HellaSwag', num: true },
  // checkpoints.css leaves it out of a narrow table, so that the actions fit beside the rest
  { id: 'size', label: 'Size', num: true, note: 'wide tables only' },
  { id: 'created', label: 'Created' },
];
const COLUMN_BY_ID = new Map<string, (typeof COLUMNS)[number]>(COLUMNS.map((c) => [c.id, c]));
const DEFAULT_PREFS = { order: COLUMNS.map((c) => c.id), hidden: [] };

export function CheckpointsPage() {
  const client = useClient();
  const query = useHashQuery();
  const runFilter = query.get('run') ?? '';
  const {
    state: load,
    refresh: reload,
    setData,
  } = useRequest(async () => {
    const [list, runs] = await Promise.all([
      client.invoke('checkpoints-list', undefined),
      client.invoke('runs-list', { limit: 1000 }),
    ]);
    return { list, runs };
  }, [client]);
  const list = load.data?.list ?? NO_CHECKPOINTS;
  const runs = load.data?.runs ?? NO_RUNS;
  const [info] = useInvoke('app-info');
  const home = info.data?.home;
  const [sortKey, setSortKey] = usePersistentState<string>('checkpoints.sort', 'created');
  const [sortDir, setSortDir] = usePersistentState<string>('checkpoints.dir', 'desc');
  const [savedColumns, setSavedColumns] = usePersistentState<object>('checkpoints.columns', DEFAULT_PREFS);
  const columnPrefs = useMemo(() => normalizeColumns(savedColumns, COLUMNS), [savedColumns]);
  const columns = visibleColumns(columnPrefs)
    .map((id) => COLUMN_BY_ID.get(id))
    .filter((c) => c !== undefined);
  const [selected, setSelected] = useState<string[]>([]);
  const [gallery, setGallery] = useState(false);
  const [action, setAction] = useState<Action | null>(null);
  const [evals, setEvals] = useState<Record<string, EvalState>>({});
  const [evalError, setEvalError] = useState<unknown>(null);
  const [notice, setNotice] = useState('');
  const filterId = useId();

  useEffect(() => {
    // HellaSwag evaluations already queued or running (from here earlier, or from the Evals page)
    client.invoke('evals-list', { kind: 'hellaswag', status: 'running' }).then(
      (es) => {
        const found: Record<string, EvalState> = {};
        for (const e of es) if ('runId' in e.target) found[ckptKey(e.target)] = { evalId: e.id, status: 'running' };
        setEvals((x) => ({ ...found, ...x }));
      },
      () => undefined,
    );
  }, [client]);

  useStudioEvent('run-checkpoint', () => void reload());
  useStudioEvent('run-deleted', () => void reload());
  useStudioEvent('run-status', (p) => {
    // the delete guard depends on whether the run is running
    if (list.some((c) => c.runId === p.runId)) void reload();
  });
  // every eval event by id, also those that arrive before evals-hellaswag has answered with the id
  const seen = useRef(new Map<string, Partial<EvalState>>());
  const evalsRef = useRef(evals);
  evalsRef.current = evals;
  const keyOfEval = (evalId: string) => Object.entries(evalsRef.current).find(([, e]) => e.evalId === evalId)?.[0];
  const fetchResult = useCallback(
    (key: string, evalId: string) => {
      client.invoke('evals-get', { id: evalId }).then(
        (e) => {
          const acc = typeof e.summary?.accNorm === 'number' ? e.summary.accNorm : undefined;
          setEvals((x) =>
            x[key]?.evalId === evalId
              ? { ...x, [key]: { ...x[key], status: 'done', accNorm: acc ?? x[key].accNorm } }
              : x,
          );
        },
        () => undefined,
      );
      void reload();
    },
    [client, reload],
  );
  const applyEval = (evalId: string, patch: Partial<EvalState>) => {
    seen.current.set(evalId, { ...seen.current.get(evalId), ...patch });
    const key = keyOfEval(evalId);
    if (!key) {
      if (patch.status === 'done') void reload();
      return;
    }
    setEvals((x) => ({ ...x, [key]: { ...x[key]!, ...patch } }));
    if (patch.status === 'done') fetchResult(key, evalId);
  };
  useStudioEvent('eval-progress', (p) =>
    applyEval(p.evalId, { status: 'running', done: p.done, total: p.total, accNorm: p.accNorm }),
  );
  useStudioEvent('eval-status', (p) =>
    applyEval(p.evalId, { status: p.status, error: p.error ? StudioError.fromPlain(p.error) : undefined }),
  );

  const evaluate = async (c: CheckpointEntry) => {
    setEvalError(null);
    const key = ckptKey(c);
    try {
      const e = await client.invoke('evals-hellaswag', { target: { runId: c.runId, step: c.step } });
      const early = seen.current.get(e.id);
      setEvals((x) => ({ ...x, [key]: { evalId: e.id, status: 'queued', ...early } }));
      if (early?.status === 'done') fetchResult(key, e.id);
    } catch (e) {
      setEvalError(e);
    }
  };

  const sort = {
    key: (SORT_KEYS as readonly string[]).includes(sortKey) ? (sortKey as SortKey) : 'created',
    dir: (sortDir === 'asc' ? 'asc' : 'desc') as SortDir,
  };
  const shown = useMemo(
    () => sortCheckpoints(runFilter ? list.filter((c) => c.runId === runFilter) : list, sort),
    [list, runFilter, sort.key, sort.dir],
  );
  const byKey = useMemo(() => new Map(list.map((c) => [ckptKey(c), c])), [list]);
  // a ticked checkpoint that was deleted leaves the selection
  // (the gallery shows them by run, then by step, so that training progress reads left to right)
  const chosen = selected
    .map((k) => byKey.get(k))
    .filter((c): c is CheckpointEntry => c !== undefined)
    .sort((a, b) => a.runName.localeCompare(b.runName) || a.runId.localeCompare(b.runId) || a.step - b.step);
  const runById = useMemo(() => new Map(runs.map((r) => [r.id, r])), [runs]);
  const runsWithCkpts = useMemo(() => {
    const counts = new Map<string, number>();
    for (const c of list) counts.set(c.runId, (counts.get(c.runId) ?? 0) + 1);
    return { counts, runs: runs.filter((r) => counts.has(r.id) || r.id === runFilter) };
  }, [list, runs, runFilter]);

  const setRunFilter = (id: string) => {
    window.location.hash = pageHref('checkpoints', { run: id || undefined }).slice(1);
  };
  const toggle = (key: string) => setSelected((s) => (s.includes(key) ? s.filter((k) => k !== key) : [...s, key]));
  const clickSort = (key: SortKey) => {
    if (sort.key === key) setSortDir(sort.dir === 'asc' ? 'desc' : 'asc');
    else {
      setSortKey(key);
      setSortDir(firstDir(key));
    }
  };

  if (load.status === 'loading')
    return (
      <p className="muted" aria-busy="true">
        Loading the checkpoints…
      </p>
    );
  if (load.status === 'error') return <ErrorNote error={load.error} onRetry={reload} />;

  if (list.length === 0) {
    return (
      <EmptyState icon="checkpoints" title="No checkpoints yet">
        <p>
          A run writes a checkpoint every <code>checkpoint_interval</code> steps, at its end, and when it is stopped or
          paused; <code>keep_last</code> sets how many it keeps. Start a run and its checkpoints appear here as they are
          written.
        </p>
        <a className="button button-primary" href={href({ page: 'new-run' })}>
          New run
        </a>
      </EmptyState>
    );
  }

  const filteredRun = runFilter ? runById.get(runFilter) : undefined;
  const branchRun = action?.kind === 'branch' ? runById.get(action.c.runId) : undefined;
  const branchPlanned = branchRun ? plannedSteps(branchRun) : undefined;
  const canGallery = chosen.length >= GALLERY_MIN && chosen.length <= GALLERY_MAX;

  return (
    <div className="stack">
      <div className="toolbar">
        <div className="inline-select">
          <label className="muted small" htmlFor={filterId}>
            Run
          </label>
          <select id={filterId} value={runFilter} onChange={(e) => setRunFilter(e.target.value)}>
            <option value="">All runs ({list.length})</option>
            {runsWithCkpts.runs.map((r) => (
              <option key={r.id} value={r.id}>
                {r.name} ({runsWithCkpts.counts.get(r.id) ?? 0})
              </option>
            ))}
            {runFilter && !runById.has(runFilter) && <option value={runFilter}>{runFilter} (not found)</option>}
          </select>
        </div>
        {filteredRun && (
          <a className="small" href={href({ page: 'run', runId: filteredRun.id })}>
            Open the run
          </a>
        )}
        <span className="spacer" />
        <span className="muted small" aria-live="polite">
          {shown.length} checkpoint{shown.length === 1 ? '' : 's'}
          {chosen.length > 0 ? ` · ${chosen.length} chosen` : ''}
        </span>
        {chosen.length > 0 && (
          <button type="button" className="button" onClick={() => setSelected([])}>
            Clear choice
          </button>
        )}
        <ColumnsMenu defs={COLUMNS} prefs={columnPrefs} onChange={setSavedColumns} tableName="checkpoints" />
        <button
          type="button"
          className="button button-primary"
          onClick={() => setGallery(true)}
          disabled={!canGallery}
          title={
            canGallery
              ? 'Sample each chosen checkpoint with one prompt and seed'
              : `Tick ${GALLERY_MIN} to ${GALLERY_MAX} checkpoints in the table first`
          }
        >
          Compare samples{chosen.length ? ` (${chosen.length})` : ''}
        </button>
      </div>

      {notice && (
        <div className="ckpt-notice" role="status">
          <span>{notice}</span>
          <button type="button" className="icon-button" aria-label="Dismiss" onClick={() => setNotice('')}>
            ×
          </button>
        </div>
      )}
      {evalError !== null && (
        <div className="ckpt-eval-error">
          <ErrorNote error={evalError} />
          <button type="button" className="button" onClick={() => setEvalError(null)}>
            Dismiss
          </button>
        </div>
      )}

      {gallery && (
        <SampleGallery
          chosen={chosen}
          initialPrompt={startingPrompt(chosen.map((c) => runById.get(c.runId)?.config))}
          onClose={() => setGallery(false)}
          onUnselect={(k) => setSelected((s) => s.filter((x) => x !== k))}
        />
      )}

      <div className="table-wrap card card-flush ckpt-table-wrap">
        <table className="table table-dense table-sticky-actions ckpt-table" aria-label="Checkpoints">
          <thead>
            <tr>
              <th scope="col" className="ckpt-check">
                <span className="visually-hidden">Choose for the sample gallery</span>
              </th>
              {[{ id: 'step' as const, label: 'Step', num: true }, ...columns].map((col) => (
                <th
                  key={col.id}
                  scope="col"
                  data-col={col.id}
                  className={col.num ? 'num' : undefined}
                  aria-sort={sort.key === col.id ? (sort.dir === 'asc' ? 'ascending' : 'descending') : undefined}
                >
                  <button type="button" className="ckpt-sort" onClick={() => clickSort(col.id)} data-sort={col.id}>
                    {col.label}
                    <span className="ckpt-sort-mark" aria-hidden="true">
                      {sort.key === col.id ? (sort.dir === 'asc' ? '▲' : '▼') : ''}
                    </span>
                  </button>
                </th>
              ))}
              <th scope="col" data-col="actions">
                Actions
              </th>
            </tr>
          </thead>
          <tbody>
            {shown.length === 0 && (
              <tr>
                <td colSpan={columns.length + 3} className="muted table-empty">
                  {filteredRun
                    ? `“${filteredRun.name}” has no checkpoints yet.`
                    : `No run "${runFilter}" with checkpoints.`}{' '}
                  <a href={pageHref('checkpoints')}>Show every run&apos;s</a>
                </td>
              </tr>
            )}
            {shown.map((c) => (
              <CheckpointRow
                key={ckptKey(c)}
                c={c}
                columns={columns.map((col) => col.id)}
                run={runById.get(c.runId)}
                chosen={selected.includes(ckptKey(c))}
                onToggle={() => toggle(ckptKey(c))}
                ev={evals[ckptKey(c)]}
                onAction={(kind) => setAction({ kind, c })}
                onEvaluate={() => void evaluate(c)}
              />
            ))}
          </tbody>
        </table>
      </div>

      {action?.kind === 'sample' && (
        <SampleDialog
          c={action.c}
          initialPrompt={startingPrompt([runById.get(action.c.runId)?.config])}
          onClose={() => setAction(null)}
        />
      )}
      {action?.kind === 'export' && <ExportDialog c={action.c} home={home} onClose={() => setAction(null)} />}
      {action?.kind === 'branch' && (
        <BranchDialog c={action.c} plannedSteps={branchPlanned} onClose={() => setAction(null)} />
      )}
      {action?.kind === 'delete' && (
        <DeleteDialog
          c={action.c}
          all={list}
          onClose={() => setAction(null)}
          onDeleted={(msg) => {
            const k = ckptKey(action.c);
            setData((d) => ({ ...d, list: d.list.filter((x) => ckptKey(x) !== k) }));
            setSelected((s) => s.filter((x) => x !== k));
            setAction(null);
            setNotice(msg);
            void reload();
          }}
        />
      )}
    </div>
  );
}

function HellaswagCell({ c, ev }: { c: CheckpointEntry; ev?: EvalState }) {
  const active = ev && (ev.status === 'queued' || ev.status === 'running');
  if (active) {
    const frac = ev.total ? (ev.done ?? 0) / ev.total : 0;
    return (
      <span className="ckpt-eval" data-testid="eval-progress">
        <span className="small">
          {ev.status === 'queued' ? 'Queued' : ev.total ? `${int(ev.done)}/${int(ev.total)}` : 'Starting'}
          {ev.accNorm !== undefined && Number.isFinite(ev.accNorm) ? ` · ${(ev.accNorm * 100).toFixed(1)}%` : ''}
        </span>
        <span
          className="progress progress-thin"
          role="progressbar"
          aria-label={`HellaSwag of step ${c.step}`}
          aria-valuemin={0}
          aria-valuemax={100}
          aria-valuenow={Math.round(frac * 100)}
        >
          <span style={{ width: `${(frac * 100).toFixed(1)}%` }} />
        </span>
        <a className="small" href={pageHref('evals')}>
          Evals
        </a>
      </span>
    );
  }
  const value = c.hellaswag ?? (ev?.status === 'done' ? ev.accNorm : undefined);
  return (
    <span className="ckpt-eval">
      {value !== undefined && value !== null ? (
        <span title="HellaSwag acc_norm">{(value * 100).toFixed(1)}%</span>
      ) : (
        <span className="muted">—</span>
      )}
      {ev?.status === 'failed' && (
        <span
          className="ckpt-eval-failed small"
          title={
            ev.error instanceof Error
              ? `${ev.error.message}${ev.error instanceof StudioError && ev.error.hint ? `\n${ev.error.hint}` : ''}`
              : undefined
          }
        >
          failed: {ev.error instanceof Error ? ev.error.message : 'see Evals'}
        </span>
      )}
      {ev?.status === 'cancelled' && <span className="muted small">cancelled</span>}
    </span>
  );
}

function CheckpointRow({
  c,
  columns,
  run,
  chosen,
  onToggle,
  ev,
  onAction,
  onEvaluate,
}: {
  c: CheckpointEntry;
  columns: readonly ColumnKey[];
  run: Run | undefined;
  chosen: boolean;
  onToggle: () => void;
  ev?: EvalState;
  onAction: (kind: Action['kind']) => void;
  onEvaluate: () => void;
}) {
  const what = `step ${c.step} of ${c.runName}`;
  const delBlocked = deleteBlocked(c);
  const planned = run ? plannedSteps(run) : undefined;
  const brBlocked = branchBlocked(c, planned);
  const evaluating = ev !== undefined && (ev.status === 'queued' || ev.status === 'running');
  return (
    <tr data-key={ckptKey(c)} data-run-id={c.runId} data-step={c.step} className={chosen ? 'ckpt-chosen' : undefined}>
      <td className="ckpt-check">
        <input
          type="checkbox"
          checked={chosen}
          onChange={onToggle}
          aria-label={`Choose ${what} for the sample gallery`}
        />
      </td>
      <th scope="row" className="num">
        <span className="ckpt-step">
          {int(c.step)}
          {planned !== undefined && <span className="muted">/{int(planned)}</span>}
        </span>
        {c.latest && (
          <span className="tag ckpt-latest" title="The run's newest checkpoint: resuming the run continues from it">
            latest
          </span>
        )}
      </th>
      {columns.map((id) => (
        <Fragment key={id}>{checkpointCell(id, c, ev)}</Fragment>
      ))}
      <td data-col="actions">
        <div className="ckpt-actions" role="group" aria-label={`Actions for ${what}`}>
          <button
            type="button"
            className="button ckpt-btn"
            onClick={() => onAction('sample')}
            title={`Generate text from ${what}`}
          >
            Sample
          </button>
          <a className="button ckpt-btn" href={pageHref('chat', { model: ckptKey(c) })} title={`Chat with ${what}`}>
            Chat
          </a>
          <button
            type="button"
            className="button ckpt-btn"
            onClick={onEvaluate}
            disabled={evaluating}
            title={evaluating ? 'Evaluating…' : `HellaSwag accuracy of ${what}`}
          >
            Evaluate
          </button>
          <button
            type="button"
            className="button ckpt-btn"
            onClick={() => onAction('export')}
            title={`Export ${what} as an HF GPT-2 folder`}
          >
            Export
          </button>
          <button
            type="button"
            className="button ckpt-btn"
            onClick={() => onAction('branch')}
            aria-disabled={brBlocked !== null || undefined}
            title={brBlocked ?? `A new run that continues from ${what}; the original stays`}
          >
            Resume from here
          </button>
          <button
            type="button"
            className="icon-button icon-button-danger"
            onClick={() => onAction('delete')}
            aria-disabled={delBlocked !== null || undefined}
            aria-label={`Delete ${what}`}
            title={delBlocked ?? `Delete ${what}`}
          >
            <Icon name="trash" size={16} />
          </button>
        </div>
      </td>
    </tr>
  );
}

/** One cell of a chosen column. */
function checkpointCell(id: ColumnKey, c: CheckpointEntry, ev: EvalState | undefined): ReactNode {
  switch (id) {
    case 'run':
      return (
        <td className="ckpt-run" data-col="run">
          <a href={href({ page: 'run', runId: c.runId })} className="run-link" title={c.runId}>
            {c.runName}
          </a>
          <span className="ckpt-run-sub">
            <StatusPill status={c.runStatus} />
            {c.sft && <span className="tag">SFT</span>}
            <span className="muted small" title="keep_last: how many checkpoints the run keeps (0 = all)">
              keep {c.keepLast === 0 ? 'all' : c.keepLast}
            </span>
          </span>
        </td>
      );
    case 'valLoss':
      return (
        <td className="num" data-col="val-loss" title={valLossText(c).title}>
          <ValLoss text={valLossText(c).text} />
        </td>
      );
    case 'hellaswag':
      return (
        <td className="num" data-col="hellaswag">
          <HellaswagCell c={c} ev={ev} />
        </td>
      );
    case 'size':
      return (
        <td className="num" data-col="size">
          {bytes(c.sizeBytes)}
        </td>
      );
    case 'created':
      return (
        <td className="nowrap" data-col="created" title={fullDateTime(c.createdAt)}>
          {dateTime(c.createdAt)}
        </td>
      );
  }
}

/** "10.3217", or "10.3217" over "@ step 11" (two lines keep the column narrow). */
function ValLoss({ text }: { text: string }) {
  const at = text.indexOf(' @ ');
  if (at < 0) return <>{text}</>;
  return (
    <>
      {text.slice(0, at)}
      <span className="ckpt-at"> {text.slice(at + 1)}</span>
    </>
  );
}
