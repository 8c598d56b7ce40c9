/**
 * The Compare page: two to ten runs picked from a searchable list (the selection lives in the URL,
 * `#/compare?runs=id1,id2`), their curves overlaid per metric with the Run page's chart options, published
 * reference values as dashed lines, a table of their configs, and exports (the scalars as CSV, each chart as PNG).
 */
import { useEffect, useId, useMemo, useRef, useState, type RefObject } from 'react';
import {
  Chart,
  ChartToolbar,
  type ChartBaseline,
  type ChartHandle,
  type ChartLine,
  type XKind,
} from '../../components/chart';
import { EmptyState } from '../../components/EmptyState';
import { ErrorNote } from '../../components/ErrorNote';
import { StatusPill } from '../../components/StatusPill';
import { compact, dateTime, fixed, int, metric } from '../../format';
import { formatSystem, formatSystemTick } from '../../system-metrics';
import { href, pageHref, useHashQuery } from '../../router';
import { engineUsedLabel, modelLabel, type Run } from '../../run-info';
import { shapeLabel, type HostFacts } from '../../../shared/run-facts';
import { useStudioEvent } from '../../useEvent';
import { useClient, useRequest } from '../../useInvoke';
import { usePersistentState } from '../../usePersistentState';
import {
  assignColors,
  configRows,
  fileSafe,
  hasMetric,
  MAX_RUNS,
  metricsCsv,
  MIN_RUNS,
  PANELS,
  panelTable,
  SYSTEM_PANELS,
  parseSelection,
  REFERENCE_LINES,
  runLabels,
  toggleSelection,
  type MetricPanel,
} from './compare-data';
import { downloadBlob, timestamp } from './download';
import { useCompareData } from './useCompareData';
import './compare.css';

const NO_RUNS: Run[] = [];

export function ComparePage() {
  const client = useClient();
  const {
    state: load,
    refresh: reload,
    setData: setRuns,
  } = useRequest(() => client.invoke('runs-list', { limit: 10_000 }), [client]);
  const runs = load.data ?? NO_RUNS;

  // keep the list (status, steps, best val loss) current
  useStudioEvent('run-status', () => void reload());
  useStudioEvent('run-deleted', (p) => setRuns((rs) => rs.filter((r) => r.id !== p.runId)));

  if (load.status === 'loading')
    return (
      <p className="muted" aria-busy="true">
        Loading the runs…
      </p>
    );
  if (load.status === 'error') return <ErrorNote error={load.error} onRetry={reload} />;
  if (runs.length < MIN_RUNS) {
    return (
      <EmptyState icon="compare" title={runs.length === 0 ? 'No runs to compare yet' : 'Only one run so far'}>
        <p>
          Compare overlays the curves of two to ten runs and lists how their configs differ.{' '}
          {runs.length === 0
            ? 'This workspace has no runs yet: start two,'
            : 'This workspace has one run: start another,'}{' '}
          for example the nano preset with two learning rates.
        </p>
        <div className="compare-empty-actions">
          <a className="button button-primary" href={href({ page: 'new-run' })}>
            New run
          </a>
          {runs.length > 0 && (
            <a className="button" href={href({ page: 'runs' })}>
              Runs
            </a>
          )}
        </div>
      </EmptyState>
    );
  }
  return <CompareView runs={runs} />;
}

/** Replaces the selection in the URL without a new history entry, and tells the hash listeners. */
function setSelectionInUrl(ids: readonly string[]): void {
  const next = pageHref('compare', ids.length ? { runs: ids.join(',') } : {});
  window.history.replaceState(window.history.state, '', next);
  window.dispatchEvent(new HashChangeEvent('hashchange'));
}

