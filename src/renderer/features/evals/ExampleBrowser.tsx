/**
 * The per-example browser of a finished HellaSwag eval: a page of examples (evals-examples with offset/limit,
 * optionally only those acc_norm got wrong), and one example at a time: its context, its four endings with their
 * summed and per-token losses, the prediction and the label. j/k or the arrow keys move between examples.
 */
import { useCallback, useEffect, useId, useRef, useState, type KeyboardEvent } from 'react';
import { ErrorNote } from '../../components/ErrorNote';
import { fixed, int } from '../../format';
import { usePersistentState } from '../../usePersistentState';
import { useClient, useRequest } from '../../useInvoke';
import { browsableCount, evalModelLabel, type Eval, type Example, type HellaswagSummary } from './evals-info';

const PAGE_SIZES = [10, 20, 50, 100] as const;
const LETTERS = ['A', 'B', 'C', 'D'];

const NO_ROWS: Example[] = [];

export function ExampleBrowser({ ev, summary }: { ev: Eval; summary: HellaswagSummary }) {
  const client = useClient();
  const [wrongOnly, setWrongOnly] = useState(false);
  const [pageSize, setPageSize] = usePersistentState('evals.examplesPerPage', 20);
  const [offset, setOffset] = useState(0);
  const [cur, setCur] = useState(0);
  // where to land when a page loads: its first example, or its last (moving back across a page edge)
  const landing = useRef<'first' | 'last'>('first');
  const listRefs = useRef<Array<HTMLButtonElement | null>>([]);
  const focusList = useRef(false);
  const wrongId = useId();
  const sizeId = useId();

  const total = browsableCount(summary, wrongOnly);
  const size = (PAGE_SIZES as readonly number[]).includes(pageSize) ? pageSize : 20;

  const { state: load, reload } = useRequest(
    () => client.invoke('evals-examples', { evalId: ev.id, wrongOnly, limit: size, offset }),
    [client, ev.id, wrongOnly, size, offset],
    (rows) => {
      setCur(landing.current === 'last' ? Math.max(0, rows.length - 1) : 0);
      landing.current = 'first';
    },
  );

  const rows = load.data ?? NO_ROWS;
  const index = offset + cur;
  const hasNext = index + 1 < total;
  const hasPrev = index > 0;

  const next = useCallback(() => {
    if (cur + 1 < rows.length) setCur(cur + 1);
    else if (offset + size < total) {
      landing.current = 'first';
      setOffset(offset + size);
    }
  }, [cur, rows.length, offset, size, total]);

  const prev = useCallback(() => {
    if (cur > 0) setCur(cur - 1);
    else if (offset > 0) {
      landing.current = 'last';
      setOffset(Math.max(0, offset - size));
    }
  }, [cur, offset, size]);

  // keep keyboard focus on the list's current item when the keys moved it there
  useEffect(() => {
    if (focusList.current) {
      focusList.current = false;
      listRefs.current[cur]?.focus();
    }
  }, [cur, rows]);

  const onKeyDown = (e: KeyboardEvent<HTMLElement>) => {
    const t = e.target as HTMLElement;
    if (t.closest('input, select, textarea, summary') || e.altKey || e.ctrlKey || e.metaKey) return;
    const inList = t.closest('.hs-example-list') !== null;
    if (e.key === 'j' || e.key === 'ArrowDown' || e.key === 'ArrowRight') {
      e.preventDefault();
      focusList.current = inList;
      next();
    } else if (e.key === 'k' || e.key === 'ArrowUp' || e.key === 'ArrowLeft') {
      e.preventDefault();
      focusList.current = inList;
      prev();
    }
  };

  const ex = rows[cur];
  const pageEnd = Math.min(total, offset + rows.length);

  return (
    <section
      className="card hs-browser"
      aria-labelledby="hs-browser-title"
      onKeyDown={onKeyDown}
      data-testid="example-browser"
    >
      <div className="card-header">
        <h2 id="hs-browser-title">Examples · {evalModelLabel(ev)}</h2>
        <span className="muted small">
          {int(summary.n - summary.correctNorm)} of {int(summary.n)} wrong (acc_norm)
        </span>
      </div>
      <div className="toolbar hs-browser-toolbar">
        <label className="check" htmlFor={wrongId}>
          <input
            id={wrongId}
            type="checkbox"
            checked={wrongOnly}
            onChange={(e) => {
              landing.current = 'first';
              setWrongOnly(e.target.checked);
              setOffset(0);
            }}
          />
          Wrong only
        </label>
        <div className="inline-select">
          <label className="muted small" htmlFor={sizeId}>
            Per page
          </label>
          <select
            id={sizeId}
            value={size}
            onChange={(e) => {
              setPageSize(Number(e.target.value));
              setOffset(0);
            }}
          >
            {PAGE_SIZES.map((n) => (
              <option key={n} value={n}>
                {n}
              </option>
            ))}
          </select>
        </div>
        <span className="spacer" />
        {/* the range and the page buttons wrap as one group */}
        <div className="hs-page-nav">
          <span className="muted small" aria-live="polite" data-testid="examples-range">
            {total === 0 ? 'No examples' : `${int(offset + 1)}–${int(pageEnd)} of ${int(total)}`}
          </span>
          <button
            type="button"
            className="button"
            disabled={offset === 0}
            onClick={() => {
              landing.current = 'first';
              setOffset(Math.max(0, offset - size));
            }}
          >
            Previous page
          </button>
          <button
            type="button"
            className="button"
            disabled={offset + size >= total}
            onClick={() => {
              landing.current = 'first';
              setOffset(offset + size);
            }}
          >
            Next page
          </button>
        </div>
      </div>

      {load.status === 'error' && <ErrorNote error={load.error} onRetry={reload} />}
      {load.status === 'ok' && total === 0 && (
        <p className="muted">
          {wrongOnly
            ? 'acc_norm got every example right: there is nothing wrong to show.'
            : 'This evaluation scored no examples.'}
        </p>
      )}
      {total > 0 && (
        <div className="hs-browser-body" aria-busy={load.status === 'loading'}>
          <ul className="hs-example-list" aria-label="Examples on this page">
            {rows.map((r, i) => {
              const right = r.pred_norm === r.label;
              return (
                <li key={r.ind}>
                  <button
                    type="button"
                    ref={(el) => {
                      listRefs.current[i] = el;
                    }}
                    className={`hs-example-item${right ? ' is-right' : ' is-wrong'}`}
                    aria-current={i === cur ? 'true' : undefined}
                    tabIndex={i === cur ? 0 : -1}
                    onClick={() => setCur(i)}
                    aria-label={`Example ${offset + i + 1}, HellaSwag #${r.ind}: ${right ? 'right' : 'wrong'}`}
                  >
                    <span aria-hidden="true" className="hs-mark">
                      {right ? '✓' : '✗'}
                    </span>
                    <span>#{r.ind}</span>
                  </button>
                </li>
              );
            })}
          </ul>
          {ex ? (
            <ExampleDetail
              ex={ex}
              index={index}
              total={total}
              dataFile={typeof ev.params.data === 'string' ? ev.params.data : null}
              onPrev={prev}
              onNext={next}
              hasPrev={hasPrev}
              hasNext={hasNext}
            />
          ) : (
            <p className="muted" aria-busy="true">
              Loading examples…
            </p>
          )}
        </div>
      )}
    </section>
  );
}

