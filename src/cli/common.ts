import { existsSync } from 'node:fs';
import path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ErrorCode, StudioError } from '../shared/errors';
import type { Model } from '../core/engine/types';
import { checkpointDirName, checkpointsDir, listCheckpointSteps } from '../node/checkpoints/files';
import { getEngine } from '../node/engines';
import { importedModelPath } from '../node/models/service';
import { runDirOf } from '../node/train/paths';
import { loadGpt2Weights } from '../node/models/weights';
import { resolveHome } from '../node/workspace';

/** Helpers shared by the CLI commands. */

export type Out = (s: string) => void;
export interface CliIo {
  out: Out;
  err: Out;
  /** Calls cb once when standard output is closed by its reader (e.g. "| head"); returns an unsubscribe. */
  onOutputClosed?: (cb: () => void) => () => void;
}

/**
 * The process's streams. A reader that goes away (EPIPE: "gpt2-studio train --json | head") is not an error: later
 * output is dropped, and the commands that run long hear of it through onOutputClosed (a run then checkpoints and
 * stops).
 */
function processIo(): CliIo {
  let closed = false;
  const closedCbs = new Set<() => void>();
  const watch = (stream: NodeJS.WriteStream, isStdout: boolean) =>
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EPIPE') throw e;
      if (!isStdout || closed) return;
      closed = true;
      for (const cb of [...closedCbs]) cb();
    });
  let watching = false;
  const ensureWatching = () => {
    if (watching) return;
    watching = true;
    watch(process.stdout, true);
    watch(process.stderr, false);
  };
  return {
    out: (s) => {
      ensureWatching();
      if (!closed) process.stdout.write(s);
    },
    err: (s) => {
      ensureWatching();
      if (!process.stderr.destroyed) process.stderr.write(s);
    },
    onOutputClosed: (cb) => {
      ensureWatching();
      if (closed) {
        queueMicrotask(cb);
        return () => {};
      }
      closedCbs.add(cb);
      return () => closedCbs.delete(cb);
    },
  };
}
export const defaultIo: CliIo = processIo();

export const common = {
  weights: { type: 'string' },
  home: { type: 'string' },
  engine: { type: 'string', default: 'auto' },
  backend: { type: 'string' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const satisfies ParseArgsConfig['options'];

export function parse<O extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: O, cmd: string) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: false, strict: true }).values;
  } catch (e) {
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `${cmd}: ${(e as Error).message}`,
      `Run "gpt2-studio ${cmd} --help" for the options.`,
    );
  }
}

export function num(
  v: string | undefined,
  name: string,
  opts: { int?: boolean; min?: number; max?: number } = {},
): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  const bad =
    !Number.isFinite(n) ||
    (opts.int && !Number.isInteger(n)) ||
    (opts.min !== undefined && n < opts.min) ||
    (opts.max !== undefined && n > opts.max);
  if (bad) {
    const range = [
      opts.int ? 'an integer' : 'a number',
      opts.min !== undefined ? `>= ${opts.min}` : '',
      opts.max !== undefined ? `<= ${opts.max}` : '',
    ]
      .filter(Boolean)
      .join(' ');
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `--${name} ${v} is not valid: expected ${range}.`,
      `Pass --${name} as ${range}.`,
    );
  }
  return n;
}

/**
 * --weights W: a path, or a name that "gpt2-studio models" lists in the workspace (--home): model:ID for imported
 * weights, ckpt:RUN_ID:STEP for a checkpoint. Returns what the weights loader reads.
 */
export function needWeights(w: string | undefined, cmd: string, homeFlag?: string): string {
  if (!w)
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `${cmd} needs --weights.`,
      'Pass --weights with a .safetensors file, a folder holding model.safetensors, or a name that "gpt2-studio models" lists.',
    );
  if (existsSync(w)) return w;
  const model = /^model:(.+)$/.exec(w);
  if (model) return importedModelPath(resolveHome({ flag: homeFlag }), model[1]!);
  const ckpt = /^ckpt:([^:]+):(\d+)$/.exec(w);
  if (ckpt) {
    const runDir = runDirOf(resolveHome({ flag: homeFlag }), ckpt[1]!);
    const steps = listCheckpointSteps(runDir);
    const step = Number(ckpt[2]);
    if (!steps.includes(step)) {
      throw new StudioError(
        ErrorCode.NOT_FOUND,
        `--weights ${w}: run ${ckpt[1]} has no checkpoint at step ${step} (in ${checkpointsDir(runDir)}).`,
        steps.length
          ? `Its checkpoints: ${steps.join(', ')}. "gpt2-studio models" lists every model.`
          : 'List the models with "gpt2-studio models".',
      );
    }
    return path.join(checkpointsDir(runDir), checkpointDirName(step));
  }
  return w;
}

export async function openModel(
  weights: string,
  engineName: string,
  backend: string | undefined,
  io: CliIo,
): Promise<{ model: Model; notes: string[] }> {
  const w = loadGpt2Weights(weights);
  const engine = await getEngine(engineName, { backend });
  io.err(`engine: ${engine.info().detail}\n`);
  const model = await engine.createModel(w.config, w.tensors);
  w.tensors.clear();
  return { model, notes: w.notes };
}