function CompareView({ runs }: { runs: Run[] }) {
  const query = useHashQuery();
  const requested = useMemo(() => parseSelection(query.get('runs')), [query]);
  const byId = useMemo(() => new Map(runs.map((r) => [r.id, r])), [runs]);
  const selectedRuns = useMemo(
    () => requested.map((id) => byId.get(id)).filter((r): r is Run => r !== undefined),
    [requested, byId],
  );
  const missing = requested.filter((id) => !byId.has(id));
  const ids = useMemo(() => selectedRuns.map((r) => r.id), [selectedRuns]);
  const colors = useMemo(() => assignColors(ids), [ids]);

  const toggle = (id: string, on: boolean) => setSelectionInUrl(toggleSelection(ids, id, on));

  return (
    <div className="stack compare-page">
      <RunPicker runs={runs} selected={ids} colors={colors} onToggle={toggle} onClear={() => setSelectionInUrl([])} />
      {missing.length > 0 && (
        <div className="error-note compare-missing" role="status">
          <strong>
            {missing.length === 1 ? 'A run of this link is' : `${missing.length} runs of this link are`} not in this
            workspace:{' '}
            {missing.map((id, i) => (
              <span key={id}>
                {i > 0 && ', '}
                <code>{id}</code>
              </span>
            ))}
          </strong>
          <p>They were deleted, or the link comes from another workspace. The other runs are compared.</p>
        </div>
      )}
      {selectedRuns.length < MIN_RUNS ? (
        <EmptyState icon="compare" title={selectedRuns.length === 0 ? 'Pick at least two runs' : 'Pick one more run'}>
          <p>Tick two to ten runs in the list above to overlay their curves and compare their configs.</p>
        </EmptyState>
      ) : (
        <Comparison runs={selectedRuns} colors={colors} />
      )}
    </div>
  );
}

function RunPicker({
  runs,
  selected,
  colors,
  onToggle,
  onClear,
}: {
  runs: Run[];
  selected: string[];
  colors: Map<string, string>;
  onToggle: (id: string, on: boolean) => void;
  onClear: () => void;
}) {
  const [search, setSearch] = useState('');
  const searchId = useId();
  const shown = useMemo(() => {
    const q = search.trim().toLowerCase();
    if (!q) return runs;
    return runs.filter((r) =>
      [r.name, r.id, r.notes, r.preset ?? '', modelLabel(r), String(r.config.dataset ?? ''), ...r.tags]
        .join('\n')
        .toLowerCase()
        .includes(q),
    );
  }, [runs, search]);
  const full = selected.length >= MAX_RUNS;

  return (
    <section className="card card-tight compare-picker" aria-labelledby="picker-title">
      <header className="card-header">
        <h2 id="picker-title">Runs</h2>
        <div className="toolbar">
          <div className="search">
            <label className="visually-hidden" htmlFor={searchId}>
              Search runs
            </label>
            <input
              id={searchId}
              type="search"
              placeholder="Search name, id, tag, notes…"
              value={search}
              onChange={(e) => setSearch(e.target.value)}
            />
          </div>
          <span className="muted small" aria-live="polite" data-testid="selection-count">
            {selected.length} of {MAX_RUNS} selected
          </span>
          <button type="button" className="button" onClick={onClear} disabled={selected.length === 0}>
            Clear
          </button>
        </div>
      </header>
      {full && (
        <p className="muted small compare-note">
          Ten runs are selected, the most one comparison shows: untick one to pick another.
        </p>
      )}
      <ul className="compare-checklist" aria-label="Runs to compare">
        {shown.length === 0 && <li className="muted small">No run matches “{search}”.</li>}
        {shown.map((r) => {
          const on = selected.includes(r.id);
          const color = colors.get(r.id);
          return (
            <li key={r.id} className={on ? 'compare-item compare-item-on' : 'compare-item'} data-run-id={r.id}>
              <label className="check compare-item-label">
                <input
                  type="checkbox"
                  checked={on}
                  disabled={!on && full}
                  onChange={(e) => onToggle(r.id, e.target.checked)}
                />
                <span
                  className="compare-swatch"
                  style={color ? { background: `var(${color})` } : undefined}
                  aria-hidden="true"
                />
                <span className="compare-item-name">{r.name}</span>
              </label>
              <StatusPill status={r.status} />
              <span className="muted small compare-item-meta">
                {r.preset ?? modelLabel(r)} · {int(r.stepsDone)} steps · val {fixed(r.bestValLoss, 3)} ·{' '}
                {dateTime(r.createdAt)}
              </span>
            </li>
          );
        })}
      </ul>
    </section>
  );
}

const pct = (v: number) => `${(v * 100).toFixed(1)}%`;
const lrTick = (v: number) => (v === 0 ? '0' : v.toExponential(1));
const lrValue = (v: number) => v.toExponential(3);
const compactValue = (v: number) => compact(v);

