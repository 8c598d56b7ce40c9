/**
 * A run's report: one HTML file that stands alone (no scripts, no external resources), to share a run with someone
 * who does not have the studio. It holds the run's title and status, its facts (as the run page shows them), its
 * curves drawn as inline SVG, its samples, its config and its log, and follows the reader's light or dark scheme.
 *
 * `runReport` is pure: the run record, its metrics, logs and samples in, the HTML out.
 */
import { accPercent } from '../../shared/accuracy';
import type { LogEntry, MetricSeries, Run, Sample } from '../../shared/records';
import { engineLabel, mixedEngines, shapeLabel, type RunAttempt } from '../../shared/run-facts';
import { runFileName } from '../../shared/run-files';

export interface ReportInput {
  run: Run;
  /** runs-metrics' answer: metric name -> series (a NaN value may arrive as null) */
  metrics: Record<string, MetricSeries>;
  logs: readonly LogEntry[];
  samples: readonly Sample[];
  /** when the report is made, ms since the epoch (printed in its footer) */
  generatedAt: number;
}

export interface RunReport {
  html: string;
  /** "<run name>-report.html" */
  fileName: string;
}

/** The log lines a report holds at most (the latest ones); the whole log is its own download. */
export const REPORT_LOG_LINES = 2000;

/** Text for HTML: the five characters that could end a text node or an attribute value, as entities. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

// ---- numbers and times ---------------------------------------------------------------------------------------

const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** 1234567 -> "1,234,567" */
function int(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** 1234 -> "1.23k", 4500000 -> "4.5M" */
export function compact(n: number): string {
  const a = Math.abs(n);
  for (const [d, suffix] of [
    [1e12, 'T'],
    [1e9, 'G'],
    [1e6, 'M'],
    [1e3, 'k'],
  ] as const) {
    if (a >= d) return `${Number((n / d).toPrecision(3))}${suffix}`;
  }
  return String(Number(n.toPrecision(3)));
}

/** HellaSwag's one form everywhere: 0.28 -> "28.0%" */
export const percent = accPercent;

/** A number to about four significant digits, without trailing zeros: 3.28551 -> "3.286" */
function short(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5) return compact(v);
  if (a < 1e-3) return v.toExponential(1);
  return String(Number(v.toPrecision(4)));
}

const lrLabel = (v: number): string => (v === 0 ? '0' : v.toExponential(1));

/** "2h 05m", "3m 20s", "12s" */
function duration(sec: number): string {
  const s = Math.round(sec);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  return `${h}h ${String(m % 60).padStart(2, '0')}m`;
}

