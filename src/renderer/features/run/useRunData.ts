/**
 * Everything the run page shows about one run, kept live: the run (its nodes too, for a multi-node run), its metric
 * series, its log and its samples.
 * It subscribes to the run's events first and then loads what the service has recorded; events that arrive
 * while loading are replayed on top, so nothing is missed or doubled. When the run starts again (resume), the
 * service forgets what was recorded after the checkpoint, so the page loads the series again.
 */
import { useCallback, useEffect, useRef, useState } from 'react';
import type { StudioEvents } from '../../../shared/contract';
import { StudioError } from '../../../shared/errors';
import type { Run } from '../../run-info';
import { useClient } from '../../useInvoke';
import { appendPoint, emptySeries, fromMetricSeries, truncateFrom, type Series } from '../../components/chart/series';

export type LogLine = StudioEvents['run-log'];
export interface SampleGroup {
  step: number;
  prompt: string;
  samples: string[];
}

/** Metric names of a run-step event. */
export const STEP_METRICS = [
  'train/loss',
  'train/lr',
  'train/norm',
  'train/tok_per_sec',
  'train/dt_ms',
  'train/mfu',
] as const;

const MAX_LOG_LINES = 2000;
const LOG_PAGE = 1000;

type RunEvent =
  | { kind: 'step'; p: StudioEvents['run-step'] }
  | { kind: 'eval'; p: StudioEvents['run-eval'] }
  | { kind: 'guard'; p: StudioEvents['run-guard'] }
  | { kind: 'system'; p: StudioEvents['run-system'] }
  | { kind: 'nodes'; p: StudioEvents['run-nodes'] }
  | { kind: 'log'; p: StudioEvents['run-log'] }
  | { kind: 'sample'; p: StudioEvents['run-sample'] };

export interface RunData {
  run: Run | null;
  error: unknown;
  deleted: boolean;
  /** metric name -> series; mutated in place, `version` says when */
  series: Record<string, Series>;
  version: number;
  logs: LogLine[];
  samples: SampleGroup[];
  /** the last step event's extra fields */
  live: { skipped: number; mfu?: number; dtMs?: number; receivedAt?: number };
  reload: () => void;
  /** replaces the run after an action (stop, pause, resume) answered */
  setRun: (r: Run) => void;
}

function groupSamples(rows: { step: number; idx: number; prompt: string; text: string }[]): SampleGroup[] {
  const byStep = new Map<number, SampleGroup>();
  for (const r of rows) {
    let g = byStep.get(r.step);
    if (!g) byStep.set(r.step, (g = { step: r.step, prompt: r.prompt, samples: [] }));
    g.samples[r.idx] = r.text;
  }
  return [...byStep.values()]
    .sort((a, b) => b.step - a.step)
    .map((g) => ({ ...g, samples: g.samples.filter((s) => s !== undefined) }));
}