function panelFormats(p: MetricPanel): {
  format?: (v: number) => string;
  yFormat?: (v: number, splits: readonly number[]) => string;
} {
  const sys = p.system;
  if (sys) {
    return { format: (v) => formatSystem(sys, v), yFormat: (v, splits) => formatSystemTick(sys, v, splits) };
  }
  if (p.kind === 'percent') return { format: pct, yFormat: pct };
  if (p.kind === 'lr') return { format: lrValue, yFormat: lrTick };
  if (p.kind === 'count') return { format: compactValue };
  return {};
}

/** The width of a chart in the grid (the grid's columns are at least 380 px wide, 18 px apart), for decimation. */
function useChartWidth(): [RefObject<HTMLDivElement | null>, number] {
  const ref = useRef<HTMLDivElement>(null);
  const [width, setWidth] = useState(600);
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    const measure = () => {
      const w = el.clientWidth;
      if (w <= 0) return;
      const cols = Math.max(1, Math.floor((w + 18) / (380 + 18)));
      // in steps of 100 px, so that a small resize does not recompute the tables
      setWidth(Math.max(200, Math.ceil((w - (cols - 1) * 18) / cols / 100) * 100));
    };
    measure();
    const ro = new ResizeObserver(measure);
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  return [ref, width];
}

