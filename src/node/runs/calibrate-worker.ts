/**
 * The calibration child process: builds the model of a run config on its engine and times what a run of it does
 * (a forward + backward of one (B, T) micro-batch, the AdamW update, a val batch, a sample and a checkpoint), so
 * that the New run page can say how long the run takes before it starts. It runs in its own process, like a
 * training worker, so that a slow step never holds up the service's event loop and its memory and threads go
 * when it ends. One request per process: the parent sends `calibrate`, and the child answers `built`, then
 * `result` or `error`, and exits.
 */
import fs from 'node:fs';
import path from 'node:path';
import { toPlainError } from '../../shared/errors';
import type { RunConfig } from '../../shared/run-config';
import { median } from '../../shared/estimate';
import { makeConfig, type GPTConfig } from '../../core/model/config';
import { initWeights } from '../../core/model/init';
import type { Batch, Model } from '../../core/engine/types';
import { generate } from '../../core/sampling';
import { encode } from '../../core/tokenizer';
import { parseHellaswag, runHellaswag } from '../../core/evals/hellaswag';
import { newGuardState } from '../../core/train/guard';
import { getEngine } from '../engines';
import { writeCheckpoint } from '../checkpoints/files';
import { Workspace } from '../workspace';
import type { CalibrateReply, CalibrateRequest, CalibrateMeasured } from './calibrate';

interface ParentPort {
  on(ev: 'message', cb: (e: { data: CalibrateRequest }) => void): void;
  postMessage(m: CalibrateReply): void;
}

/** (B, T) random tokens below the vocabulary, from a fixed seed (the values do not change the time). */
function randomBatch(B: number, T: number, vocab: number, seed: number): Batch {
  let s = seed >>> 0 || 1;
  const next = () => {
    // xorshift32
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s % vocab;
  };
  const inputs = new Int32Array(B * T);
  const targets = new Int32Array(B * T);
  for (let i = 0; i < B * T; i++) {
    inputs[i] = next();
    targets[i] = next();
  }
  return { B, T, inputs, targets };
}

const ms = (t0: number) => performance.now() - t0;

/** Sample tokens timed at most (a sample's time grows about linearly with its length, so it is scaled up). */
const SAMPLE_TOKENS = 16;
/** HellaSwag examples timed at most. */
const HELLASWAG_EXAMPLES = 4;