/** "2025-01-02 13:04 UTC": the reader may be in another time zone than the run */
function utc(ms: number | null | undefined): string {
  if (!finite(ms)) return '—';
  return `${new Date(ms).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

// ---- charts --------------------------------------------------------------------------------------------------

/**
 * Round tick values across [min, max]: about `count` of them, 1, 2 or 5 times a power of ten apart (at least
 * `minStep` apart: 1 for steps). Each is rounded to its step's decimals, so that 0.1 + 0.2 prints as 0.3.
 */
export function niceTicks(min: number, max: number, count = 5, minStep = 0): { ticks: number[]; step: number } {
  if (!(max > min)) return { ticks: [min], step: 1 };
  const raw = (max - min) / Math.max(1, count);
  const p = 10 ** Math.floor(Math.log10(raw));
  const f = raw / p;
  let step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
  if (step < minStep) step = minStep;
  const decimals = Math.min(20, Math.max(0, -Math.floor(Math.log10(step)) + 1));
  const ticks: number[] = [];
  // counted by index, so that a step too small to move a large value cannot stall; `count` bounds the list anyway
  const first = Math.ceil(min / step - 1e-9);
  for (let i = 0; i <= 4 * count + 4; i++) {
    const v = (first + i) * step;
    if (v > max + step * 1e-9) break;
    ticks.push(Number(v.toFixed(decimals)));
  }
  return { ticks, step };
}

/** A point of a line; a null y breaks the line there (a NaN step, a gap). */
type Pt = [x: number, y: number | null];

export interface ChartLine {
  label: string;
  /** the colour slot, 1..6 (the CSS of the report gives each a light and a dark colour) */
  color: number;
  points: Pt[];
  /** drawn thin and faint (the raw values under a smoothed line) */
  faint?: boolean;
  /** marks each point with a dot (sparse evaluations) */
  dots?: boolean;
  /** left out of the legend */
  noLegend?: boolean;
}

export interface ChartSpec {
  id: string;
  title: string;
  unit?: string;
  lines: ChartLine[];
  yLabel?: (v: number) => string;
}

const W = 520;
const H = 230;
const M = { left: 56, right: 12, top: 10, bottom: 32 };

/**
 * At most about 2 points per bucket: the first, lowest, highest and last finite values of each of `buckets`
 * equal runs of points, in their order, so that a long run keeps its spikes at the width it is drawn.
 */
export function thin(points: readonly Pt[], buckets: number): Pt[] {
  if (points.length <= buckets * 4) return points.slice();
  const out: Pt[] = [];
  const per = points.length / buckets;
  for (let b = 0; b < buckets; b++) {
    const from = Math.floor(b * per);
    const to = Math.min(points.length, Math.floor((b + 1) * per));
    let lo = -1;
    let hi = -1;
    let first = -1;
    let last = -1;
    for (let i = from; i < to; i++) {
      const y = points[i]![1];
      if (y === null) continue;
      if (first < 0) first = i;
      last = i;
      if (lo < 0 || y < points[lo]![1]!) lo = i;
      if (hi < 0 || y > points[hi]![1]!) hi = i;
    }
    if (first < 0) continue;
    for (const i of [...new Set([first, lo, hi, last])].sort((a, b) => a - b)) out.push(points[i]!);
  }
  return out;
}

/** TensorBoard's debiased exponential moving average; a null leaves the average as it was and stays a gap. */
export function smooth(points: readonly Pt[], weight: number): Pt[] {
  let ema = 0;
  let n = 0;
  return points.map(([x, y]) => {
    if (y === null) return [x, null];
    ema = ema * weight + (1 - weight) * y;
    n++;
    return [x, ema / (1 - weight ** n)];
  });
}

/** A chart as an SVG element: the lines as paths over a grid, with tick labels on both axes and the x axis' name. */
export function svgChart(spec: ChartSpec): string {
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const all = spec.lines.flatMap((l) => l.points);
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]).filter(finite);
  const title = escapeHtml(spec.title);
  if (!ys.length) {
    return `<svg class="chart-svg" viewBox="0 0 ${W} ${H}" role="img" aria-label="${title}: nothing recorded"><text class="empty" x="${W / 2}" y="${H / 2}" text-anchor="middle">Nothing recorded</text></svg>`;
  }
  let x0 = Math.min(...xs);
  let x1 = Math.max(...xs);
  if (x1 === x0) {
    x0 -= 1;
    x1 += 1;
  }
  let y0 = ys.reduce((a, b) => Math.min(a, b));
  let y1 = ys.reduce((a, b) => Math.max(a, b));
  // a flat line (up to rounding: a smoothed constant wobbles in its last bits) gets a range around its value
  if (y1 - y0 <= 1e-9 * Math.max(Math.abs(y0), Math.abs(y1))) {
    const pad = Math.abs(y0) * 0.05 || 1;
    y0 -= pad;
    y1 += pad;
  }
  // the y range grows to its outer ticks, so that the top and bottom lines of the grid are labelled
  const yt = niceTicks(y0, y1, 5);
  y0 = Math.min(y0, Math.floor(y0 / yt.step + 1e-9) * yt.step);
  y1 = Math.max(y1, Math.ceil(y1 / yt.step - 1e-9) * yt.step);
  const yTicks = niceTicks(y0, y1, 5).ticks.filter((v) => v >= y0 - 1e-12 && v <= y1 + 1e-12);
  const xTicks = niceTicks(x0, x1, 6, 1).ticks;
  const sx = (x: number) => M.left + ((x - x0) / (x1 - x0)) * pw;
  const sy = (y: number) => M.top + (1 - (y - y0) / (y1 - y0)) * ph;
  const f = (v: number) => v.toFixed(1);
  const yLabel = spec.yLabel ?? short;

  const parts: string[] = [];
  for (const v of yTicks) {
    const y = f(sy(v));
    parts.push(`<line class="grid" x1="${M.left}" x2="${W - M.right}" y1="${y}" y2="${y}"/>`);
    parts.push(
      `<text class="tick" x="${M.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${escapeHtml(yLabel(v))}</text>`,
    );
  }
  for (const v of xTicks) {
    const x = f(sx(v));
    parts.push(`<line class="grid" x1="${x}" x2="${x}" y1="${M.top}" y2="${H - M.bottom}"/>`);
    parts.push(
      `<text class="tick" x="${x}" y="${H - M.bottom + 15}" text-anchor="middle">${escapeHtml(short(v))}</text>`,
    );
  }
  parts.push(
    `<line class="axis" x1="${M.left}" x2="${W - M.right}" y1="${H - M.bottom}" y2="${H - M.bottom}"/>`,
    `<line class="axis" x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${H - M.bottom}"/>`,
    `<text class="axis-name" x="${W - M.right}" y="${H - 4}" text-anchor="end">step</text>`,
  );
  for (const line of spec.lines) {
    const pts = thin(line.points, pw);
    let d = '';
    let pen = false;
    for (const [x, y] of pts) {
      if (y === null) {
        pen = false;
        continue;
      }
      d += `${pen ? 'L' : 'M'}${f(sx(x))},${f(sy(y))}`;
      pen = true;
    }
    const cls = `line c${line.color}${line.faint ? ' faint' : ''}`;
    if (d) parts.push(`<path class="${cls}" d="${d}"><title>${escapeHtml(line.label)}</title></path>`);
    // a lone point draws no line: dots show it (and every point of a sparse evaluation)
    const finitePts = pts.filter((p): p is [number, number] => p[1] !== null);
    if (line.dots || finitePts.length === 1)
      for (const [x, y] of finitePts)
        parts.push(
          `<circle class="dot c${line.color}" cx="${f(sx(x))}" cy="${f(sy(y))}" r="3"><title>${escapeHtml(`${line.label} at step ${x}: ${yLabel(y)}`)}</title></circle>`,
        );
  }
  const n = spec.lines.reduce((s, l) => s + l.points.length, 0);
  return `<svg class="chart-svg" viewBox="0 0 ${W} ${H}" role="img" aria-label="${title} by step" data-points="${n}">${parts.join('')}</svg>`;
}

