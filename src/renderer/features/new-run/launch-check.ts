/**
 * The plan of the New run page's config (one place for the planner panel and the action bar), and what it says
 * about starting it: a run that will take long asks for a confirmation before it is created.
 */
import { planRun, planShape, timingKey, type RunPlan, type TimingSource } from '../../../shared/planner';
import type { RunConfig } from '../../../shared/run-config';
import type { CalibrationState, TrainedShapeState } from './useThroughputs';

/** A run expected to take longer than this (seconds) is started only once the user confirms it. */
export const LONG_RUN_SECONDS = 10 * 60;

/**
 * FLOP/s that one device sustains in training at best: a current data-centre GPU in bf16 at a high utilisation, and
 * a many-core CPU in fp32. Without any timing of the config, total compute over this gives a time the run cannot
 * beat: when even that is long, the run is long.
 */
export const FASTEST_GPU_FLOPS = 4e14;
export const FASTEST_CPU_FLOPS = 2e12;

/** The plan of a valid config: its shape (the init weights' when known), and its time from the best timing known. */
export function planOf(
  config: RunConfig,
  trained: TrainedShapeState,
  calibration: CalibrationState,
  runTimings: Record<string, TimingSource>,
): RunPlan {
  const shape = trained.value?.shape ?? planShape(config);
  const cal = calibration.status === 'done' ? calibration.calibration : undefined;
  const timing: TimingSource | undefined = cal
    ? {
        kind: 'calibration',
        timing: cal,
        measuredAt: cal.measuredAt,
        runningRuns: cal.runningRuns,
        microSteps: cal.microSteps,
      }
    : runTimings[timingKey(shape, config)];
  return planRun(config, { shape, timing });
}

/** How long a run should take, and how that is known. */
export interface RunDuration {
  seconds: number;
  /**
   * measured: a calibration of this config's step on this machine, or a finished run of the same shape;
   * engine: this engine's speed on another shape, scaled by FLOPs; bound: the least it can take (no timing known)
   */
  basis: 'measured' | 'engine' | 'bound';
}

/**
 * The run's expected duration: the plan's time when a timing is known, else the micro-step estimated from the
 * engine's speed (steps only), else the least time its compute can take on the fastest hardware of its kind.
 */
export function runDuration(
  plan: RunPlan,
  config: RunConfig,
  { estimateMs, onGpu }: { estimateMs?: number; onGpu: boolean },
): RunDuration {
  if (plan.seconds !== undefined) return { seconds: plan.seconds, basis: 'measured' };
  if (estimateMs !== undefined && estimateMs > 0)
    return { seconds: (estimateMs * plan.gradAccumSteps * plan.steps) / 1000, basis: 'engine' };
  const rate = (onGpu ? FASTEST_GPU_FLOPS : FASTEST_CPU_FLOPS) * Math.max(1, config.world_size);
  return { seconds: plan.totalFlops / rate, basis: 'bound' };
}

/** Why starting the run asks first: its duration when it passes LONG_RUN_SECONDS; null when it starts at once. */
export function longRun(d: RunDuration): RunDuration | null {
  return d.seconds > LONG_RUN_SECONDS ? d : null;
}

/** Whether a run of this engine trains on a GPU here: native-cuda, or auto where native-cuda is available. */
export function trainsOnGpu(engine: string, engines: readonly { name: string; available: boolean }[]): boolean {
  if (engine === 'native-cuda') return true;
  return engine === 'auto' && engines.some((e) => e.name === 'native-cuda' && e.available);
}
