/**
 * Planning a run before it starts: the model shape it actually trains (from its init weights or checkpoint when
 * it does not start from scratch), and a calibration, a real timed training step of that shape and micro-batch
 * on the engine it will run on (see calibrate-worker.ts), from which the New run page says how long the run
 * takes. Calibrations run one at a time, each in a child process, and are kept per (shape, B, T, engine,
 * precision) for the life of the service.
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ErrorCode, StudioError, type PlainError } from '../../shared/errors';
import type { Calibration } from '../../shared/estimate';
import { paramCount, planShape, shapeKey, type PlanShape, type TrainedShape } from '../../shared/planner';
import { checkRunConfig, resolveModelShape, type RunConfig } from '../../shared/run-config';
import { readCheckpointState } from '../checkpoints/files';
import { loadGpt2Weights } from '../models/weights';
import { initPathOf } from '../train/paths';

// ---- the shape a run trains ---------------------------------------------------------------------------------

/** The model shape a validated run config trains: the config's, or its init weights' or checkpoint's. */
export function trainedShape(home: string, c: RunConfig): TrainedShape {
  if (c.init_from === 'scratch' || !c.init_path) {
    const shape = planShape(c);
    return { shape, params: paramCount(shape), source: 'config' };
  }
  const p = initPathOf(home, c.init_path);
  let shape: PlanShape;
  if (c.init_from === 'checkpoint') {
    const mc = readCheckpointState(p).modelConfig;
    shape = {
      nLayer: mc.nLayer,
      nHead: mc.nHead,
      nEmbd: mc.nEmbd,
      blockSize: mc.blockSize,
      vocabSize: mc.vocabSize,
      paddedVocabSize: mc.paddedVocabSize,
    };
  } else {
    // as the training worker loads them (the run's padded vocabulary), from the header alone: no tensor data
    const mc = loadGpt2Weights(p, {
      paddedVocabSize: resolveModelShape(c.model).padded_vocab_size,
      headerOnly: true,
    }).config;
    shape = {
      nLayer: mc.nLayer,
      nHead: mc.nHead,
      nEmbd: mc.nEmbd,
      blockSize: mc.blockSize,
      vocabSize: mc.vocabSize,
      paddedVocabSize: mc.paddedVocabSize,
    };
  }
  return { shape, params: paramCount(shape), source: c.init_from, path: p };
}

/** A run config as a request gives it, validated (the schema only: a missing dataset does not stop a plan). */
export function planConfig(input: unknown): RunConfig {
  const r = checkRunConfig(input);
  if (!r.ok) {
    throw new StudioError(
      ErrorCode.BAD_CONFIG,
      `The run config is not valid: ${r.errors.map((e) => `${e.field}: ${e.message}`).join('; ')}.`,
      'Fix the named fields first.',
    );
  }
  return r.config;
}

// ---- calibration ----------------------------------------------------------------------------------------------

/** The parent's request to a calibration child. */
export interface CalibrateRequest {
  type: 'calibrate';
  home: string;
  config: RunConfig;
  /** the model to build (makeConfig's fields) */
  model: {
    nLayer: number;
    nHead: number;
    nEmbd: number;
    blockSize: number;
    vocabSize: number;
    paddedVocabSize: number;
  };
  /** timed micro-steps after the warm-up one */
  microSteps: number;
}

/** What the child measures (the parent adds the start-up time and where it came from). */
export type CalibrateMeasured = Pick<
  Calibration,
  | 'engine'
  | 'engineDetail'
  | 'microStepMs'
  | 'updateMs'
  | 'firstStepExtraMs'
  | 'evalIterMs'
  | 'sample'
  | 'checkpointMs'
  | 'snapshotMs'
  | 'hellaswag'
  | 'microSteps'
>;

export type CalibrateReply =
  | { type: 'built'; engine: string; engineDetail: string }
  | { type: 'result'; result: CalibrateMeasured }
  | { type: 'error'; error: PlainError };

/** A started calibration child, as the service sees it. */
export interface CalibrateChild {
  send(m: CalibrateRequest): void;
  onMessage(cb: (m: CalibrateReply) => void): void;
  onExit(cb: (code: number | null, signal: string | null) => void): void;
  kill(): void;
}

/** The child's entry from the sources (the built app passes its bundle, out/main/calibrate-worker.mjs). */
export const CALIBRATE_WORKER_ENTRY = fileURLToPath(new URL('./calibrate-entry.mjs', import.meta.url));

/** child_process.fork of the entry (under Electron, fork runs the child as Node). */
export function forkCalibrateChild(entry: string = CALIBRATE_WORKER_ENTRY): CalibrateChild {
  const child = fork(entry, [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], execArgv: [] });
  return {
    send: (m) => {
      if (child.connected) child.send(m);
    },
    onMessage: (cb) => child.on('message', (m) => cb(m as CalibrateReply)),
    onExit: (cb) => child.on('exit', (code, signal) => cb(code, signal)),
    kill: () => {
      child.kill('SIGKILL');
    },
  };
}