function chartFigure(spec: ChartSpec): string {
  const legend = spec.lines
    .filter((l) => !l.noLegend)
    .map((l) => `<span class="key"><i class="swatch c${l.color}"></i>${escapeHtml(l.label)}</span>`)
    .join('');
  const unit = spec.unit ? ` <span class="unit">${escapeHtml(spec.unit)}</span>` : '';
  return `<figure class="chart" data-chart="${escapeHtml(spec.id)}"><figcaption><span class="chart-title">${escapeHtml(spec.title)}</span>${unit}<span class="legend">${legend}</span></figcaption>${svgChart(spec)}</figure>`;
}

const pointsOf = (s: MetricSeries | undefined): Pt[] =>
  s ? s.steps.map((x, i) => [x, finite(s.values[i]) ? s.values[i]! : null]) : [];

/** The smoothing the run page starts with, for the train loss, gradient norm and throughput. */
const SMOOTHING = 0.6;

/** A smoothed line over its faint raw values. */
function smoothedLines(label: string, color: number, s: MetricSeries | undefined): ChartLine[] {
  const raw = pointsOf(s);
  return [
    { label: `${label} (raw)`, color, points: raw, faint: true, noLegend: true },
    { label, color, points: smooth(raw, SMOOTHING) },
  ];
}

