/**
 * One rank of the data-parallel tests (test/data-parallel.test.ts), run as its own process:
 *   node bin/run-ts.mjs test/support/dp-rank.ts JOB.json
 * JOB: {id, rank, world, out, mode}. mode "step": a native-cpu model from initWeights(seed 5), one micro-batch
 * (this rank's), the gradients averaged over the ranks, one AdamW step; writes the averaged gradients, the new
 * parameters and the averaged loss to OUT (JSON). mode "fail": joins, then aborts; mode "wait": joins and waits
 * for an exchange that the other rank (in mode "fail") never makes. nLayer overrides the model's depth.
 */
import fs from 'node:fs';
import { makeConfig, paramCount } from '../../src/core/model/config';
import { initWeights } from '../../src/core/model/init';
import { getEngine } from '../../src/node/engines';
import { NativeBuffer } from '../../src/node/native/addon';
import { dpBatch, DP_CONFIG } from './dp-common';

interface Job {
  id: string;
  rank: number;
  world: number;
  out: string;
  mode: 'step' | 'fail' | 'wait';
  timeoutMs?: number;
  nLayer?: number;
}

const jobFile = process.argv[2];
if (jobFile === undefined) throw new Error('usage: node bin/run-ts.mjs test/support/dp-rank.ts JOB.json');
const job = JSON.parse(fs.readFileSync(jobFile, 'utf8')) as Job;
const write = (o: unknown) => fs.writeFileSync(job.out, JSON.stringify(o));
try {
  const engine = await getEngine('native-cpu', { threads: 1 });
  const dist = await engine.dataParallel!.join(job.id, job.rank, job.world, job.timeoutMs);
  if (job.mode === 'fail') {
    dist.abort();
    write({ ok: true });
    process.exit(0);
  }
  const cfg = makeConfig({ ...DP_CONFIG, nLayer: job.nLayer ?? DP_CONFIG.nLayer });
  const model = await engine.createModel(cfg, initWeights(cfg, 5));
  model.zeroGrad();
  const loss = await model.forwardBackward(dpBatch(job.rank), 1);
  if (job.mode === 'wait') {
    // the other rank aborts instead of exchanging: this call must fail, not hang
    await dist.allReduceGrads(model);
  }
  await dist.allReduceGrads(model);
  const [meanLoss] = await dist.allReduceMean([loss]);
  const handle = (model as unknown as { handle: { read(w: number, o: number, out: Float32Array): void } }).handle;
  const n = paramCount(cfg);
  const grads = new Float32Array(n);
  handle.read(NativeBuffer.grads, 0, grads);
  const norm = await model.gradNorm();
  model.adamwStep({ lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 });
  const params = new Float32Array(n);
  handle.read(NativeBuffer.params, 0, params);
  write({
    ok: true,
    loss: meanLoss,
    norm,
    grads: Buffer.from(grads.buffer).toString('base64'),
    params: Buffer.from(params.buffer).toString('base64'),
  });
  dist.dispose();
  model.dispose();
} catch (e) {
  write({ ok: false, error: e instanceof Error ? e.message : String(e) });
}
process.exit(0);
