/**
 * How long the service's event loop is held while a model loads and computes: the longest gap between 5 ms timer
 * ticks while a gpt2-shaped (124M) random model is opened from its safetensors, and during the token-loss view's
 * work (per-token losses of 1,024 tokens, three times), with the model in a worker thread (how the studio runs
 * it) against the same model in the service's own thread (the peer); the same for importing the weights into the
 * workspace. A last line compares the time of the work itself: the cost of the worker.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { presetConfig } from '../src/core/model/config';
import { initWeights } from '../src/core/model/init';
import type { Model } from '../src/core/engine/types';
import { getEngine } from '../src/node/engines';
import { openRemoteModel } from '../src/node/generation/remote-model';
import { Studio } from '../src/node/studio';
import { exportGpt2Weights, loadGpt2Weights } from '../src/node/models/weights';
import { printResult } from './lib';

/** The longest gap between 5 ms ticks while `fn` runs, and how long it took. */
async function stallDuring<T>(fn: () => Promise<T>): Promise<{ value: T; stallMs: number; ms: number }> {
  let last = performance.now();
  let stall = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    stall = Math.max(stall, now - last);
    last = now;
  }, 5);
  const t0 = performance.now();
  const value = await fn();
  const ms = performance.now() - t0;
  await new Promise((r) => setTimeout(r, 20));
  clearInterval(timer);
  return { value, stallMs: Math.max(stall, performance.now() - last), ms };
}

async function measure(model: Model, T: number): Promise<{ stallMs: number; workMs: number }> {
  const inputs = Int32Array.from({ length: T }, (_, i) => (i * 7919) % 50257);
  const targets = Int32Array.from({ length: T }, (_, i) => (i * 104729 + 1) % 50257);
  await model.tokenLosses({ B: 1, T, inputs, targets }); // warm-up
  const r = await stallDuring(async () => {
    for (let i = 0; i < 3; i++) await model.tokenLosses({ B: 1, T, inputs, targets });
  });
  return { stallMs: r.stallMs, workMs: r.ms };
}

async function main(): Promise<void> {
  const config = presetConfig('gpt2');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-bench-resp-'));
  try {
    exportGpt2Weights(dir, config, initWeights(config, 1));
    const engine = await getEngine('auto');
    const T = 1024;

    const openHere = await stallDuring(async () => {
      const w = loadGpt2Weights(dir);
      const m = await engine.createModel(w.config, w.tensors);
      w.tensors.clear();
      return m;
    });
    const local = openHere.value;
    let here: { stallMs: number; workMs: number };
    try {
      here = await measure(local, T);
    } finally {
      local.dispose();
    }

    const openOff = await stallDuring(() => openRemoteModel(dir, { weightsPath: dir }, engine.name));
    const remote = openOff.value;
    let off: { stallMs: number; workMs: number };
    try {
      off = await measure(remote.model, T);
    } finally {
      remote.model.dispose();
    }
    // importing the weights: the studio's import (checked in a worker, copied asynchronously) against the same
    // check and copy done in the service thread
    const home = path.join(dir, 'home');
    const studio = new Studio({ home });
    let importOff: { stallMs: number };
    let importHere: { stallMs: number };
    try {
      importOff = await stallDuring(() => studio.invoke('models-import', { path: dir, name: 'bench' }));
      importHere = await stallDuring(async () => {
        const w = loadGpt2Weights(dir);
        w.tensors.clear();
        fs.copyFileSync(w.file, path.join(dir, 'copy.safetensors'));
      });
    } finally {
      studio.close();
    }

    const config_ = { model: 'gpt2 (124M, random)', T, calls: 3, engine: engine.info().detail };
    printResult({
      name: 'event-loop-stall-import-weights',
      figure: importOff.stallMs,
      unit: 'ms (longest gap, lower is better)',
      peer: 'check and copy in the service thread',
      peerFigure: importHere.stallMs,
      ratio: importOff.stallMs / importHere.stallMs,
      config: config_,
    });
    printResult({
      name: 'event-loop-stall-open-model',
      figure: openOff.stallMs,
      unit: 'ms (longest gap, lower is better)',
      peer: 'same model in the service thread',
      peerFigure: openHere.stallMs,
      ratio: openOff.stallMs / openHere.stallMs,
      config: config_,
    });
    printResult({
      name: 'event-loop-stall-token-losses',
      figure: off.stallMs,
      unit: 'ms (longest gap, lower is better)',
      peer: 'same model in the service thread',
      peerFigure: here.stallMs,
      ratio: off.stallMs / here.stallMs,
      config: config_,
    });
    printResult({
      name: 'token-losses-time-worker',
      figure: off.workMs,
      unit: 'ms for 3 calls',
      peer: 'same model in the service thread',
      peerFigure: here.workMs,
      ratio: off.workMs / here.workMs,
      config: config_,
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

await main();