/** The report's charts: loss (train and val), learning rate, gradient norm, throughput, and HellaSwag when measured. */
export function reportCharts(metrics: Record<string, MetricSeries>): ChartSpec[] {
  const val = pointsOf(metrics['val/loss']);
  const charts: ChartSpec[] = [
    {
      id: 'loss',
      title: 'Loss',
      unit: 'cross-entropy, nats',
      lines: [
        ...smoothedLines('train', 1, metrics['train/loss']),
        ...(val.length ? [{ label: 'val', color: 2, points: val, dots: val.length <= 60 }] : []),
      ],
    },
    {
      id: 'lr',
      title: 'Learning rate',
      lines: [{ label: 'lr', color: 3, points: pointsOf(metrics['train/lr']) }],
      yLabel: lrLabel,
    },
    {
      id: 'norm',
      title: 'Gradient norm',
      unit: 'before clipping',
      lines: smoothedLines('norm', 4, metrics['train/norm']),
    },
    {
      id: 'throughput',
      title: 'Throughput',
      unit: 'tokens / s',
      lines: smoothedLines('tok/s', 5, metrics['train/tok_per_sec']),
      yLabel: compact,
    },
  ];
  const hs = pointsOf(metrics['hellaswag/acc_norm']);
  if (hs.some((p) => p[1] !== null))
    charts.push({
      id: 'hellaswag',
      title: 'HellaSwag',
      unit: 'acc_norm',
      lines: [{ label: 'acc_norm', color: 6, points: hs, dots: true }],
      yLabel: percent,
    });
  return charts;
}

// ---- facts ---------------------------------------------------------------------------------------------------

function lastFinite(s: MetricSeries | undefined): number | undefined {
  if (!s) return undefined;
  for (let i = s.values.length - 1; i >= 0; i--) if (finite(s.values[i])) return s.values[i];
  return undefined;
}

/** The run's optimizer steps in all: max_steps, or token_budget / total_batch_size, when its config says. */
function plannedSteps(config: Record<string, unknown>): number | undefined {
  if (finite(config.max_steps)) return config.max_steps;
  const budget = config.token_budget;
  const tbs = config.total_batch_size;
  return finite(budget) && finite(tbs) && tbs > 0 ? Math.ceil(budget / tbs) : undefined;
}

/** The model: the shape that trained once an attempt recorded it, else the config's preset or shape. */
function modelText(run: Run): string {
  const m = run.config.model as Record<string, unknown> | undefined;
  const preset = typeof m?.preset === 'string' ? m.preset : undefined;
  const a = run.attempts.at(-1);
  if (a) return `${preset ? `${preset} · ` : ''}${shapeLabel(a.model)}`;
  if (preset) return preset;
  if (finite(m?.n_layer) && finite(m?.n_head) && finite(m?.n_embd)) return `${m.n_layer}L·${m.n_head}H·${m.n_embd}C`;
  return 'custom';
}

function engineText(run: Run): string {
  const a = run.attempts.at(-1);
  if (a) return engineLabel(a) + (mixedEngines(run.attempts) ? ' (earlier attempts ran on another engine)' : '');
  return run.engine && run.engine !== 'auto' ? run.engine : '—';
}

/** The facts as label and text, in the order of the run page: its header, then its summary strip. */
export function reportFacts(run: Run, metrics: Record<string, MetricSeries>): [string, string][] {
  const planned = plannedSteps(run.config);
  const steps = `${int(run.stepsDone)} of ${planned !== undefined ? int(planned) : '?'} steps`;
  const dt = metrics['train/dt_ms'];
  const trainMs = dt ? dt.values.reduce<number>((a, b) => (finite(b) ? a + b : a), 0) : undefined;
  const hs = lastFinite(metrics['hellaswag/acc_norm']);
  const facts: [string, string][] = [
    ['Run id', run.id],
    ['Model', modelText(run)],
    ['Dataset', typeof run.config.dataset === 'string' ? run.config.dataset : '—'],
    ...(run.preset ? [['Preset', run.preset] as [string, string]] : []),
    ['Engine', engineText(run)],
    ['Created', utc(run.createdAt)],
    ['Started', utc(run.startedAt)],
    ['Ended', utc(run.endedAt)],
    ['Steps done', steps],
    ['Train loss', ((v) => (v === undefined ? '—' : v.toFixed(4)))(lastFinite(metrics['train/loss']))],
    ['Best val loss', run.bestValLoss === null ? '—' : run.bestValLoss.toFixed(4)],
    ['Tokens', int(run.tokensSeen)],
    ['tok/s', ((v) => (v === undefined ? '—' : compact(v)))(lastFinite(metrics['train/tok_per_sec']))],
    ...(hs !== undefined ? [['HellaSwag', percent(hs)] as [string, string]] : []),
    ['Train time', trainMs !== undefined && trainMs > 0 ? duration(trainMs / 1000) : '—'],
    ['Last checkpoint', run.lastCheckpointStep !== null ? `step ${run.lastCheckpointStep}` : '—'],
  ];
  if (run.tags.length) facts.push(['Tags', run.tags.join(', ')]);
  return facts;
}

