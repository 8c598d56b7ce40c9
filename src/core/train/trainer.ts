import { ErrorCode, StudioError } from '../../shared/errors';
import { gradAccumSteps, totalSteps, type RunConfig } from '../../shared/run-config';
import type { Batch, Collective, Model } from '../engine/types';
import { decayGroups, EOT_TOKEN, flopsPerToken } from '../model/config';
import { generate } from '../sampling';
import { learningRate } from '../schedule';
import { decode, encode } from '../tokenizer';
import { judgeStep, newGuardState, restoreGuardState, type GuardAction, type GuardState } from './guard';
import { accumulateGradients, applyUpdate } from './step';
import type { StepEvent, GuardEvent } from '../../shared/api/runs';
export type { StepEvent, GuardEvent };

/** A stream of (B, T) batches whose position can be saved and restored exactly. */
export interface BatchSource {
  next(): Batch;
  getState(): unknown;
  setState(s: unknown): void;
  /** back to the start (the val split is read from its start at every evaluation) */
  reset(): void;
}

/** Time spent outside the training steps, for estimates that hold. */
export interface TimingEvent {
  step: number;
  what: 'eval' | 'hellaswag' | 'sample' | 'checkpoint';
  ms: number;
}

/** What the trainer saves so that a resumed run continues exactly. */
export interface TrainerState {
  /** optimizer steps completed */
  step: number;
  tokensSeen: number;
  data: unknown;
  guard: GuardState;
}

export interface TrainerHooks {
  onStep(e: StepEvent): void | Promise<void>;
  onEval?(e: { step: number; valLoss: number }): void | Promise<void>;
  onHellaswag?(e: { step: number; accNorm: number | null; n: number; note?: string }): void | Promise<void>;
  onSample?(e: { step: number; prompt: string; samples: string[] }): void | Promise<void>;
  onLog?(level: 'info' | 'warn', message: string): void | Promise<void>;
  onGuard?(e: GuardEvent): void | Promise<void>;
  onTiming?(e: TimingEvent): void | Promise<void>;
  /** writes a checkpoint of the model, optimizer and this state */
  saveCheckpoint?(state: TrainerState, metrics: Record<string, number>): Promise<void>;
  /** polled between steps: 'stop' checkpoints and ends, 'pause' checkpoints and ends as paused */
  control?(): 'run' | 'stop' | 'pause';
  /** HellaSwag acc_norm, when the evals are available to the run */
  hellaswag?(model: Model, step: number): Promise<{ accNorm: number; n: number } | null>;
}

export interface TrainerOptions {
  config: RunConfig;
  model: Model;
  train: BatchSource;
  val?: BatchSource;
  hooks: TrainerHooks;
  /** state to resume from (from a checkpoint) */
  resume?: TrainerState;
  /** the engine's peak FLOP/s, for MFU; absent when unknown */
  peakFlops?: number;
  /**
   * Data parallel: this process's rank among the processes training together. Every rank reads its own share of
   * each step's batches; gradients, the loss and stop/pause requests are averaged over the ranks, so the ranks
   * take the same steps. Only rank 0 evaluates, samples and checkpoints.
   */
  dist?: Collective;
  now?: () => number;
}

/** The guard's in-memory copy of a good state. */
interface Snapshot {
  step: number;
  weights: Awaited<ReturnType<Model['exportWeights']>>;
  optimizer: Awaited<ReturnType<Model['exportOptimizerState']>>;
}

/** A fine-tune's sample ends where the next "User:" turn would begin (the answer is over by then). */
function cutAtNextTurn(text: string): string {
  const at = text.search(/\n\s*User:/);
  return at < 0 ? text : text.slice(0, at);
}

export type TrainerOutcome = { status: 'done' | 'stopped' | 'paused'; step: number };

const fmt = (n: number) => n.toLocaleString('en-US');

/** Mean val loss over `iters` batches from the start of the val split. */
export async function evaluateValLoss(model: Model, val: BatchSource, iters: number): Promise<number> {
  val.reset();
  let sum = 0;
  for (let i = 0; i < iters; i++) {
    const b = val.next();
    const losses = await model.tokenLosses(b);
    let s = 0;
    let n = 0;
    for (const l of losses)
      if (!Number.isNaN(l)) {
        s += l;
        n++;
      }
    sum += n ? s / n : 0;
  }
  return sum / iters;
}

/**
 * The training loop of build-nanogpt, engine-agnostic: for each step, evaluations when due, then gradient
 * accumulation over the micro-batches, the guard, clipping and AdamW with the scheduled learning rate, the log
 * line, and checkpoints when due. Stops, pauses and resumes between steps.
 */
