/**
 * The training worker: one process per run. It receives `start` (then `stop` / `pause`) from the parent and
 * reports every event as a WorkerMessage; the parent records them in SQLite before relaying them.
 * It runs under child_process.fork (Node) or utilityProcess (Electron) through the same entry file.
 */
import { accPercent } from '../../shared/accuracy';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ErrorCode, StudioError, toPlainError } from '../../shared/errors';
import { resolveModelShape, type RunConfig } from '../../shared/run-config';
import { parseHellaswag, runHellaswag, type HellaswagExample } from '../../core/evals/hellaswag';
import { makeConfig, paramCount, type GPTConfig } from '../../core/model/config';
import { initWeights } from '../../core/model/init';
import type { Collective, Engine, Model } from '../../core/engine/types';
import { runTraining, type TrainerState } from '../../core/train/trainer';
import { Workspace } from '../workspace';
import { getEngine } from '../engines';
import { pruneCheckpoints, readCheckpoint, writeCheckpoint } from '../checkpoints/files';
import { loadGpt2Weights } from '../models/weights';
import { attemptFacts } from '../runs/facts';
import { openTrainingData } from './data';
import { initPathOf, runDirOf } from './paths';
import { CONTROL_FILE, type ParentMessage, type WorkerPayload } from './protocol';
import { SystemSampler, sampleInterval } from './system-metrics';
import { receiveModel, sendModel } from './share-model';

/** The model config of a run config. */
export function modelConfigOf(c: RunConfig): GPTConfig {
  const s = resolveModelShape(c.model);
  return makeConfig({
    nLayer: s.n_layer!,
    nHead: s.n_head!,
    nEmbd: s.n_embd!,
    blockSize: s.block_size!,
    vocabSize: s.vocab_size,
    paddedVocabSize: s.padded_vocab_size,
  });
}

export interface WorkerIo {
  send(m: WorkerPayload): void;
  onMessage(cb: (m: ParentMessage) => void): void;
}

/**
 * Data parallel: joins this process to the others of the run. Rank 0 makes the communicator and sends its id
 * (the parent hands it to the other ranks); every rank then waits until all have joined. This comes before the
 * model is built, since a CUDA engine picks the rank's GPU here.
 */
async function joinRanks(
  engine: Engine,
  start: Extract<ParentMessage, { type: 'start' }>,
  io: WorkerIo,
): Promise<Collective> {
  const world = start.config.world_size;
  const rank = start.rank ?? 0;
  if (!engine.dataParallel) {
    throw new StudioError(
      ErrorCode.ENGINE_UNAVAILABLE,
      `world_size = ${world} needs data parallel, which the ${engine.name} engine does not have.`,
      'Use engine native-cpu or native-cuda, or set world_size to 1.',
    );
  }
  let id = start.commId;
  if (rank === 0) {
    // under mpirun or srun, every process of the job is already in MPI_COMM_WORLD: no id to make
    id = start.commKind === 'mpi-world' ? 'mpi:world' : engine.dataParallel.newId(start.commKind);
    io.send({ type: 'comm-id', id, engine: engine.name });
  }
  if (!id)
    throw new StudioError(
      ErrorCode.INTERNAL,
      `Rank ${rank} of run ${start.runId} started without a communicator id.`,
      'Start the run again.',
    );
  return engine.dataParallel.join(id, rank, world);
}