function hostLine(a: RunAttempt): string {
  const h = a.host;
  const gpus = h.gpus.length
    ? `; ${h.gpus.length} GPU${h.gpus.length === 1 ? '' : 's'}: ${[...new Set(h.gpus)].join(', ')}`
    : '';
  return `${h.hostname}: ${h.cpu}, ${h.cores} cores, ${(h.memBytes / 2 ** 30).toFixed(1)} GiB${gpus}`;
}

function attemptsTable(attempts: readonly RunAttempt[]): string {
  if (!attempts.length) return '';
  const rows = attempts
    .map((a) => {
      const commit = a.commit ? `<div class="muted"><code>${escapeHtml(a.commit.slice(0, 12))}</code></div>` : '';
      return `<tr><td>${escapeHtml(utc(a.startedAt))}</td><td class="num">${a.fromStep}</td><td>${escapeHtml(engineLabel(a))}${a.worldSize > 1 ? ` × ${a.worldSize} ranks` : ''}<div class="muted">${escapeHtml(a.build)}</div></td><td>${escapeHtml(shapeLabel(a.model))}<div class="muted">from ${escapeHtml(a.initFrom)}</div></td><td>${escapeHtml(hostLine(a))}<div class="muted">${escapeHtml(a.host.os)}</div></td><td>${escapeHtml(a.studioVersion)}${commit}</td></tr>`;
    })
    .join('');
  return `<h3>What ran</h3><div class="scroll"><table class="attempts"><thead><tr><th>Started</th><th>From step</th><th>Engine</th><th>Model</th><th>Host</th><th>Studio</th></tr></thead><tbody>${rows}</tbody></table></div>`;
}

// ---- samples and log -----------------------------------------------------------------------------------------

const EOT_TEXT = '<|endoftext|>';

/** A sample's text, escaped, with each end-of-text token shown as a marker (a base model starts another document). */
function sampleText(text: string): string {
  return text
    .split(EOT_TEXT)
    .map(escapeHtml)
    .join('<span class="eot" title="end of text (token 50256)">end of text</span>');
}

function samplesSection(samples: readonly Sample[]): string {
  if (!samples.length) return '<p class="muted">No samples were recorded.</p>';
  const byStep = new Map<number, Sample[]>();
  for (const s of samples) {
    const list = byStep.get(s.step) ?? [];
    list.push(s);
    byStep.set(s.step, list);
  }
  return [...byStep.entries()]
    .sort((a, b) => b[0] - a[0])
    .map(([step, list]) => {
      const items = list
        .sort((a, b) => a.idx - b.idx)
        .map((s) => {
          const body =
            s.prompt && s.text.startsWith(s.prompt)
              ? `<mark>${escapeHtml(s.prompt)}</mark>${sampleText(s.text.slice(s.prompt.length))}`
              : sampleText(s.text);
          return `<li class="sample">${body}</li>`;
        })
        .join('');
      return `<section class="sample-group" data-step="${step}"><h3>Step ${step}</h3><ol class="samples">${items}</ol></section>`;
    })
    .join('');
}

function logSection(logs: readonly LogEntry[]): string {
  if (!logs.length) return '<p class="muted">Nothing was logged.</p>';
  const shown = logs.slice(-REPORT_LOG_LINES);
  const lines = shown
    .map(
      (l) =>
        `<span class="log-line log-${escapeHtml(l.level)}"><span class="muted">${escapeHtml(new Date(l.time).toISOString().slice(0, 19).replace('T', ' '))}</span> <b>${escapeHtml(l.level.toUpperCase().padEnd(5))}</b> ${escapeHtml(l.message)}</span>`,
    )
    .join('\n');
  const more = logs.length > shown.length ? ` (the last ${shown.length} of ${logs.length})` : '';
  return `<details><summary>${int(logs.length)} line${logs.length === 1 ? '' : 's'}${more}</summary><pre class="log">${lines}</pre></details>`;
}

