/**
 * What the New run page's plan needs from the service: the shape a run trains (its init weights' when it does
 * not start from scratch), a calibration of its step on this machine, and, as a fallback, the timing of the
 * newest finished run of the same shape, micro-batch and engine.
 */
import { useCallback, useEffect, useRef, useState } from 'react';
import { EVENT_KINDS, EVENT_METRICS, timingFromRun, type Calibration, type EventKind } from '../../../shared/estimate';
import {
  flopsPerToken,
  paramCount,
  planShape,
  timingKey,
  type PlanShape,
  type TimingSource,
  type TrainedShape,
} from '../../../shared/planner';
import { checkRunConfig, type RunConfig } from '../../../shared/run-config';
import { useClient, useRequest } from '../../useInvoke';
import { fromMetricSeries } from '../../components/chart/series';

/**
 * The timing of this machine per (shape, micro-batch, engine) (timingKey): learned from the newest finished
 * (done) run of each, from its median step time and what its evaluations, samples and checkpoints took.
 */
export function useRunTimings(): Record<string, TimingSource> {
  const client = useClient();
  const [map, setMap] = useState<Record<string, TimingSource>>({});
  useEffect(() => {
    let live = true;
    (async () => {
      const done = await client.invoke('runs-list', { status: 'done', limit: 200 });
      const seen = new Set<string>();
      done.sort((a, b) => (b.endedAt ?? 0) - (a.endedAt ?? 0));
      for (const run of done) {
        const r = checkRunConfig(run.config);
        if (!r.ok) continue;
        const c = r.config;
        // a fine-tune's shape is its weights'; the service records it in the model fields (else it is unknown here)
        if (c.init_from !== 'scratch' && c.model.n_layer === undefined) continue;
        const shape = planShape(c);
        const key = timingKey(shape, c);
        if (seen.has(key)) continue;
        const eventNames = EVENT_KINDS.map((k) => EVENT_METRICS[k]).filter((n): n is string => n !== undefined);
        const m = await client.invoke('runs-metrics', { id: run.id, names: ['train/dt_ms', ...eventNames] });
        const dt = m['train/dt_ms'];
        if (!dt) continue;
        const series = fromMetricSeries(dt);
        const eventMs: Partial<Record<EventKind, number[]>> = {};
        for (const k of EVENT_KINDS) {
          const name = EVENT_METRICS[k];
          const e = name ? m[name] : undefined;
          if (e) eventMs[k] = fromMetricSeries(e).values;
        }
        const timing = timingFromRun(
          c,
          c.engine,
          {
            stepsDone: run.stepsDone,
            series: { steps: series.steps, dtMs: series.values, wallSec: series.wall },
            eventMs,
            startedAtSec: run.startedAt ? run.startedAt / 1000 : undefined,
          },
          { params: paramCount(shape) },
        );
        if (!timing) continue;
        seen.add(key);
        if (live) setMap((x) => ({ ...x, [key]: { kind: 'run', timing, runId: run.id, runName: run.name } }));
      }
    })().catch(() => undefined);
    return () => {
      live = false;
    };
  }, [client]);
  return map;
}

export interface TrainedShapeState {
  /** the shape read from the init weights or checkpoint; undefined for a run from scratch, or while reading */
  value?: TrainedShape;
  error?: unknown;
  loading: boolean;
}

/** Resolves after `ms`, or rejects when `signal` aborts first. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = window.setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      window.clearTimeout(t);
      reject(signal.reason);
    });
  });
}

/** The shape a config trains, asked of the service (runs-shape) when it starts from weights or a checkpoint. */
export function useTrainedShape(config: RunConfig | null): TrainedShapeState {
  const client = useClient();
  const fromInit = config !== null && config.init_from !== 'scratch' && !!config.init_path;
  const key = fromInit
    ? JSON.stringify([config.init_from, config.init_path, config.model.vocab_size, config.model.padded_vocab_size])
    : undefined;
  const configRef = useRef(config);
  configRef.current = config;
  const { state } = useRequest(
    async (signal): Promise<{ key: string; value?: TrainedShape; error?: unknown } | null> => {
      if (!key) return null;
      // asked once typing has paused
      await pause(250, signal);
      try {
        return { key, value: await client.invoke('runs-shape', { config: configRef.current }) };
      } catch (error) {
        return { key, error };
      }
    },
    [client, key],
  );
  // what was read for another config (until this one's load starts) does not count
  const read = state.data;
  if (!key || !read || read.key !== key) return { loading: !!key };
  return { value: read.value, error: read.error, loading: false };
}