async function measure(
  req: CalibrateRequest,
  built: (engine: string, detail: string) => void,
): Promise<CalibrateMeasured> {
  const c: RunConfig = req.config;
  const engine = await getEngine(c.engine, { precision: c.precision });
  const mc: GPTConfig = makeConfig(req.model);
  let model: Model | null = null;
  try {
    model = await engine.createModel(mc, initWeights(mc, c.seed));
    built(engine.name, engine.info().detail);
    const batch = randomBatch(c.batch_size, c.seq_len, mc.vocabSize, c.seed);
    const adamw = { lr: c.max_lr, beta1: c.beta1, beta2: c.beta2, eps: c.eps, weightDecay: c.weight_decay };
    const update = async (m: Model) => {
      const norm = await m.gradNorm();
      if (c.grad_clip > 0 && c.grad_clip / (norm + 1e-6) < 1) m.scaleGrads(c.grad_clip / (norm + 1e-6));
      m.adamwStep(adamw);
    };

    // a val batch first, as a run evaluates before its first step: per-token losses, as evaluateValLoss computes
    // them. The first call pays for allocations and cold caches; the next ones are what an evaluation costs.
    let t0 = performance.now();
    await model.tokenLosses(batch);
    const evalColdMs = ms(t0);
    const evals: number[] = [];
    for (let i = 0; i < 2; i++) {
      t0 = performance.now();
      await model.tokenLosses(batch);
      evals.push(ms(t0));
    }
    const evalIterMs = Math.min(...evals);

    // the warm-up step: the first one pays for the gradients' and AdamW's first touches, as a run's first step does
    t0 = performance.now();
    model.zeroGrad();
    await model.forwardBackward(batch, 1);
    await update(model);
    const firstMs = ms(t0);

    // a slow step is timed fewer times (the calibration should take seconds, not minutes), a fast one more
    const timed = firstMs > 5000 ? 2 : firstMs < 300 ? Math.max(req.microSteps, 8) : req.microSteps;
    const micro: number[] = [];
    const upd: number[] = [];
    for (let i = 0; i < timed; i++) {
      // other tokens each step, as a run reads them
      const b = randomBatch(c.batch_size, c.seq_len, mc.vocabSize, c.seed + 1 + i);
      t0 = performance.now();
      model.zeroGrad();
      await model.forwardBackward(b, 1);
      micro.push(ms(t0));
      t0 = performance.now();
      await update(model);
      upd.push(ms(t0));
    }
    const microStepMs = median(micro)!;
    const updateMs = median(upd)!;

    // a sample as the trainer draws it, up to SAMPLE_TOKENS tokens
    const prompt = encode(c.sample.prompt);
    const sampleTokens = Math.max(1, Math.min(c.sample.max_tokens, SAMPLE_TOKENS));
    t0 = performance.now();
    await generate(model, prompt.length ? prompt : [50256], {
      maxNewTokens: sampleTokens,
      numSequences: c.sample.count,
      seed: c.seed,
      temperature: c.sample.temperature,
      topK: c.sample.top_k,
      topP: 1,
    });
    const sample = { ms: ms(t0), count: c.sample.count, maxTokens: sampleTokens };

    // a checkpoint, written where the run's are (the workspace's disk), then removed
    const scratch = path.join(req.home, `.calibrate-${process.pid}`);
    let checkpointMs: number;
    let snapshotMs: number;
    try {
      // the export alone is what the guard's in-memory snapshot costs
      t0 = performance.now();
      const weights = await model.exportWeights();
      const optimizer = await model.exportOptimizerState();
      snapshotMs = ms(t0);
      writeCheckpoint(scratch, {
        state: {
          step: 1,
          runId: 'calibration',
          runConfig: c,
          modelConfig: mc,
          trainer: { step: 1, tokensSeen: 0, data: null, guard: newGuardState() },
          engine: engine.name,
          metrics: {},
        },
        weights,
        optimizer,
      });
      checkpointMs = ms(t0);
    } finally {
      fs.rmSync(scratch, { recursive: true, force: true });
    }

    // HellaSwag, when the workspace has its data and the config evaluates it
    let hellaswag: CalibrateMeasured['hellaswag'];
    const hsFile = new Workspace(req.home).hellaswagData;
    if (c.hellaswag_interval > 0) {
      if (fs.existsSync(hsFile)) {
        const examples = parseHellaswag(fs.readFileSync(hsFile, 'utf8'), { source: hsFile }).examples;
        const n = Math.min(HELLASWAG_EXAMPLES, examples.length);
        if (n > 0) {
          t0 = performance.now();
          await runHellaswag(model, examples, { limit: n });
          hellaswag = { msPerExample: ms(t0) / n, examples: examples.length };
        }
      } else {
        // the run skips HellaSwag without data
        hellaswag = { msPerExample: 0, examples: 0 };
      }
    }

    return {
      engine: engine.name,
      engineDetail: engine.info().detail,
      microStepMs,
      updateMs,
      firstStepExtraMs: Math.max(0, firstMs - microStepMs - updateMs) + Math.max(0, evalColdMs - evalIterMs),
      evalIterMs,
      sample,
      checkpointMs,
      snapshotMs,
      hellaswag,
      microSteps: timed,
    };
  } finally {
    model?.dispose();
  }
}

/** The child's main: one request, its answer, then exit. */
export async function startCalibrateProcess(): Promise<void> {
  const port = (process as unknown as { parentPort?: ParentPort }).parentPort;
  const send = (m: CalibrateReply): Promise<void> =>
    new Promise((resolve) => {
      if (port) {
        port.postMessage(m);
        resolve();
      } else if (process.send) process.send(m, undefined, {}, () => resolve());
      else resolve();
    });
  const req = await new Promise<CalibrateRequest>((resolve) => {
    if (port) port.on('message', (e) => resolve(e.data));
    else {
      process.on('message', (m) => resolve(m as CalibrateRequest));
      // the service is gone: nobody waits for the answer
      process.on('disconnect', () => process.exit(1));
    }
  });
  let ok = true;
  try {
    const result = await measure(req, (engine, detail) => void send({ type: 'built', engine, engineDetail: detail }));
    await send({ type: 'result', result });
  } catch (e) {
    ok = false;
    await send({ type: 'error', error: toPlainError(e) });
  }
  process.exit(ok ? 0 : 1);
}