// ---- the page ------------------------------------------------------------------------------------------------

const STATUS_LABEL: Record<Run['status'], string> = {
  created: 'Created',
  running: 'Running',
  paused: 'Paused',
  stopped: 'Stopped',
  done: 'Done',
  failed: 'Failed',
  interrupted: 'Interrupted',
};

/** The colours of the studio's own light and dark themes. */
const CSS = `
:root{color-scheme:light dark;--bg:#f5f6fa;--surface:#fff;--border:#e2e5ee;--text:#1a1e29;--muted:#5f6778;--accent:#5048e5;--mark:rgba(80,72,229,.12);--grid:rgba(26,30,41,.08);--axis:#8a91a1;--ok:#137a43;--danger:#b42318;--warn:#a15c07;--c1:#5048e5;--c2:#e5484d;--c3:#0d9488;--c4:#d97706;--c5:#2563eb;--c6:#9333ea}
@media (prefers-color-scheme:dark){:root{--bg:#0e1016;--surface:#161922;--border:#292e3b;--text:#e7e9f0;--muted:#98a1b3;--accent:#8d88ff;--mark:rgba(141,136,255,.2);--grid:rgba(231,233,240,.08);--axis:#6b7385;--ok:#5ad08f;--danger:#ff8a80;--warn:#f5b454;--c1:#8d88ff;--c2:#ff7a7f;--c3:#2dd4bf;--c4:#fbbf24;--c5:#60a5fa;--c6:#c084fc}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--text);font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
main{max-width:1180px;margin:0 auto;padding:28px 24px 40px}
h1{font-size:26px;margin:0;overflow-wrap:anywhere}
h2{font-size:17px;margin:0 0 12px}
h3{font-size:14px;margin:16px 0 8px}
.title-row{display:flex;flex-wrap:wrap;align-items:center;gap:10px 14px}
.status{display:inline-block;padding:2px 10px;border-radius:999px;font-size:12px;font-weight:600;border:1px solid currentColor;color:var(--muted)}
.status-done,.status-running{color:var(--ok)}.status-failed{color:var(--danger)}.status-interrupted,.status-stopped,.status-paused{color:var(--warn)}
.muted{color:var(--muted)}
.sub{margin:6px 0 0;font-size:13px}
.notes{white-space:pre-wrap;margin:10px 0 0}
.error{margin:12px 0 0;padding:10px 12px;border:1px solid var(--danger);border-radius:8px;color:var(--danger)}
.card{background:var(--surface);border:1px solid var(--border);border-radius:12px;padding:16px 18px;margin-top:18px}
dl.facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:10px 18px;margin:0}
dl.facts div{min-width:0}
dt{font-size:11px;font-weight:600;letter-spacing:.04em;text-transform:uppercase;color:var(--muted)}
dd{margin:0;font-weight:600;font-variant-numeric:tabular-nums;overflow-wrap:anywhere}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:12.5px}
th,td{text-align:left;vertical-align:top;padding:6px 8px;border-top:1px solid var(--border)}
th{font-size:11px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);border-top:0}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(400px,100%),1fr));gap:14px}
.chart{margin:0;min-width:0}
figcaption{display:flex;flex-wrap:wrap;align-items:baseline;gap:4px 10px;margin-bottom:4px}
.chart-title{font-weight:650}.unit{font-size:12px;color:var(--muted)}
.legend{margin-left:auto;display:flex;gap:12px;font-size:12px;color:var(--muted)}
.key{display:inline-flex;align-items:center;gap:5px}
.swatch{display:inline-block;width:14px;height:3px;border-radius:2px;background:var(--c)}
.chart-svg{display:block;width:100%;height:auto}
.chart-svg .grid{stroke:var(--grid);stroke-width:1}
.chart-svg .axis{stroke:var(--axis);stroke-width:1}
.chart-svg text{fill:var(--muted);font-size:11px;font-variant-numeric:tabular-nums}
.chart-svg .empty{font-size:13px}
.chart-svg .line{fill:none;stroke:var(--c);stroke-width:2;stroke-linejoin:round;stroke-linecap:round}
.chart-svg .line.faint{stroke-width:1;opacity:.28}
.chart-svg .dot{fill:var(--c);stroke:var(--surface);stroke-width:1}
.c1{--c:var(--c1)}.c2{--c:var(--c2)}.c3{--c:var(--c3)}.c4{--c:var(--c4)}.c5{--c:var(--c5)}.c6{--c:var(--c6)}
.help{font-size:12px;margin:10px 0 0}
ol.samples{margin:0;padding-left:22px;display:grid;gap:8px}
.sample{white-space:pre-wrap;overflow-wrap:anywhere;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
mark{background:var(--mark);color:inherit;border-radius:3px}
.eot{display:inline-block;margin:0 4px;padding:0 5px;border:1px dashed var(--muted);border-radius:4px;font:11px system-ui,sans-serif;color:var(--muted)}
pre{margin:0;padding:12px;overflow:auto;background:var(--bg);border:1px solid var(--border);border-radius:8px;font:12px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
pre.log{max-height:520px;white-space:pre-wrap;overflow-wrap:anywhere}
.log-warn b{color:var(--warn)}.log-error b{color:var(--danger)}
summary{cursor:pointer;color:var(--muted);margin-bottom:8px}
footer{margin-top:22px;font-size:12px;color:var(--muted)}
@media print{body{background:#fff}.card{break-inside:avoid}pre.log{max-height:none}}
`;