/** Runs one training job to its end; resolves when the final message has been sent: true unless it failed. */
export async function runWorker(start: Extract<ParentMessage, { type: 'start' }>, io: WorkerIo): Promise<boolean> {
  const { runId, home, config } = start;
  const rank = start.rank ?? 0;
  const lead = rank === 0;
  const nodes = start.nodes;
  // the first rank of each node reports its steps and log to its own workspace (multi-node); rank 0 alone reports
  // what belongs to the run: evaluations, samples, checkpoints, system metrics
  const reporter = rank === (nodes?.first ?? 0);
  const runDir = runDirOf(home, runId);
  const controlFile = path.join(runDir, CONTROL_FILE);
  let control: 'run' | 'stop' | 'pause' = 'run';
  io.onMessage((m) => {
    if (m.type === 'stop' || m.type === 'pause') control = m.type;
  });
  const readControl = (): 'run' | 'stop' | 'pause' => {
    if (control !== 'run') return control;
    try {
      const c = fs.readFileSync(controlFile, 'utf8').trim();
      if (c === 'stop' || c === 'pause') {
        control = c;
        fs.rmSync(controlFile, { force: true });
      }
    } catch {
      // no control file
    }
    return control;
  };
  // only rank 0 reports the run; the other ranks report nothing but their errors
  const log = (level: 'info' | 'warn' | 'error', message: string) => {
    if (reporter) io.send({ type: 'log', level, message });
  };

  let model: Model | null = null;
  let dist: Collective | undefined;
  let sysTimer: NodeJS.Timeout | undefined;
  try {
    fs.mkdirSync(runDir, { recursive: true });
    const world = config.world_size;
    // data parallel on the CPU: the processes of this machine share its cores
    const here = nodes?.local ?? world;
    const threads =
      here > 1 && !process.env.GPT2_STUDIO_THREADS && !process.env.OMP_NUM_THREADS
        ? Math.max(1, Math.floor(os.availableParallelism() / here))
        : undefined;
    // a CUDA rank takes the GPU of its place on this machine (read when the communicator is made)
    if (nodes) process.env.GPT2_STUDIO_LOCAL_RANK = String(nodes.localBase + rank - nodes.first);
    // the other ranks run the engine rank 0 resolved ("auto" could resolve differently in each process)
    const engine = await getEngine(rank > 0 && start.engine ? start.engine : config.engine, {
      threads,
      precision: config.precision,
    });
    if (world > 1) dist = await joinRanks(engine, start, io);
    let mc = modelConfigOf(config);
    let resume: TrainerState | undefined;
    if (nodes && !lead) {
      // multi-node: the starting point is rank 0's, received over the communicator
      resume = nodes.trainer;
      const got = await receiveModel(dist!, resume !== undefined);
      mc = got.modelConfig;
      model = await engine.createModel(mc, got.weights);
      if (got.optimizer) model.loadOptimizerState(got.optimizer);
    } else {
      if (start.resumeFrom) {
        const ck = readCheckpoint(start.resumeFrom);
        mc = ck.state.modelConfig;
        model = await engine.createModel(mc, ck.weights);
        model.loadOptimizerState(ck.optimizer);
        resume = ck.state.trainer;
        log('info', `resumed from ${ck.dir} (step ${ck.state.step})`);
      } else if (config.init_from === 'weights') {
        const w = loadGpt2Weights(initPathOf(home, config.init_path!), { paddedVocabSize: mc.paddedVocabSize });
        mc = { ...w.config };
        model = await engine.createModel(mc, w.tensors);
        log('info', `initialized from weights ${w.file}`);
      } else if (config.init_from === 'checkpoint') {
        const ck = readCheckpoint(initPathOf(home, config.init_path!));
        mc = ck.state.modelConfig;
        model = await engine.createModel(mc, ck.weights);
        log('info', `initialized from the weights of checkpoint ${ck.dir}`);
      } else {
        model = await engine.createModel(mc, initWeights(mc, config.seed));
      }
      if (nodes && dist) {
        log('info', `sending the model to the other ${world - 1} ranks`);
        await sendModel(dist, mc, await model.exportWeights(), resume ? await model.exportOptimizerState() : undefined);
      }
    }
    if (reporter)
      io.send({
        type: 'ready',
        engine: engine.info().detail,
        params: paramCount(mc),
        resumedAt: resume?.step ?? 0,
        attempt: attemptFacts(engine.info(), mc, {
          fromStep: resume?.step ?? 0,
          worldSize: world,
          initFrom: start.resumeFrom ? 'checkpoint (resume)' : config.init_from,
        }),
        modelConfig: {
          n_layer: mc.nLayer,
          n_head: mc.nHead,
          n_embd: mc.nEmbd,
          block_size: mc.blockSize,
          vocab_size: mc.vocabSize,
          padded_vocab_size: mc.paddedVocabSize,
        },
      });

    // system metrics: rank 0 only (its process, and every GPU of the machine as NVML sees them), at the last step
    // reported; taken on the JS thread, which a native step leaves free, so a long step does not delay them
    let sysStep = resume?.step ?? 0;
    const every = sampleInterval();
    if (lead && every > 0) {
      const sampler = new SystemSampler({ dir: home, log });
      const take = () => io.send({ type: 'system', step: sysStep, time: Date.now(), values: sampler.sample() });
      take();
      sysTimer = setInterval(take, every);
      sysTimer.unref();
    }

    const data = openTrainingData(home, config, rank);
    let hsExamples: HellaswagExample[] | null | undefined;
    const m = model;
    const outcome = await runTraining({
      config,
      model: m,
      train: data.train,
      val: lead ? data.val : undefined,
      resume,
      dist,
      hooks: {
        onStep: (e) => {
          sysStep = e.step;
          if (reporter) io.send({ type: 'step', ...e });
        },
        onEval: (e) => io.send({ type: 'eval', step: e.step, name: 'val/loss', value: e.valLoss }),
        onHellaswag: (e) => {
          if (e.accNorm !== null) io.send({ type: 'eval', step: e.step, name: 'hellaswag/acc_norm', value: e.accNorm });
        },
        onSample: (e) => io.send({ type: 'sample', step: e.step, prompt: e.prompt, samples: e.samples }),
        onLog: (level, message) => log(level, message),
        onGuard: (e) => io.send({ type: 'guard', ...e }),
        onTiming: (e) => io.send({ type: 'timing', ...e }),
        control: readControl,
        hellaswag: async (mdl) => {
          if (hsExamples === undefined) {
            const file = new Workspace(home).hellaswagData;
            if (fs.existsSync(file)) {
              hsExamples = parseHellaswag(fs.readFileSync(file, 'utf8'), { source: file }).examples;
            } else {
              hsExamples = null;
              log('info', 'HellaSwag: not available (no data in the workspace; run "gpt2-studio prepare hellaswag")');
            }
          }
          if (!hsExamples) return null;
          const r = await runHellaswag(mdl, hsExamples, { limit: config.hellaswag_limit });
          log('info', `HellaSwag acc_norm: ${r.summary.correctNorm}/${r.summary.n} = ${accPercent(r.summary.accNorm)}`);
          return { accNorm: r.summary.accNorm, n: r.summary.n };
        },
        saveCheckpoint: !lead
          ? undefined
          : async (state, metrics) => {
              const { dir, sizeBytes } = writeCheckpoint(runDir, {
                state: {
                  step: state.step,
                  runId,
                  runConfig: config,
                  modelConfig: mc,
                  trainer: state,
                  engine: engine.name,
                  metrics,
                },
                weights: await m.exportWeights(),
                optimizer: await m.exportOptimizerState(),
              });
              // prune first, so that the parent's index drops the removed ones when it records this one
              const dropped = pruneCheckpoints(runDir, config.keep_last);
              io.send({
                type: 'checkpoint',
                step: state.step,
                dir,
                sizeBytes,
                valLoss: metrics['val/loss'] ?? null,
                valLossStep: metrics['val/loss_step'] ?? null,
              });
              if (dropped.length)
                log('info', `removed old checkpoints at steps ${dropped.join(', ')} (keep_last ${config.keep_last})`);
            },
      },
    });
    io.send({ type: 'done', status: outcome.status, step: outcome.step });
    return true;
  } catch (e) {
    dist?.abort(); // the other ranks would wait for this one forever
    io.send({ type: 'error', error: toPlainError(e) });
    return false;
  } finally {
    clearInterval(sysTimer);
    model?.dispose();
    dist?.dispose();
  }
}
