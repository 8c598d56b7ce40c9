/**
 * Checkpoints: one folder per step, `runs/<id>/checkpoints/step_NNNNNN/`, holding
 * - model.safetensors + config.json: the weights in the Hugging Face GPT-2 layout (loadable by `transformers`)
 * - optimizer.safetensors: AdamW's m and v of every parameter, engine layout, named `m.<name>` / `v.<name>`
 * - state.json: format and version, step, run config, model config, the trainer state (data position, guard),
 *   the engine and the metrics at that step.
 * A checkpoint is written into a temporary folder, fsynced, then renamed into place: a crash leaves either the
 * old set of checkpoints or the new one, never a half-written folder under a real name.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ErrorCode, StudioError } from '../../shared/errors';
import type { RunConfig } from '../../shared/run-config';
import type { OptimizerState } from '../../core/engine/types';
import type { GPTConfig } from '../../core/model/config';
import type { NamedTensors } from '../../core/tensors';
import type { TrainerState } from '../../core/train/trainer';
import { fsyncDir, readSafetensors, readSafetensorsHeader, writeSafetensors } from '../models/safetensors';
import { exportGpt2Weights, loadGpt2Weights } from '../models/weights';

export const CHECKPOINT_FORMAT = 'gpt2-studio-checkpoint';
export const CHECKPOINT_VERSION = 1;

export interface CheckpointState {
  format: typeof CHECKPOINT_FORMAT;
  version: number;
  step: number;
  runId: string;
  runConfig: RunConfig;
  modelConfig: GPTConfig;
  trainer: TrainerState;
  engine: string;
  metrics: Record<string, number>;
  createdAt: string;
}

export interface Checkpoint {
  dir: string;
  state: CheckpointState;
  weights: NamedTensors;
  optimizer: OptimizerState;
}

export const checkpointDirName = (step: number): string => `step_${String(step).padStart(6, '0')}`;
export const checkpointsDir = (runDir: string): string => path.join(runDir, 'checkpoints');

function writeJsonSync(file: string, value: unknown): void {
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, JSON.stringify(value, null, 2) + '\n');
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Writes a checkpoint atomically and returns its folder and size in bytes. */
export function writeCheckpoint(
  runDir: string,
  c: {
    state: Omit<CheckpointState, 'format' | 'version' | 'createdAt'>;
    weights: NamedTensors;
    optimizer: OptimizerState;
  },
): { dir: string; sizeBytes: number } {
  const parent = checkpointsDir(runDir);
  fs.mkdirSync(parent, { recursive: true });
  const name = checkpointDirName(c.state.step);
  const final = path.join(parent, name);
  const tmp = path.join(parent, `.tmp-${name}-${process.pid}`);
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp);
  try {
    exportGpt2Weights(tmp, c.state.modelConfig, c.weights);
    const opt: NamedTensors = new Map();
    for (const [n, t] of c.optimizer.m) opt.set(`m.${n}`, t);
    for (const [n, t] of c.optimizer.v) opt.set(`v.${n}`, t);
    writeSafetensors(path.join(tmp, 'optimizer.safetensors'), opt, { step: String(c.optimizer.step) });
    const state: CheckpointState = {
      format: CHECKPOINT_FORMAT,
      version: CHECKPOINT_VERSION,
      createdAt: new Date().toISOString(),
      ...c.state,
    };
    writeJsonSync(path.join(tmp, 'state.json'), state);
    fsyncDir(tmp);
    if (fs.existsSync(final)) {
      // the same step again (a resumed run re-saving): swap the old one out first
      const old = path.join(parent, `.old-${name}-${process.pid}`);
      fs.renameSync(final, old);
      fs.renameSync(tmp, final);
      fs.rmSync(old, { recursive: true, force: true });
    } else {
      fs.renameSync(tmp, final);
    }
    fsyncDir(parent);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  let size = 0;
  for (const f of fs.readdirSync(final)) size += fs.statSync(path.join(final, f)).size;
  return { dir: final, sizeBytes: size };
}

function bad(file: string, what: string, cause?: unknown): StudioError {
  return new StudioError(
    ErrorCode.BAD_CHECKPOINT,
    `Checkpoint ${file}: ${what}.`,
    'The checkpoint is damaged or from another program. Resume from an earlier checkpoint, or start the run again.',
    { cause },
  );
}

/** Reads and checks state.json only. */
export function readCheckpointState(dir: string): CheckpointState {
  const file = path.join(path.resolve(dir), 'state.json');
  if (!fs.existsSync(file)) throw bad(file, 'state.json is missing');
  let s: CheckpointState;
  try {
    s = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw bad(file, 'state.json is not valid JSON', e);
  }
  if (s?.format !== CHECKPOINT_FORMAT)
    throw bad(file, `format is ${JSON.stringify(s?.format)}, expected "${CHECKPOINT_FORMAT}"`);
  if (s.version !== CHECKPOINT_VERSION) {
    throw new StudioError(
      ErrorCode.BAD_CHECKPOINT,
      `Checkpoint ${file} has format version ${s.version}; this studio reads version ${CHECKPOINT_VERSION}.`,
      s.version > CHECKPOINT_VERSION
        ? 'It was written by a newer GPT-2 Studio: upgrade the studio.'
        : 'Start the run again from its weights.',
    );
  }
  if (!Number.isInteger(s.step) || s.step < 0 || !s.modelConfig || !s.trainer)
    throw bad(file, 'state.json lacks step, modelConfig or trainer state');
  return s;
}