/** Timed micro-steps after the warm-up. */
const MICRO_STEPS = 3;
/** A calibration that takes longer than this is stopped: the step is too slow to measure on the spot. */
const CALIBRATE_TIMEOUT_MS = 10 * 60_000;

export class CalibrationService {
  private readonly cache = new Map<string, Calibration>();
  private readonly inflight = new Map<string, Promise<Calibration>>();
  private queue: Promise<unknown> = Promise.resolve();
  private readonly children = new Set<CalibrateChild>();
  /** set by close(): a child that ends after it was stopped, not because it failed */
  private closing = false;

  constructor(
    private readonly home: string,
    /** runs training now: they share the machine with a calibration */
    private readonly runningRuns: () => number,
    private readonly spawn: () => CalibrateChild = forkCalibrateChild,
  ) {}

  /** The cache key of a config: its trained shape, micro-batch, engine and precision. */
  static key(
    shape: PlanShape,
    c: Pick<RunConfig, 'batch_size' | 'seq_len' | 'engine' | 'precision'>,
    engine: string = c.engine,
  ): string {
    return `${shapeKey(shape)}|${c.batch_size}x${c.seq_len}|${engine}|${c.precision}`;
  }

  /**
   * The calibration of a config: the cached one, else (with `measure`) a new one; null when none is cached and
   * `measure` is not set. Identical requests share one measurement.
   */
  async calibrate(input: unknown, measure = false): Promise<Calibration | null> {
    const c = planConfig(input);
    const trained = trainedShape(this.home, c);
    const key = CalibrationService.key(trained.shape, c);
    const hit = this.cache.get(key);
    if (hit || !measure) return hit ?? null;
    let p = this.inflight.get(key);
    if (!p) {
      // one at a time: two calibrations side by side would each measure half the machine
      p = this.queue.then(() => this.run(c, trained.shape));
      this.queue = p.catch(() => undefined);
      this.inflight.set(key, p);
      p.then(
        (r) => {
          this.cache.set(key, r);
          // "auto" and the engine it resolved to are the same measurement
          this.cache.set(CalibrationService.key(trained.shape, c, r.engine), r);
        },
        () => undefined,
      ).finally(() => this.inflight.delete(key));
    }
    return p;
  }

  private run(c: RunConfig, shape: PlanShape): Promise<Calibration> {
    const running = this.runningRuns();
    const t0 = performance.now();
    let startupMs: number | undefined;
    const child = this.spawn();
    this.children.add(child);
    const what = `${c.batch_size} x ${c.seq_len} micro-step of a ${shape.nLayer}-layer, ${shape.nEmbd}-wide model on engine ${c.engine}`;
    return new Promise<Calibration>((resolve, reject) => {
      let settled = false;
      const done = (err: StudioError | null, r?: Calibration) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.children.delete(child);
        if (err) {
          child.kill();
          reject(err);
        } else resolve(r!);
      };
      const timer = setTimeout(() => {
        done(
          new StudioError(
            ErrorCode.INTERNAL,
            `Timing a ${what} took longer than ${CALIBRATE_TIMEOUT_MS / 60_000} min, so it was stopped.`,
            'The run will be slow on this machine: lower batch_size, or start it and read its ETA once it has taken a few steps.',
          ),
        );
      }, CALIBRATE_TIMEOUT_MS);
      timer.unref?.();
      child.onMessage((m) => {
        if (m.type === 'built') startupMs = performance.now() - t0;
        else if (m.type === 'error') done(StudioError.fromPlain(m.error));
        else if (m.type === 'result') {
          const r = m.result;
          done(null, {
            ...r,
            batchSize: c.batch_size,
            seqLen: c.seq_len,
            startupMs,
            tokensPerSec: (c.batch_size * c.seq_len) / (r.microStepMs / 1000),
            msPerMicroStep: r.microStepMs,
            requestedEngine: c.engine,
            shapeKey: shapeKey(shape),
            measuredAt: Date.now(),
            runningRuns: running,
          });
        }
      });
      child.onExit((code, signal) => {
        if (this.closing) {
          done(
            new StudioError(ErrorCode.CANCELLED, `The calibration for a ${what} was stopped: the studio is closing.`),
          );
          return;
        }
        done(
          new StudioError(
            ErrorCode.INTERNAL,
            `The calibration process for a ${what} ended (${signal ? `killed by ${signal}` : `exit code ${code}`}) before it answered.`,
            'Try again; if it happens again, the model may not fit in memory: lower batch_size.',
          ),
        );
      });
      child.send({ type: 'calibrate', home: this.home, config: c, model: shape, microSteps: MICRO_STEPS });
    });
  }

  /** Stops the calibrations under way. */
  close(): void {
    this.closing = true;
    for (const child of this.children) child.kill();
    this.children.clear();
  }
}
