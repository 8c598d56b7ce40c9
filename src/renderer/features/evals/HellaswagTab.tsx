/**
 * The HellaSwag tab: the data it needs, one click to evaluate the chosen model (with progress, rate, ETA and
 * cancel), every evaluation with the reference points, and the per-example browser of the selected one.
 */
import { useId, useState } from 'react';
import type { ModelEntry } from '../../../shared/models';
import { ErrorNote } from '../../components/ErrorNote';
import { FormDialog } from '../../components/FormDialog';
import { ModelPicker } from '../../components/ModelPicker';
import { fullDateTime, int } from '../../format';
import { useStudioEvent } from '../../useEvent';
import { useClient, useRequest } from '../../useInvoke';
import { HellaswagData, useHellaswagData } from './HellaswagData';
import { ResultsTable, RunProgress, SelectedEval } from './HellaswagResults';
import { evalModelLabel, parseLimit, type Eval, type Progress } from './evals-info';

const NO_EVALS: Eval[] = [];

export function HellaswagTab({
  modelKey,
  model,
  onModel,
  selectedEval,
  onSelectEval,
}: {
  modelKey: string | undefined;
  model: ModelEntry | undefined;
  onModel: (m: ModelEntry | undefined) => void;
  selectedEval: string | undefined;
  onSelectEval: (id: string | undefined, ev?: Eval) => void;
}) {
  const client = useClient();
  const {
    state: load,
    refresh: reload,
    setData: setEvals,
  } = useRequest(() => client.invoke('evals-list', { kind: 'hellaswag' }), [client]);
  const evals = load.data ?? NO_EVALS;
  const [progress, setProgress] = useState<Record<string, Progress>>({});
  const [queued, setQueued] = useState<Set<string>>(new Set());
  const [limitText, setLimitText] = useState('');
  const [runError, setRunError] = useState<unknown>(null);
  const [starting, setStarting] = useState(false);
  const [deleting, setDeleting] = useState<Eval | null>(null);
  const [data, reloadData] = useHellaswagData();
  const limitId = useId();
  const pickerId = useId();

  useStudioEvent('eval-status', (p) => {
    setQueued((q) => {
      const n = new Set(q);
      if (p.status === 'queued') n.add(p.evalId);
      else n.delete(p.evalId);
      return n;
    });
    if (p.status !== 'queued' && p.status !== 'running') {
      setProgress((pr) => {
        const { [p.evalId]: _gone, ...rest } = pr;
        return rest;
      });
    }
    void reload();
  });
  useStudioEvent('eval-progress', (p) => {
    const now = Date.now();
    setProgress((pr) => {
      const old = pr[p.evalId];
      return {
        ...pr,
        [p.evalId]: {
          done: p.done,
          total: p.total,
          accNorm: p.accNorm,
          t0: old?.t0 ?? now,
          done0: old?.done0 ?? p.done,
          t: now,
        },
      };
    });
  });

  const dataReady = data.data?.status === 'ready';
  // the examples this workspace holds (a prepared file may be a subset of the 10,042)
  const available = data.data?.status === 'ready' ? data.data.examples : undefined;
  const parsed = parseLimit(limitText);
  const limit =
    !('error' in parsed) && parsed.limit !== null && available !== undefined && parsed.limit > available
      ? { error: `The workspace has ${int(available)} examples; give at most that, or leave it empty.` }
      : parsed;
  const active = evals.filter((e) => e.status === 'running');
  const selected = evals.find((e) => e.id === selectedEval);

  const run = async () => {
    if (!model || 'error' in limit) return;
    setRunError(null);
    setStarting(true);
    try {
      const ev = await client.invoke('evals-hellaswag', {
        target: model.target,
        ...(limit.limit !== null ? { limit: limit.limit } : {}),
      });
      setEvals((list) => (list.some((e) => e.id === ev.id) ? list : [ev, ...list]));
      onSelectEval(ev.id, ev);
    } catch (e) {
      setRunError(e);
    } finally {
      setStarting(false);
    }
  };

  const cancel = async (id: string) => {
    try {
      await client.invoke('evals-cancel', { id });
    } catch (e) {
      setRunError(e);
    }
  };

  const why = !model
    ? 'Choose a model first.'
    : !dataReady
      ? 'Prepare the HellaSwag data first.'
      : 'error' in limit
        ? 'Fix the number of examples.'
        : null;

  return (
    <div className="stack">
      <section className="card" aria-labelledby="hs-run-title">
        <div className="card-header">
          <h2 id="hs-run-title">Run HellaSwag</h2>
        </div>
        <p className="muted small">
          Each example is a context and four endings; the model picks the ending with the lowest loss per token
          (acc_norm), as build-nanogpt&apos;s hellaswag.py does. The full validation set is 10,042 examples; a limit
          takes the first ones, for a quick, noisier figure.
        </p>
        <HellaswagData state={data} onReload={reloadData} />
        <form
          className="hs-run-form"
          onSubmit={(e) => {
            e.preventDefault();
            void run();
          }}
        >
          <ModelPicker id={pickerId} value={modelKey} onChange={onModel} />
          <div className={`field hs-limit${'error' in limit ? ' field-invalid' : ''}`}>
            <label htmlFor={limitId}>Examples</label>
            <input
              id={limitId}
              inputMode="numeric"
              placeholder={available !== undefined ? `all (${int(available)})` : 'all'}
              value={limitText}
              aria-invalid={'error' in limit}
              aria-describedby={`${limitId}-hint`}
              onChange={(e) => setLimitText(e.target.value)}
            />
            <span id={`${limitId}-hint`} className={'error' in limit ? 'field-error' : 'field-hint'}>
              {'error' in limit ? limit.error : 'Empty: every example.'}
            </span>
          </div>
          <div className="hs-run-actions">
            <button type="submit" className="button button-primary" disabled={why !== null || starting}>
              Run HellaSwag
            </button>
            {why && <span className="muted small">{why}</span>}
          </div>
        </form>
        {runError != null && <ErrorNote error={runError} />}
      </section>

      {active.map((e) => (
        <RunProgress
          key={e.id}
          ev={e}
          progress={progress[e.id]}
          queued={queued.has(e.id)}
          onCancel={() => cancel(e.id)}
        />
      ))}

      <section className="card card-flush" aria-labelledby="hs-results-title">
        <div className="card-header hs-results-header">
          <h2 id="hs-results-title">Results</h2>
          <span className="muted small">acc_norm against the reference points (full validation set)</span>
        </div>
        {load.status === 'loading' && (
          <p className="muted hs-pad" aria-busy="true">
            Loading the evaluations…
          </p>
        )}
        {load.status === 'error' && <ErrorNote error={load.error} onRetry={reload} />}
        {load.status === 'ok' && (
          <ResultsTable
            evals={evals}
            selected={selectedEval}
            progress={progress}
            queued={queued}
            onSelect={(e) => onSelectEval(e.id, e)}
            onCancel={(e) => cancel(e.id)}
            onDelete={setDeleting}
          />
        )}
      </section>

      {selected && <SelectedEval ev={selected} progress={progress[selected.id]} />}
      {!selected && load.status === 'ok' && evals.length > 0 && (
        <p className="muted small">Choose “Examples” on a finished evaluation to browse its examples.</p>
      )}

      {deleting && (
        <FormDialog
          title="Delete this evaluation?"
          tone="danger"
          onClose={() => setDeleting(null)}
          cancelLabel="Keep it"
          submitLabel="Delete"
          onSubmit={async () => {
            // the dialog closes at once; an error shows with the run form's
            const d = deleting;
            setDeleting(null);
            try {
              if (d.status === 'running') await client.invoke('evals-cancel', { id: d.id });
              await client.invoke('evals-delete', { id: d.id });
              if (selectedEval === d.id) onSelectEval(undefined);
            } catch (e) {
              setRunError(e);
            }
            void reload();
          }}
        >
          <p>
            The HellaSwag evaluation of <strong>{evalModelLabel(deleting)}</strong> from{' '}
            {fullDateTime(deleting.createdAt)} and its per-example results will be removed. A score recorded on a
            checkpoint stays.
          </p>
        </FormDialog>
      )}
    </div>
  );
}