/** Reads a whole checkpoint: state, weights (engine layout, padded as the model) and optimizer state. */
export function readCheckpoint(dir: string): Checkpoint {
  const abs = path.resolve(dir);
  const state = readCheckpointState(abs);
  const weights = loadGpt2Weights(abs, {
    paddedVocabSize: state.modelConfig.paddedVocabSize,
    nHead: state.modelConfig.nHead,
  }).tensors;
  const optFile = path.join(abs, 'optimizer.safetensors');
  if (!fs.existsSync(optFile)) throw bad(optFile, 'optimizer.safetensors is missing');
  const raw = readSafetensors(optFile);
  const m: NamedTensors = new Map();
  const v: NamedTensors = new Map();
  for (const [n, t] of raw) {
    if (n.startsWith('m.')) m.set(n.slice(2), t);
    else if (n.startsWith('v.')) v.set(n.slice(2), t);
  }
  // AdamW's own step count: applied updates only (a skipped update does not advance it), kept in the metadata
  const step = Number(readSafetensorsHeader(optFile).metadata.step);
  if (!Number.isInteger(step) || step < 0)
    throw bad(
      optFile,
      `metadata "step" is ${JSON.stringify(readSafetensorsHeader(optFile).metadata.step)}, expected the AdamW step count`,
    );
  return { dir: abs, state, weights, optimizer: { step, m, v } };
}

/** The files every complete checkpoint folder holds. */
const CHECKPOINT_FILES = ['state.json', 'model.safetensors', 'optimizer.safetensors'];

const isComplete = (dir: string) => CHECKPOINT_FILES.every((f) => fs.existsSync(path.join(dir, f)));

/**
 * Step numbers of a run's complete checkpoints, ascending. A folder under a checkpoint's name that lacks one of its
 * files (left by an older studio killed while pruning) is not listed, so nothing offers it to load.
 */
export function listCheckpointSteps(runDir: string): number[] {
  const parent = checkpointsDir(runDir);
  if (!fs.existsSync(parent)) return [];
  return fs
    .readdirSync(parent)
    .map((n) => /^step_(\d{6,})$/.exec(n))
    .filter((m): m is RegExpExecArray => m !== null && isComplete(path.join(parent, m[0])))
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
}

/** Removes a checkpoint folder so that no crash can leave it half-deleted under its real name: rename, then delete. */
function removeCheckpointDir(parent: string, name: string): void {
  const from = path.join(parent, name);
  if (!fs.existsSync(from)) return;
  const doomed = path.join(parent, `.deleting-${name}-${process.pid}-${Date.now()}`);
  fs.renameSync(from, doomed);
  fsyncDir(parent);
  fs.rmSync(doomed, { recursive: true, force: true });
}

/** Deletes all but the newest `keepLast` checkpoints (0 keeps all); returns the deleted steps. */
export function pruneCheckpoints(runDir: string, keepLast: number): number[] {
  if (keepLast <= 0) return [];
  const steps = listCheckpointSteps(runDir);
  const drop = steps.slice(0, Math.max(0, steps.length - keepLast));
  for (const s of drop) removeCheckpointDir(checkpointsDir(runDir), checkpointDirName(s));
  return drop;
}

function sizeOf(p: string): number {
  let total = 0;
  const st = fs.lstatSync(p);
  if (!st.isDirectory()) return st.size;
  for (const f of fs.readdirSync(p)) total += sizeOf(path.join(p, f));
  return total;
}

export interface LeftoverCleanup {
  /** folders removed: partial writes (.tmp-*), interrupted deletions (.deleting-*), incomplete checkpoints */
  removed: string[];
  /** a checkpoint put back under its name (a crash between the two renames of a re-save) */
  restored: string[];
  freedBytes: number;
}

/**
 * Finishes what a killed process left in a run's checkpoints folder: removes partial writes (`.tmp-step_*`),
 * interrupted deletions (`.deleting-*`) and incomplete folders under a checkpoint's name, and puts back a
 * checkpoint that a re-save had moved aside (`.old-step_*`) when its name is free. Run only while no worker of the
 * run is alive.
 */
export function cleanCheckpointLeftovers(runDir: string): LeftoverCleanup {
  const out: LeftoverCleanup = { removed: [], restored: [], freedBytes: 0 };
  const parent = checkpointsDir(runDir);
  if (!fs.existsSync(parent)) return out;
  const drop = (name: string) => {
    const p = path.join(parent, name);
    try {
      out.freedBytes += sizeOf(p);
    } catch {
      // gone meanwhile
    }
    fs.rmSync(p, { recursive: true, force: true });
    out.removed.push(name);
  };
  for (const name of fs.readdirSync(parent)) {
    const old = /^\.old-(step_\d{6,})-\d+$/.exec(name);
    if (old) {
      const final = path.join(parent, old[1]!);
      if (!fs.existsSync(final) && isComplete(path.join(parent, name))) {
        fs.renameSync(path.join(parent, name), final);
        out.restored.push(old[1]!);
      } else drop(name);
    } else if (name.startsWith('.tmp-') || name.startsWith('.deleting-')) {
      drop(name);
    } else if (/^step_\d{6,}$/.test(name) && !isComplete(path.join(parent, name))) {
      drop(name);
    }
  }
  if (out.removed.length || out.restored.length) fsyncDir(parent);
  return out;
}