/** A micro-step calibrated on its own when it takes at most this long (estimated). */
const AUTO_MEASURE_MS = 1500;
/** Without any calibration to go by: a micro-step of at most this many FLOPs counts as quick. */
const AUTO_MEASURE_FLOPS = 1e11;
/** FLOPs per ms of each engine, from this session's calibrations (to tell a quick micro-step from a slow one). */
const engineRates = new Map<string, number>();

export interface CalibrationState {
  status: 'idle' | 'checking' | 'measuring' | 'done' | 'error';
  calibration?: Calibration;
  error?: unknown;
  /** the micro-step's estimated time (ms) when the engine's speed is known from an earlier calibration */
  estimateMs?: number;
  /** why it was not measured on its own: 'slow' (a large micro-step) or 'busy' (runs are training) */
  waiting?: 'slow' | 'busy';
  /** measures now (the Measure button) */
  measure: () => void;
}

/**
 * The calibration of a config's step on this machine (runs-calibrate): the service's cached one, else a new
 * measurement, started on its own (debounced) when the micro-step is quick and no run is training, or by
 * `measure()`.
 */
export function useCalibration(config: RunConfig | null, shape: PlanShape | undefined): CalibrationState {
  const client = useClient();
  const key = config && shape ? `${timingKey(shape, config)}|${config.precision}` : undefined;
  const [state, setState] = useState<Omit<CalibrationState, 'measure'> & { key?: string }>({ status: 'idle' });
  const configRef = useRef(config);
  configRef.current = config;
  const microFlops = config && shape ? flopsPerToken(shape, config.seq_len) * config.batch_size * config.seq_len : 0;
  const engine = config?.engine ?? 'auto';

  const run = useCallback(
    (k: string) => {
      setState({ status: 'measuring', key: k });
      client.invoke('runs-calibrate', { config: configRef.current, measure: true }).then(
        (c) => {
          if (c)
            engineRates.set(c.requestedEngine, microFlops / c.microStepMs).set(c.engine, microFlops / c.microStepMs);
          setState((s) =>
            s.key === k ? (c ? { status: 'done', calibration: c, key: k } : { status: 'idle', key: k }) : s,
          );
        },
        (error: unknown) => setState((s) => (s.key === k ? { status: 'error', error, key: k } : s)),
      );
    },
    [client, microFlops],
  );

  useEffect(() => {
    if (!key) return;
    let live = true;
    setState({ status: 'checking', key });
    const t = window.setTimeout(() => {
      (async () => {
        const cached = await client.invoke('runs-calibrate', { config: configRef.current, measure: false });
        if (!live) return;
        if (cached) {
          setState({ status: 'done', calibration: cached, key });
          return;
        }
        const rate = engineRates.get(engine);
        const estimateMs = rate ? microFlops / rate : undefined;
        const quick = estimateMs !== undefined ? estimateMs <= AUTO_MEASURE_MS : microFlops <= AUTO_MEASURE_FLOPS;
        if (!quick) {
          setState({ status: 'idle', waiting: 'slow', estimateMs, key });
          return;
        }
        // a run that is training would slow the measurement down, and be slowed by it
        const running = await client.invoke('runs-list', { status: 'running', limit: 1 });
        if (!live) return;
        if (running.length) setState({ status: 'idle', waiting: 'busy', estimateMs, key });
        else run(key);
      })().catch((error: unknown) => live && setState({ status: 'error', error, key }));
    }, 600);
    return () => {
      live = false;
      window.clearTimeout(t);
    };
  }, [client, key, engine, microFlops, run]);

  const measure = useCallback(() => {
    if (key) run(key);
  }, [key, run]);
  if (!key || state.key !== key) return { status: key ? 'checking' : 'idle', measure };
  return { ...state, measure };
}
