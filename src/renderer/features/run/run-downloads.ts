/**
 * The files a run is downloaded as from its page: the log as text, the metrics as CSV (the Compare page's long
 * format), the config as JSON, the samples as JSON Lines, and the report (made by the service as one HTML page).
 * The formatting is pure; `runDownload` loads what the service recorded and hands the file to the browser.
 */
import type { StudioClient } from '../../../shared/contract';
import { runFileName, type RunFileKind } from '../../../shared/run-files';
import { metricsCsv, type CsvRun } from '../compare/compare-data';
import { downloadBlob } from '../compare/download';

export interface LogRecord {
  time: number;
  level: string;
  message: string;
}

/**
 * One line per log record: its UTC time (ISO 8601), its level and its message. A line break inside a message is
 * written as the two characters "\n", so that each record stays one line.
 */
export function logText(records: readonly LogRecord[]): string {
  return records
    .map((r) => {
      const t = Number.isFinite(r.time) ? new Date(r.time).toISOString() : String(r.time);
      return `${t} ${r.level.toUpperCase().padEnd(5)} ${r.message.replace(/\r?\n/g, '\\n')}\n`;
    })
    .join('');
}

export interface SampleRecord {
  step: number;
  idx: number;
  prompt: string;
  text: string;
}

/** One JSON object per sample ({step, idx, prompt, text}), by step and then by its place among the step's samples. */
export function samplesJsonl(samples: readonly SampleRecord[]): string {
  return [...samples]
    .sort((a, b) => a.step - b.step || a.idx - b.idx)
    .map((s) => JSON.stringify({ step: s.step, idx: s.idx, prompt: s.prompt, text: s.text }) + '\n')
    .join('');
}

/** The run config as stored, indented. */
export function configJson(config: unknown): string {
  return JSON.stringify(config, null, 2) + '\n';
}

/** The run's metrics in the Compare page's CSV (run_id, run_name, metric, step, value, wall_time, tokens_seen). */
export function runMetricsCsv(run: { id: string; name: string }, metrics: CsvRun['metrics']): string {
  return metricsCsv([{ id: run.id, name: run.name, metrics }]);
}

/** What a download asks of the service. */
type Client = Pick<StudioClient, 'invoke'>;

/** The log's page size (runs-logs answers at most this many records a request unless asked for more). */
const LOG_PAGE = 1000;

/** Every log record of the run, a page at a time. */
export async function loadLog(client: Client, id: string): Promise<LogRecord[]> {
  const out: LogRecord[] = [];
  for (let after = 0; ;) {
    const page = await client.invoke('runs-logs', { id, afterSeq: after });
    out.push(...page);
    if (page.length < LOG_PAGE) return out;
    after = page[page.length - 1]!.seq;
  }
}

export const DOWNLOADS: readonly { kind: RunFileKind; label: string; detail: string }[] = [
  { kind: 'log', label: 'Log', detail: 'text, one line per record' },
  { kind: 'metrics', label: 'Metrics', detail: 'CSV, every metric' },
  { kind: 'config', label: 'Config', detail: 'JSON' },
  { kind: 'samples', label: 'Samples', detail: 'JSON Lines' },
  { kind: 'report', label: 'Report', detail: 'one HTML page to share' },
];

/** Loads what the service recorded of the run and downloads it as the file of `kind`. */
export async function runDownload(
  client: Client,
  run: { id: string; name: string; config: unknown },
  kind: RunFileKind,
): Promise<void> {
  const save = (text: string, type: string, name = runFileName(run, kind)) =>
    downloadBlob(new Blob([text], { type: `${type};charset=utf-8` }), name);
  switch (kind) {
    case 'log':
      save(logText(await loadLog(client, run.id)), 'text/plain');
      return;
    case 'metrics':
      save(runMetricsCsv(run, await client.invoke('runs-metrics', { id: run.id })), 'text/csv');
      return;
    case 'config':
      save(configJson(run.config), 'application/json');
      return;
    case 'samples':
      save(samplesJsonl(await client.invoke('runs-samples', { id: run.id })), 'application/x-ndjson');
      return;
    case 'report': {
      const r = await client.invoke('runs-report', { id: run.id });
      save(r.html, 'text/html', r.fileName);
      return;
    }
  }
}