function Comparison({ runs, colors }: { runs: Run[]; colors: Map<string, string> }) {
  const ids = runs.map((r) => r.id);
  const client = useClient();
  const data = useCompareData(ids);
  const [smoothing, setSmoothing] = usePersistentState('compare.smoothing', 0.6);
  const [logY, setLogY] = usePersistentState('compare.logY', false);
  const [xKind, setXKind] = usePersistentState<XKind>('compare.xKind', 'step');
  const [clip, setClip] = usePersistentState('compare.clip', false);
  const [refsOn, setRefsOn] = usePersistentState<Record<string, boolean>>('compare.references', {});
  const [gridRef, chartWidth] = useChartWidth();
  const labels = useMemo(() => runLabels(runs), [runs]);
  const charts = useRef(new Map<string, ChartHandle>());
  const [exporting, setExporting] = useState(false);
  const [exportError, setExportError] = useState<unknown>(null);
  const idsKey = ids.join(',');

  const loaded = runs.map((r) => ({ id: r.id, series: data.runs[r.id]?.series ?? {} }));
  const loading = runs.filter((r) => (data.runs[r.id]?.status ?? 'loading') === 'loading');
  const failed = runs.filter((r) => data.runs[r.id]?.status === 'error');

  // each chart's table, kept while what it depends on is unchanged (a smoothing change leaves the lr and the evals)
  const tables = useRef(new Map<string, { key: string; data: (number | null)[][] }>());
  const panels = useMemo(() => {
    const opts = { smoothing, logY, xKind, buckets: chartWidth };
    const tableOf = (p: MetricPanel) => {
      // the series are mutated in place; `version` says when
      const key = [data.version, idsKey, logY, xKind, chartWidth, p.smooth ? smoothing : ''].join('|');
      const hit = tables.current.get(p.id);
      if (hit && hit.key === key) return hit.data;
      const table = panelTable(p, loaded, opts);
      tables.current.set(p.id, { key, data: table });
      return table;
    };
    return [...PANELS, ...SYSTEM_PANELS]
      .filter((p) => !p.optional || hasMetric(loaded, p.metric))
      .map((p) => {
        const { format, yFormat } = panelFormats(p);
        const lines: ChartLine[] = runs.map((r) => ({
          label: labels.get(r.id) ?? r.name,
          color: colors.get(r.id) ?? '--chart-1',
          width: p.smooth && smoothing > 0 ? 2 : 1.6,
          points: p.points,
          format,
        }));
        return { panel: p, lines, yFormat, data: tableOf(p) };
      });
    // `loaded` is rebuilt on each render from data.runs; the version and the ids say when it changed
  }, [data.version, idsKey, smoothing, logY, xKind, chartWidth, labels, colors]);

  const baselinesFor = (metricName: string): ChartBaseline[] =>
    REFERENCE_LINES.filter((b) => b.metric === metricName && refsOn[b.id] !== false).map((b) => ({
      label: b.label,
      value: b.value,
      color: b.color,
      dash: b.dash,
    }));
  const shownRefs = REFERENCE_LINES.filter((b) => panels.some((p) => p.panel.metric === b.metric));

  const exportCsv = async () => {
    setExporting(true);
    setExportError(null);
    try {
      const all = await Promise.all(
        runs.map(async (r) => ({ id: r.id, name: r.name, metrics: await client.invoke('runs-metrics', { id: r.id }) })),
      );
      downloadBlob(new Blob([metricsCsv(all)], { type: 'text/csv' }), `compare-${runs.length}-runs-${timestamp()}.csv`);
    } catch (e) {
      setExportError(e);
    } finally {
      setExporting(false);
    }
  };

  const exportPng = (id: string, title: string) => {
    const canvas = charts.current.get(id)?.toImage();
    if (!canvas) return;
    canvas.toBlob((blob) => {
      if (blob) downloadBlob(blob, `compare-${fileSafe(title.toLowerCase())}-${timestamp()}.png`);
    }, 'image/png');
  };

  // system charts read raw values on linear axes (no log scale): percent, bytes, watts and degrees
  const chartOf = ({ panel, lines, yFormat, data: table }: (typeof panels)[number]) => (
    <div key={panel.id} className="compare-chart">
      <Chart
        ref={(h) => {
          if (h) charts.current.set(panel.id, h);
          else charts.current.delete(panel.id);
        }}
        testId={`chart-${panel.id}`}
        title={panel.title}
        unit={panel.unit}
        data={table}
        lines={lines}
        xKind={xKind}
        logY={panel.system ? false : logY}
        clip={clip}
        syncKey="compare"
        yFormat={yFormat}
        baselines={baselinesFor(panel.metric)}
        yInclude={panel.system === 'bytes' ? [0] : undefined}
        nearestLegend
      />
      <button
        type="button"
        className="button button-small compare-png"
        onClick={() => exportPng(panel.id, panel.title)}
        aria-label={`Download the ${panel.title} chart as PNG`}
        title="Download this chart, with its title and legend, as a PNG image"
      >
        PNG
      </button>
    </div>
  );

  return (
    <>
      <section className="card card-tight" aria-labelledby="curves-title">
        <header className="card-header">
          <h2 id="curves-title">Curves</h2>
          <ChartToolbar
            smoothing={smoothing}
            setSmoothing={setSmoothing}
            logY={logY}
            setLogY={setLogY}
            xKind={xKind}
            setXKind={setXKind}
            clip={clip}
            setClip={setClip}
          />
        </header>
        <div className="compare-legend" role="list" aria-label="Selected runs">
          {runs.map((r) => (
            <span
              key={r.id}
              role="listitem"
              className="compare-legend-item"
              data-run-id={r.id}
              data-color={colors.get(r.id)}
            >
              <span className="compare-swatch" style={{ background: `var(${colors.get(r.id)})` }} aria-hidden="true" />
              <a href={href({ page: 'run', runId: r.id })}>{labels.get(r.id)}</a>
              <StatusPill status={r.status} />
            </span>
          ))}
        </div>
        <div className="toolbar compare-refs">
          {shownRefs.length > 0 && (
            <div className="compare-ref-set" role="group" aria-labelledby="refs-title">
              <span id="refs-title" className="muted small">
                Reference lines
              </span>
              {shownRefs.map((b) => (
                <label key={b.id} className="check">
                  <input
                    type="checkbox"
                    checked={refsOn[b.id] !== false}
                    onChange={(e) => setRefsOn({ ...refsOn, [b.id]: e.target.checked })}
                  />
                  <span
                    className="compare-ref-swatch"
                    style={{ borderTopColor: `var(${b.color})`, borderTopStyle: b.dash[0]! > 3 ? 'dashed' : 'dotted' }}
                    aria-hidden="true"
                  />
                  {b.description}
                </label>
              ))}
            </div>
          )}
          <span className="spacer" />
          <button
            type="button"
            className="button"
            onClick={exportCsv}
            disabled={exporting}
            title="Every scalar of the selected runs: run_id, run_name, metric, step, value, wall_time (Unix seconds), tokens_seen"
          >
            {exporting ? 'Exporting…' : 'Export CSV'}
          </button>
        </div>
        {exportError !== null && <ErrorNote error={exportError} />}
        {loading.length > 0 && (
          <p className="muted small" aria-busy="true">
            Loading the metrics of {loading.map((r) => r.name).join(', ')}…
          </p>
        )}
        {failed.map((r) => (
          <ErrorNote key={r.id} error={data.runs[r.id]?.error} onRetry={() => data.reload(r.id)} />
        ))}
        <div className="chart-grid" ref={gridRef}>
          {panels.filter((p) => !p.panel.system).map(chartOf)}
        </div>
        {panels.some((p) => p.panel.system) && (
          <section className="compare-system" aria-labelledby="compare-system-title" data-testid="system-charts">
            <h3 id="compare-system-title" className="compare-group-title">
              System
            </h3>
            <div className="chart-grid">{panels.filter((p) => p.panel.system).map(chartOf)}</div>
          </section>
        )}
        <p className="muted small chart-help">
          Each run keeps its colour on every chart. Smoothing is TensorBoard&apos;s debiased exponential moving average
          (train loss, gradient norm and throughput). Wall time counts from each run&apos;s first recorded step. Long
          series are thinned to the chart&apos;s width, keeping each pixel&apos;s lowest and highest value. Drag across
          a chart to zoom, double-click to reset; hover to read each run&apos;s nearest value; click a run in a
          chart&apos;s legend to hide it there.
        </p>
      </section>
      <ConfigTable runs={runs} colors={colors} labels={labels} />
    </>
  );
}