export function useRunData(runId: string): RunData {
  const client = useClient();
  const [run, setRun] = useState<Run | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [deleted, setDeleted] = useState(false);
  const [version, setVersion] = useState(0);
  const [logs, setLogs] = useState<LogLine[]>([]);
  const [samples, setSamples] = useState<SampleGroup[]>([]);
  const [live, setLive] = useState<RunData['live']>({ skipped: 0 });
  const [generation, setGeneration] = useState(0);

  const series = useRef<Record<string, Series>>({});
  const loading = useRef(true);
  const buffer = useRef<RunEvent[]>([]);
  const lastLogSeq = useRef(0);
  const frame = useRef(0);

  // Coalesce redraws to one per animation frame, however many events arrive.
  const bump = useCallback(() => {
    if (frame.current) return;
    frame.current = requestAnimationFrame(() => {
      frame.current = 0;
      setVersion((v) => v + 1);
    });
  }, []);
  useEffect(() => () => cancelAnimationFrame(frame.current), []);

  const apply = useCallback(
    (e: RunEvent) => {
      const now = Date.now() / 1000;
      const s = series.current;
      if (e.kind === 'step') {
        const p = e.p;
        const values: Record<string, number | undefined> = {
          'train/loss': p.loss,
          'train/lr': p.lr,
          'train/norm': p.norm,
          'train/tok_per_sec': p.tokensPerSec,
          'train/dt_ms': p.dtMs,
          'train/mfu': p.mfu,
        };
        // a step at or before what we have: the run was resumed from a checkpoint; later evals are stale too
        for (const [name, ser] of Object.entries(s)) if (!name.startsWith('train/')) truncateFrom(ser, p.step + 1);
        for (const [name, v] of Object.entries(values)) {
          if (v === undefined) continue;
          const ser = (s[name] ??= emptySeries());
          // steps that arrive together (a burst after the page or the stream was busy) still get distinct, rising
          // wall times: equal x values would be merged into one point on the wall-time axis
          const last = ser.wall.length ? ser.wall[ser.wall.length - 1]! : -Infinity;
          appendPoint(ser, p.step, v, Math.max(now, last + 1e-3), p.tokensSeen);
        }
        setRun((r) => (r ? { ...r, stepsDone: p.step + 1, tokensSeen: p.tokensSeen } : r));
        setLive((l) => ({
          skipped: l.skipped + (p.skipped ? 1 : 0),
          mfu: p.mfu,
          dtMs: p.dtMs,
          receivedAt: Date.now(),
        }));
        bump();
      } else if (e.kind === 'eval') {
        const p = e.p;
        const tokens = s['train/loss']?.tokens.at(-1) ?? 0;
        appendPoint((s[p.name] ??= emptySeries()), p.step, p.value, now, tokens);
        if (p.name === 'val/loss' && Number.isFinite(p.value)) {
          setRun((r) =>
            r ? { ...r, bestValLoss: r.bestValLoss === null ? p.value : Math.min(r.bestValLoss, p.value) } : r,
          );
        }
        bump();
      } else if (e.kind === 'guard') {
        // stored as the metric guard/<action> (a rollback's value is the step it went back to), as the service records it
        const p = e.p;
        const tokens = s['train/loss']?.tokens.at(-1) ?? 0;
        appendPoint((s[`guard/${p.action}`] ??= emptySeries()), p.step, p.toStep ?? 1, now, tokens);
        bump();
      } else if (e.kind === 'system') {
        // CPU, memory, disk and GPUs, sampled by the worker every few seconds (the System charts)
        const p = e.p;
        const tokens = s['train/loss']?.tokens.at(-1) ?? 0;
        for (const [name, v] of Object.entries(p.values))
          appendPoint((s[name] ??= emptySeries()), p.step, v, p.time / 1000, tokens);
        bump();
      } else if (e.kind === 'nodes') {
        // a multi-node run's hosts, every one of them, as node 0's service recorded them
        const nodes = e.p.nodes;
        setRun((r) => (r ? { ...r, nodes } : r));
      } else if (e.kind === 'log') {
        if (e.p.seq <= lastLogSeq.current) return;
        lastLogSeq.current = e.p.seq;
        setLogs((l) => {
          const next = l.length >= MAX_LOG_LINES ? l.slice(l.length - MAX_LOG_LINES + 1) : l.slice();
          next.push(e.p);
          return next;
        });
      } else {
        const p = e.p;
        setSamples((g) => [
          { step: p.step, prompt: p.prompt, samples: p.samples },
          ...g.filter((x) => x.step !== p.step),
        ]);
      }
    },
    [bump],
  );

  const onEvent = useCallback(
    (e: RunEvent) => {
      if (loading.current) buffer.current.push(e);
      else apply(e);
    },
    [apply],
  );

  // Subscribe first, then load; replay what arrived meanwhile.
  useEffect(() => {
    let live = true;
    loading.current = true;
    buffer.current = [];
    const subs = [
      client.on('run-step', (p) => p.runId === runId && onEvent({ kind: 'step', p })),
      client.on('run-eval', (p) => p.runId === runId && onEvent({ kind: 'eval', p })),
      client.on('run-guard', (p) => p.runId === runId && onEvent({ kind: 'guard', p })),
      client.on('run-system', (p) => p.runId === runId && onEvent({ kind: 'system', p })),
      client.on('run-nodes', (p) => p.runId === runId && onEvent({ kind: 'nodes', p })),
      client.on('run-log', (p) => p.runId === runId && onEvent({ kind: 'log', p })),
      client.on('run-sample', (p) => p.runId === runId && onEvent({ kind: 'sample', p })),
    ];
    void (async () => {
      try {
        const [r, metrics, sampleRows] = await Promise.all([
          client.invoke('runs-get', { id: runId }),
          client.invoke('runs-metrics', { id: runId }),
          client.invoke('runs-samples', { id: runId }),
        ]);
        const lines: LogLine[] = [];
        let after = 0;
        for (let page = 0; page < 100; page++) {
          const batch = await client.invoke('runs-logs', { id: runId, afterSeq: after });
          for (const l of batch) lines.push({ runId, seq: l.seq, level: l.level, message: l.message, time: l.time });
          if (batch.length < LOG_PAGE) break;
          after = batch[batch.length - 1]!.seq;
        }
        if (!live) return;
        const next: Record<string, Series> = {};
        for (const [name, m] of Object.entries(metrics)) next[name] = fromMetricSeries(m);
        series.current = next;
        setRun(r);
        setError(null);
        setLogs(lines.slice(-MAX_LOG_LINES));
        lastLogSeq.current = lines.at(-1)?.seq ?? 0;
        setSamples(groupSamples(sampleRows));
        loading.current = false;
        for (const e of buffer.current) apply(e);
        buffer.current = [];
        setVersion((v) => v + 1);
      } catch (e) {
        if (!live) return;
        loading.current = false;
        buffer.current = [];
        if (e instanceof StudioError && e.code === 'NOT_FOUND') setDeleted(true);
        setError(e);
      }
    })();
    return () => {
      live = false;
      for (const off of subs) off();
    };
  }, [client, runId, generation, onEvent, apply]);

  const reload = useCallback(() => setGeneration((g) => g + 1), []);

  useEffect(
    () =>
      client.on('run-status', (p) => {
        if (p.runId !== runId) return;
        setRun((r) =>
          r ? { ...r, status: p.status, error: p.error ?? (p.status === 'running' ? null : r.error) } : r,
        );
        if (p.status === 'running') {
          // a (re)start: the service rewound the run to its last checkpoint; load it again
          reload();
        } else {
          client.invoke('runs-get', { id: runId }).then(
            (r) => setRun(r),
            () => undefined,
          );
        }
      }),
    [client, runId, reload],
  );
  useEffect(
    () =>
      client.on('run-checkpoint', (p) => {
        if (p.runId === runId) setRun((r) => (r ? { ...r, lastCheckpointStep: p.step } : r));
      }),
    [client, runId],
  );
  useEffect(
    () =>
      client.on('run-deleted', (p) => {
        if (p.runId === runId) setDeleted(true);
      }),
    [client, runId],
  );

  return { run, error, deleted, series: series.current, version, logs, samples, live, reload, setRun };
}