/** The run's report as one HTML page, and the file name to save it as. */
export function runReport(input: ReportInput): RunReport {
  const { run, metrics, logs, samples } = input;
  const name = escapeHtml(run.name);
  const status = STATUS_LABEL[run.status];
  const facts = reportFacts(run, metrics)
    .map(([k, v]) => `<div><dt>${escapeHtml(k)}</dt><dd>${escapeHtml(v)}</dd></div>`)
    .join('');
  const error = run.error
    ? `<div class="error" role="alert"><strong>${escapeHtml(run.error.message)}</strong>${run.error.hint ? `<div>${escapeHtml(run.error.hint)}</div>` : ''}</div>`
    : '';
  const notes = run.notes ? `<p class="notes">${escapeHtml(run.notes)}</p>` : '';
  const charts = reportCharts(metrics).map(chartFigure).join('');
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<meta name="generator" content="GPT-2 Studio">
<title>${name} · GPT-2 Studio run report</title>
<style>${CSS}</style>
</head>
<body>
<main>
<header>
<p class="muted sub">GPT-2 Studio · run report</p>
<div class="title-row"><h1>${name}</h1><span class="status status-${escapeHtml(run.status)}" data-status="${escapeHtml(run.status)}">${escapeHtml(status)}</span></div>
<p class="muted sub"><code>${escapeHtml(run.id)}</code></p>
${notes}${error}
</header>
<section class="card" aria-labelledby="facts-title"><h2 id="facts-title">Facts</h2><dl class="facts">${facts}</dl>${attemptsTable(run.attempts)}</section>
<section class="card" aria-labelledby="curves-title"><h2 id="curves-title">Curves</h2><div class="charts">${charts}</div>
<p class="muted help">Train loss, gradient norm and throughput are smoothed (debiased exponential moving average, ${SMOOTHING}); the faint line is the raw value.</p></section>
<section class="card" aria-labelledby="samples-title"><h2 id="samples-title">Samples</h2>${samplesSection(samples)}</section>
<section class="card" aria-labelledby="config-title"><h2 id="config-title">Config</h2><pre class="config">${escapeHtml(JSON.stringify(run.config, null, 2))}</pre></section>
<section class="card" aria-labelledby="log-title"><h2 id="log-title">Log</h2>${logSection(logs)}</section>
<footer>Made ${escapeHtml(utc(input.generatedAt))} by GPT-2 Studio.</footer>
</main>
</body>
</html>
`;
  return { html, fileName: runFileName(run, 'report') };
}
