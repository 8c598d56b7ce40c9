/**
 * The metric series of the selected runs, loaded once per run and kept live: step and eval events of a selected
 * run are appended (those that arrive while it loads are replayed on top), and a run that starts again (a resume
 * rewinds it to its checkpoint) is loaded again. Runs leaving the selection are forgotten.
 */
import { useCallback, useEffect, useRef, useState } from 'react';
import type { StudioEvents } from '../../../shared/contract';
import { useClient } from '../../useInvoke';
import { appendPoint, emptySeries, fromMetricSeries, truncateFrom, type Series } from '../../components/chart/series';
import { CHART_METRICS } from './compare-data';

export interface RunSeriesState {
  status: 'loading' | 'ok' | 'error';
  /** metric name -> series; mutated in place, `version` says when */
  series: Record<string, Series>;
  error?: unknown;
}

type RunEvent = { kind: 'step'; p: StudioEvents['run-step'] } | { kind: 'eval'; p: StudioEvents['run-eval'] };

interface Entry extends RunSeriesState {
  buffer: RunEvent[];
}

const CHARTED = new Set<string>(CHART_METRICS);

function apply(e: RunEvent, s: Record<string, Series>): void {
  const now = Date.now() / 1000;
  if (e.kind === 'step') {
    const p = e.p;
    const values: Record<string, number | undefined> = {
      'train/loss': p.loss,
      'train/lr': p.lr,
      'train/norm': p.norm,
      'train/tok_per_sec': p.tokensPerSec,
    };
    // a step at or before what we have: the run was resumed; the evals after it are stale too
    for (const [name, ser] of Object.entries(s)) if (!name.startsWith('train/')) truncateFrom(ser, p.step + 1);
    for (const [name, v] of Object.entries(values))
      if (v !== undefined) appendPoint((s[name] ??= emptySeries()), p.step, v, now, p.tokensSeen);
  } else if (CHARTED.has(e.p.name)) {
    const tokens = s['train/loss']?.tokens.at(-1) ?? 0;
    appendPoint((s[e.p.name] ??= emptySeries()), e.p.step, e.p.value, now, tokens);
  }
}

export function useCompareData(ids: readonly string[]): {
  runs: Record<string, RunSeriesState>;
  version: number;
  reload: (id: string) => void;
} {
  const client = useClient();
  const entries = useRef(new Map<string, Entry>());
  const [version, setVersion] = useState(0);
  const [generation, setGeneration] = useState(0);
  const frame = useRef(0);
  const idsKey = ids.join(',');

  // one redraw per animation frame, however many events arrive
  const bump = useCallback(() => {
    if (frame.current) return;
    frame.current = requestAnimationFrame(() => {
      frame.current = 0;
      setVersion((v) => v + 1);
    });
  }, []);
  useEffect(() => () => cancelAnimationFrame(frame.current), []);

  useEffect(() => {
    const map = entries.current;
    const wanted = new Set(idsKey ? idsKey.split(',') : []);
    let changed = false;
    for (const id of [...map.keys()]) {
      if (!wanted.has(id)) {
        map.delete(id);
        changed = true;
      }
    }
    for (const id of wanted) {
      if (map.has(id)) continue;
      const entry: Entry = { status: 'loading', series: {}, buffer: [] };
      map.set(id, entry);
      changed = true;
      client.invoke('runs-metrics', { id, names: CHART_METRICS }).then(
        (metrics) => {
          if (map.get(id) !== entry) return; // deselected or reloaded meanwhile
          for (const [name, m] of Object.entries(metrics)) entry.series[name] = fromMetricSeries(m);
          for (const e of entry.buffer) apply(e, entry.series);
          entry.buffer = [];
          entry.status = 'ok';
          bump();
        },
        (error: unknown) => {
          if (map.get(id) !== entry) return;
          entry.status = 'error';
          entry.error = error;
          entry.buffer = [];
          bump();
        },
      );
    }
    if (changed) bump();
  }, [client, idsKey, generation, bump]);

  useEffect(() => {
    const on = (id: string, e: RunEvent) => {
      const entry = entries.current.get(id);
      if (!entry) return;
      if (entry.status === 'loading') entry.buffer.push(e);
      else if (entry.status === 'ok') {
        apply(e, entry.series);
        bump();
      }
    };
    const subs = [
      client.on('run-step', (p) => on(p.runId, { kind: 'step', p })),
      client.on('run-eval', (p) => on(p.runId, { kind: 'eval', p })),
      client.on('run-status', (p) => {
        // a (re)start: the service rewound the run to its last checkpoint; load it again
        if (p.status === 'running' && entries.current.has(p.runId)) {
          entries.current.delete(p.runId);
          setGeneration((g) => g + 1);
        }
      }),
    ];
    return () => {
      for (const off of subs) off();
    };
  }, [client, bump]);

  const reload = useCallback((id: string) => {
    entries.current.delete(id);
    setGeneration((g) => g + 1);
  }, []);

  const runs: Record<string, RunSeriesState> = {};
  for (const [id, e] of entries.current) runs[id] = { status: e.status, series: e.series, error: e.error };
  return { runs, version, reload };
}