const hostShort = (h: HostFacts) => `${h.cpu}, ${h.cores} cores${h.gpus.length ? `, ${h.gpus.join(', ')}` : ''}`;

/** What the table shows of each run besides its config. */
const RUN_FACTS: { label: string; value: (r: Run) => string }[] = [
  { label: 'status', value: (r) => r.status },
  { label: 'steps done', value: (r) => int(r.stepsDone) },
  { label: 'tokens seen', value: (r) => int(r.tokensSeen) },
  { label: 'best val loss', value: (r) => metric(r.bestValLoss) },
  // the config's "engine" is what was asked for (e.g. auto); this is what ran
  { label: 'engine used', value: (r) => engineUsedLabel(r) },
  {
    label: 'model trained',
    value: (r) => (r.attempts.length ? shapeLabel(r.attempts[r.attempts.length - 1]!.model) : '—'),
  },
  { label: 'host', value: (r) => (r.attempts.length ? hostShort(r.attempts[r.attempts.length - 1]!.host) : '—') },
  { label: 'created', value: (r) => dateTime(r.createdAt) },
];

function ConfigTable({
  runs,
  colors,
  labels,
}: {
  runs: Run[];
  colors: Map<string, string>;
  labels: Map<string, string>;
}) {
  const [diffOnly, setDiffOnly] = usePersistentState('compare.diffOnly', false);
  const rows = useMemo(() => configRows(runs.map((r) => r.config)), [runs]);
  const differing = rows.filter((r) => r.differs).length;
  const shown = diffOnly ? rows.filter((r) => r.differs) : rows;

  return (
    <section className="card card-tight" aria-labelledby="config-title">
      <header className="card-header">
        <h2 id="config-title">Config</h2>
        <label className="check">
          <input type="checkbox" role="switch" checked={diffOnly} onChange={(e) => setDiffOnly(e.target.checked)} />
          Differences only{' '}
          <span className="muted">
            ({differing} of {rows.length} keys differ)
          </span>
        </label>
      </header>
      <div className="table-wrap">
        <table className="table table-dense compare-config" aria-label="Config of the selected runs">
          <thead>
            <tr>
              <th scope="col">Key</th>
              {runs.map((r) => (
                <th key={r.id} scope="col" data-run-id={r.id}>
                  <span
                    className="compare-swatch"
                    style={{ background: `var(${colors.get(r.id)})` }}
                    aria-hidden="true"
                  />
                  {labels.get(r.id)}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {RUN_FACTS.map((f) => (
              <tr key={f.label} className="compare-fact">
                <th scope="row" className="muted">
                  {f.label}
                </th>
                {runs.map((r) => (
                  <td key={r.id}>{f.value(r)}</td>
                ))}
              </tr>
            ))}
            {shown.length === 0 && (
              <tr>
                <td colSpan={runs.length + 1} className="muted table-empty">
                  The configs are the same.
                </td>
              </tr>
            )}
            {shown.map((row) => (
              <tr key={row.key} data-key={row.key} className={row.differs ? 'compare-differs' : undefined}>
                <th scope="row" className="mono">
                  {row.key}
                </th>
                {row.values.map((v, i) => (
                  <td key={runs[i]!.id} className="mono">
                    {v}
                  </td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}
