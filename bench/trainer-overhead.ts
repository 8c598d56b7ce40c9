/**
 * The overhead per step of the trainer and the run store over the bare engine: the same model, data and steps,
 * timed as a bare loop (loader -> accumulate -> clip -> AdamW) and through runTraining with every step recorded
 * in SQLite as the Studio does. Blocks of each alternate so that machine noise hits both. Target: < 2%.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { checkRunConfig } from '../src/shared/run-config';
import { makeConfig } from '../src/core/model/config';
import { initWeights } from '../src/core/model/init';
import { trainStep } from '../src/core/train/step';
import { runTraining } from '../src/core/train/trainer';
import { getEngine } from '../src/node/engines';
import { openStore } from '../src/node/store';
import { openTrainingData } from '../src/node/train/data';
import { main as cli } from '../src/cli/main';
import { median, printResult } from './lib';

const BLOCK = 8;
const ROUNDS = 4;

async function run(): Promise<void> {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-overhead-'));
  try {
    await cli(['prepare', 'builtin', '--size-mb', '1', '--home', home], { out: () => {}, err: () => {} });
    const parsed = checkRunConfig({
      model: { n_layer: 2, n_head: 2, n_embd: 64, block_size: 64 },
      dataset: 'builtin',
      total_batch_size: 512,
      batch_size: 8,
      seq_len: 64,
      max_steps: BLOCK,
      warmup_steps: 1,
      eval_interval: 0,
      hellaswag_interval: 0,
      sample_interval: 0,
      checkpoint_interval: 0,
    });
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
    const config = parsed.config;
    const engine = await getEngine(config.engine);
    const mc = makeConfig({ nLayer: 2, nHead: 2, nEmbd: 64, blockSize: 64 });
    const model = await engine.createModel(mc, initWeights(mc, 1));
    const store = openStore(home);
    const runRow = store.createRun({ name: 'overhead', config });
    const hyper = { gradClip: 1, adamw: { lr: 6e-4, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 } };
    const bare: number[] = [];
    const full: number[] = [];
    let stepBase = 0;
    for (let r = 0; r < ROUNDS; r++) {
      const data = openTrainingData(home, config).train;
      let t0 = performance.now();
      for (let i = 0; i < BLOCK; i++) await trainStep(model, [data.next()], hyper);
      bare.push((performance.now() - t0) / BLOCK);

      t0 = performance.now();
      await runTraining({
        config,
        model,
        train: openTrainingData(home, config).train,
        hooks: {
          onStep: (e) => {
            const step = stepBase + e.step;
            store.recordStep(runRow.id, {
              step,
              wallTime: Date.now(),
              tokensSeen: e.tokensSeen,
              metrics: {
                'train/loss': e.loss,
                'train/lr': e.lr,
                'train/norm': e.norm,
                'train/dt_ms': e.dtMs,
                'train/tok_per_sec': e.tokensPerSec,
              },
            });
            JSON.stringify({ type: 'step', seq: step, ...e }); // what the worker sends over IPC
          },
          onLog: (level, message) => {
            store.addLog(runRow.id, level, message);
          },
        },
      });
      full.push((performance.now() - t0) / BLOCK);
      stepBase += BLOCK;
    }
    model.dispose();
    store.close();
    const b = median(bare);
    const f = median(full);
    printResult({
      name: 'trainer-store-overhead',
      figure: (f / b - 1) * 100,
      unit: '% per step',
      peer: 'bare engine loop',
      peerFigure: b,
      ratio: f / b,
      config: {
        engine: engine.info().detail,
        msPerStepBare: b,
        msPerStepFull: f,
        steps: BLOCK * ROUNDS,
        target: '< 2%',
      },
    });
  } finally {
    fs.rmSync(home, { recursive: true, force: true });
  }
}

await run();