function ExampleDetail({
  ex,
  index,
  total,
  dataFile,
  onPrev,
  onNext,
  hasPrev,
  hasNext,
}: {
  ex: Example;
  index: number;
  total: number;
  dataFile: string | null;
  onPrev: () => void;
  onNext: () => void;
  hasPrev: boolean;
  hasNext: boolean;
}) {
  const right = ex.pred_norm === ex.label;
  const minSum = Math.min(...ex.sum_loss);
  const minAvg = Math.min(...ex.avg_loss);
  return (
    <article
      className="hs-example"
      tabIndex={0}
      aria-labelledby="hs-example-title"
      aria-describedby="hs-example-keys"
      data-testid="example-detail"
    >
      <div className="hs-example-head">
        <h3 id="hs-example-title">
          Example {int(index + 1)} of {int(total)} <span className="muted">· HellaSwag #{ex.ind}</span>
        </h3>
        <span className={`pill ${right ? 'pill-ok' : 'hs-pill-wrong'}`} data-testid="example-verdict">
          {right ? 'Right' : 'Wrong'}
        </span>
        <span className="spacer" />
        {/* one group: when the head wraps, Previous and Next move to the next line together */}
        <div className="hs-example-nav" data-testid="example-nav">
          <button type="button" className="button" onClick={onPrev} disabled={!hasPrev} aria-keyshortcuts="k ArrowUp">
            Previous
          </button>
          <button type="button" className="button" onClick={onNext} disabled={!hasNext} aria-keyshortcuts="j ArrowDown">
            Next
          </button>
        </div>
      </div>
      <p id="hs-example-keys" className="muted small">
        Keys: j or ↓ next, k or ↑ previous. The prediction is the ending with the lowest loss per token (acc_norm); the
        lowest summed loss is acc&apos;s.
      </p>
      {ex.ctx != null ? (
        <blockquote className="hs-context" aria-label="Context">
          {ex.ctx}
        </blockquote>
      ) : (
        <p className="hs-context-missing small">
          The text of this example is not available: its data file{dataFile ? ` (${dataFile})` : ''} is gone or no
          longer holds it. The losses below are as they were measured.
        </p>
      )}
      <table className="table hs-endings" aria-label="Endings">
        <thead>
          <tr>
            <th scope="col">Ending</th>
            <th scope="col" className="num">
              Sum loss
            </th>
            <th scope="col" className="num">
              Loss per token
            </th>
            <th scope="col" className="num">
              Tokens
            </th>
          </tr>
        </thead>
        <tbody>
          {ex.sum_loss.map((sum, k) => {
            const avg = ex.avg_loss[k];
            const isLabel = k === ex.label;
            const isPred = k === ex.pred_norm;
            const cls = ['hs-ending', isLabel ? 'is-label' : '', isPred && !isLabel ? 'is-wrong-pred' : '']
              .filter(Boolean)
              .join(' ');
            return (
              <tr key={k} className={cls} data-ending={k}>
                <th scope="row">
                  <span className="hs-letter">{LETTERS[k]}</span>
                  <span className="hs-ending-text">
                    {ex.endings?.[k] ?? <span className="muted">(text not available)</span>}
                  </span>
                  <span className="hs-tags">
                    {isLabel && <span className="tag hs-tag-label">Label</span>}
                    {isPred && <span className={`tag ${isLabel ? 'hs-tag-right' : 'hs-tag-wrong'}`}>Predicted</span>}
                    {k === ex.pred && k !== ex.pred_norm && <span className="tag hs-tag-acc">Lowest sum (acc)</span>}
                  </span>
                </th>
                <td className={`num${sum === minSum ? ' hs-min' : ''}`}>{fixed(sum, 3)}</td>
                <td className={`num${avg === minAvg ? ' hs-min' : ''}`}>{fixed(avg, 4)}</td>
                <td className="num">{avg !== undefined && avg > 0 ? int(sum / avg) : '—'}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
      <p className="small" data-testid="example-outcome">
        Predicted <strong>{LETTERS[ex.pred_norm]}</strong>, label <strong>{LETTERS[ex.label]}</strong>:{' '}
        {right
          ? 'right.'
          : `wrong (the label's loss per token is ${fixed((ex.avg_loss[ex.label] ?? Number.NaN) - minAvg, 4)} higher).`}
      </p>
    </article>
  );
}