export async function runTraining(o: TrainerOptions): Promise<TrainerOutcome> {
  const { config: c, model, train, val, hooks } = o;
  const now = o.now ?? (() => performance.now());
  const maxSteps = totalSteps(c);
  const accum = gradAccumSteps(c);
  const tokensPerStep = c.total_batch_size;
  const sched = { maxLr: c.max_lr, minLrRatio: c.min_lr_ratio, warmupSteps: c.warmup_steps, maxSteps };
  const guardOpts = {
    enabled: c.guard.enabled,
    zThreshold: c.guard.z_threshold,
    warmup: c.guard.warmup,
    maxConsecutiveSkips: c.guard.max_consecutive_skips,
    maxRollbacks: c.guard.max_rollbacks,
    window: c.guard.window,
  };
  const fpt = flopsPerToken(model.config, c.seq_len);
  const log = async (level: 'info' | 'warn', m: string) => hooks.onLog?.(level, m);
  const dist = o.dist && o.dist.world > 1 ? o.dist : undefined;
  const lead = !dist || dist.rank === 0;
  const timed = async <T>(what: TimingEvent['what'], at: number, f: () => Promise<T>): Promise<T> => {
    const t = now();
    const r = await f();
    await hooks.onTiming?.({ step: at, what, ms: now() - t });
    return r;
  };

  let step = o.resume?.step ?? 0;
  let tokensSeen = o.resume?.tokensSeen ?? 0;
  const guard = o.resume ? restoreGuardState(o.resume.guard) : newGuardState();
  if (o.resume) train.setState(o.resume.data);

  const g = decayGroups(model.config);
  await log('info', `num decayed parameter tensors: ${g.decayTensors}, with ${fmt(g.decayParams)} parameters`);
  await log('info', `num non-decayed parameter tensors: ${g.noDecayTensors}, with ${fmt(g.noDecayParams)} parameters`);
  await log(
    'info',
    `total desired batch size: ${fmt(tokensPerStep)} => calculated gradient accumulation steps: ${accum}`,
  );
  if (dist)
    await log(
      'info',
      `data parallel: ${dist.world} processes, each ${accum} micro-step${accum === 1 ? '' : 's'} of ${c.batch_size} x ${c.seq_len} tokens per step`,
    );
  if (o.resume) await log('info', `resuming at step ${step} of ${maxSteps}`);

  // The guard's last good state, in memory: what a rollback restores. Every rank keeps its own (they are equal).
  let snapshot: Snapshot | undefined;
  const takeSnapshot = async () => {
    snapshot = { step, weights: await model.exportWeights(), optimizer: await model.exportOptimizerState() };
  };
  if (c.guard.snapshot_interval > 0) await takeSnapshot();

  let lastVal: number | undefined;
  let lastValStep = -1;
  /** The validation loss of the weights after `step` updates, when that step evaluates (once per step). */
  const evaluateIfDue = async () => {
    // step maxSteps is not a step of the run (metrics count steps 0 .. maxSteps-1): the last evaluation is at maxSteps-1
    if (!lead || !val || c.eval_interval <= 0 || lastValStep === step || step >= maxSteps) return;
    if (step % c.eval_interval !== 0 && step !== maxSteps - 1) return;
    lastVal = await timed('eval', step, () => evaluateValLoss(model, val, c.eval_iters));
    lastValStep = step;
    await hooks.onEval?.({ step, valLoss: lastVal });
    await log('info', `validation loss: ${lastVal.toFixed(4)}`);
  };
  const state = (): TrainerState => ({ step, tokensSeen, data: train.getState(), guard: structuredClone(guard) });
  const checkpoint = async (evaluate: boolean) => {
    // a periodic checkpoint at a step that evaluates gets that evaluation (of its own weights), not the previous one;
    // a stop or pause does not evaluate first (the step it stops before has not trained, and is evaluated on resume),
    // so its checkpoint carries the step its val loss was measured at
    if (evaluate) await evaluateIfDue();
    if (!hooks.saveCheckpoint) return;
    const metrics: Record<string, number> =
      lastVal !== undefined ? { 'val/loss': lastVal, 'val/loss_step': lastValStep } : {};
    // recorded at the last step trained (a final checkpoint's step is one past the run's last step)
    await timed('checkpoint', Math.max(0, step - 1), () => hooks.saveCheckpoint!(state(), metrics));
  };
  /** Acts on the guard's verdict: true when the update is to be applied. */
  const actOnGuard = async (v: GuardAction): Promise<boolean> => {
    if (v.kind === 'apply') return true;
    if (v.kind === 'fail') {
      throw new StudioError(
        ErrorCode.NUMERIC,
        `Training stopped at step ${step}: ${v.reason}.`,
        'Lower max_lr, raise warmup_steps, or check the dataset; then resume from the last checkpoint (or start again with the changed config).',
      );
    }
    let e: GuardEvent;
    if (v.kind === 'rollback') {
      const to = snapshot!;
      model.loadWeights(to.weights);
      model.loadOptimizerState(to.optimizer);
      const batches = (step - to.step + 1) * accum;
      e = { step, action: 'rollback', reason: v.reason, toStep: to.step };
      await log(
        'warn',
        `step ${step}: guard: ${v.reason}; rolled back the weights and optimizer state to step ${to.step} and skipped the ${fmt(batches)} batch${batches === 1 ? '' : 'es'} since`,
      );
    } else if (v.kind === 'skip') {
      e = { step, action: 'skip', reason: v.reason };
      await log('warn', `step ${step}: guard: update skipped: ${v.reason}`);
    } else {
      e = { step, action: 'rebaseline', reason: v.reason };
      await log('warn', `step ${step}: guard: ${v.reason}`);
    }
    if (lead) await hooks.onGuard?.(e);
    return v.kind === 'rebaseline';
  };

  while (step < maxSteps) {
    const last = step === maxSteps - 1;
    await evaluateIfDue();
    if (lead && c.hellaswag_interval > 0 && (step % c.hellaswag_interval === 0 || last) && hooks.hellaswag) {
      const h = await timed('hellaswag', step, () => hooks.hellaswag!(model, step));
      if (h) await hooks.onHellaswag?.({ step, accNorm: h.accNorm, n: h.n });
    }
    if (lead && c.sample_interval > 0 && ((step > 0 && step % c.sample_interval === 0) || last)) {
      const prompt = encode(c.sample.prompt);
      const rows = await timed('sample', step, () =>
        generate(model, prompt, {
          maxNewTokens: c.sample.max_tokens,
          numSequences: c.sample.count,
          seed: c.seed + step,
          temperature: c.sample.temperature,
          topK: c.sample.top_k,
          topP: 1,
          // a fine-tune's answer ends at the end-of-text token that closes each example
          stopTokens: c.sft ? [EOT_TOKEN] : undefined,
        }),
      );
      await hooks.onSample?.({
        step,
        prompt: c.sample.prompt,
        samples: rows.map((r) => c.sample.prompt + (c.sft ? cutAtNextTurn(decode(r)) : decode(r))),
      });
    }

    const t0 = now();
    const micro: Batch[] = [];
    for (let i = 0; i < accum; i++) micro.push(train.next());
    const acc = await accumulateGradients(model, micro, dist ? (m) => dist.allReduceGrads(m) : undefined);
    const norm = acc.norm;
    let loss = acc.loss;
    let ctl: 'run' | 'stop' | 'pause' = 'run';
    if (dist) {
      // the step's loss over all ranks, and whether any rank was asked to stop or pause: every rank then agrees
      const local = hooks.control?.() ?? 'run';
      const [l, stopVotes, pauseVotes] = await dist.allReduceMean([
        loss,
        local === 'stop' ? 1 : 0,
        local === 'pause' ? 1 : 0,
      ]);
      loss = l!;
      ctl = stopVotes! > 0 ? 'stop' : pauseVotes! > 0 ? 'pause' : 'run';
    }
    const lr = learningRate(sched, step);
    // every rank sees the same loss and norm (both are over all ranks), so every rank takes the same action
    const verdict = judgeStep(guard, guardOpts, loss, norm, snapshot !== undefined);
    const apply = await actOnGuard(verdict);
    if (apply)
      applyUpdate(model, norm, {
        gradClip: c.grad_clip,
        adamw: { lr, beta1: c.beta1, beta2: c.beta2, eps: c.eps, weightDecay: c.weight_decay },
      });
    const dtMs = now() - t0;
    tokensSeen += tokensPerStep;
    const tokensPerSec = tokensPerStep / (dtMs / 1000);
    const mfu = o.peakFlops ? (fpt * tokensPerSec) / o.peakFlops : undefined;
    const ev: StepEvent = { step, loss, lr, norm, dtMs, tokensPerSec, mfu, tokensSeen, skipped: !apply };
    step++;
    await hooks.onStep(ev);
    // a good state to come back to: after an applied update, never in the middle of a streak
    if (
      c.guard.snapshot_interval > 0 &&
      apply &&
      guard.consecutiveSkips === 0 &&
      step % c.guard.snapshot_interval === 0
    )
      await takeSnapshot();

    const due = c.checkpoint_interval > 0 && (step % c.checkpoint_interval === 0 || step === maxSteps);
    if (!dist) ctl = hooks.control?.() ?? 'run';
    if (lead && (due || (ctl !== 'run' && step < maxSteps))) await checkpoint(due && ctl === 'run');
    if (ctl === 'stop') return { status: 'stopped', step };
    if (ctl === 'pause') return { status: 'paused', step };
  }
  return { status: 'done', step };
}

/** The log line of a step, as build-nanogpt prints it (plus MFU where known). */
export function formatStep(e: StepEvent): string {
  let s = `step ${String(e.step).padStart(5)} | loss ${e.loss.toFixed(6)} | lr ${e.lr.toExponential(4)} | norm ${e.norm.toFixed(4)} | dt ${e.dtMs.toFixed(2)} ms | tok/sec ${e.tokensPerSec.toFixed(2)}`;
  if (e.mfu !== undefined) s += ` | mfu ${(e.mfu * 100).toFixed(2)}%`;
  if (e.skipped) s += ' | skipped';
  return s;
}
