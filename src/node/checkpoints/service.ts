/**
 * Checkpoints across runs: the list (with val loss, HellaSwag, size), delete (aware of keep_last), export to an
 * HF folder, and "resume from here": a new run that continues from a checkpoint, leaving the original untouched.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ErrorCode, StudioError } from '../../shared/errors';
import { totalSteps, checkRunConfig } from '../../shared/run-config';
import {
  checkpointDirName,
  checkpointsDir,
  listCheckpointSteps,
  readCheckpointState,
  type CheckpointState,
} from './files';
import { fsyncDir } from '../fsutil';
import { readSafetensorsHeader } from '../models/safetensors';
import { HF_TOKENIZER_FILES, hfTokenizerFiles } from '../../core/hf-tokenizer';
import type { Run, Store } from '../store';
import { runDirOf } from '../train/paths';
import { runNotFound } from '../runs/runs-table';
import type { RunManager } from '../runs/manager';
import type { CheckpointEntry, CheckpointDeleted, CheckpointExported } from '../../shared/api/checkpoints';
export type { CheckpointEntry, CheckpointDeleted, CheckpointExported };

/** The files of an HF GPT-2 folder, as a checkpoint holds them (written by exportGpt2Weights). */
const HF_FILES = ['model.safetensors', 'config.json'] as const;
/** The files of a checkpoint that a branch shares with its source (hard links): written once, never changed. */
const SHARED_FILES = ['model.safetensors', 'optimizer.safetensors', 'config.json'] as const;

const keepLastOf = (run: Run): number => {
  const k = run.config.keep_last;
  return typeof k === 'number' && Number.isInteger(k) && k >= 0 ? k : 3;
};

/** What keep_last means for a run, after one of its checkpoints is deleted. */
function keepLastNote(run: Run, keepLast: number): string {
  if (keepLast === 0)
    return `keep_last is 0 for "${run.name}": the run keeps every checkpoint it writes; none is removed automatically.`;
  const active = run.status === 'running';
  return active
    ? `keep_last is ${keepLast} for "${run.name}": as it trains on, it keeps its newest ${keepLast} checkpoint${keepLast === 1 ? '' : 's'} and removes older ones.`
    : `keep_last is ${keepLast} for "${run.name}": when it is resumed, it keeps its newest ${keepLast} checkpoint${keepLast === 1 ? '' : 's'} and removes older ones; until then nothing else is removed.`;
}

function fsyncFile(file: string): void {
  const fd = fs.openSync(file, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** The context length (n_positions) of a checkpoint's HF config.json, which the exported tokenizer reports. */
function contextOf(configFile: string): number {
  let n: unknown;
  try {
    n = (JSON.parse(fs.readFileSync(configFile, 'utf8')) as { n_positions?: unknown }).n_positions;
  } catch (e) {
    throw new StudioError(
      ErrorCode.BAD_CHECKPOINT,
      `Checkpoint ${configFile} cannot be read as JSON: ${(e as Error).message}.`,
      'The checkpoint is damaged; export another one.',
      { cause: e },
    );
  }
  if (typeof n !== 'number' || !Number.isInteger(n) || n <= 0)
    throw new StudioError(
      ErrorCode.BAD_CHECKPOINT,
      `Checkpoint ${configFile} has n_positions ${JSON.stringify(n)}, not a positive whole number.`,
      'The checkpoint is damaged; export another one.',
    );
  return n;
}

export class CheckpointService {
  constructor(
    private readonly home: string,
    private readonly store: () => Store,
    private readonly runs: () => RunManager,
  ) {}

  /** Checkpoints of one run, or of every run, newest first; rows whose folder is gone are left out. */
  list(arg?: { runId?: string }): CheckpointEntry[] {
    const store = this.store();
    const runs = new Map<string, Run>();
    if (arg?.runId !== undefined) {
      runs.set(arg.runId, this.requireRun(arg.runId));
    } else {
      for (const r of store.listRuns({ limit: 100_000 })) runs.set(r.id, r);
    }
    const rows = store.listCheckpoints(arg?.runId).filter((c) => runs.has(c.runId) && fs.existsSync(c.path));
    const newest = new Map<string, number>();
    for (const c of rows) newest.set(c.runId, Math.max(newest.get(c.runId) ?? -1, c.step));
    return rows
      .map((c): CheckpointEntry => {
        const run = runs.get(c.runId)!;
        return {
          ...c,
          runName: run.name,
          runStatus: run.status,
          keepLast: keepLastOf(run),
          latest: newest.get(c.runId) === c.step,
          sft: run.config.sft === true,
        };
      })
      .sort(
        (a, b) => b.createdAt - a.createdAt || (a.runId < b.runId ? -1 : a.runId > b.runId ? 1 : 0) || b.step - a.step,
      );
  }

  /**
   * Deletes a checkpoint: its folder and its row. The newest checkpoint of a running run is refused (the run
   * resumes from it, and keep_last manages the others). Says what keep_last will do from now on.
   */
  remove(arg: { runId: string; step: number }): CheckpointDeleted {
    const run = this.requireRun(arg.runId);
    const dir = this.dirOf(arg.runId, arg.step);
    const onDisk = listCheckpointSteps(runDirOf(this.home, arg.runId));
    const row = this.store()
      .listCheckpoints(arg.runId)
      .find((c) => c.step === arg.step);
    if (!row && !onDisk.includes(arg.step)) throw this.noCheckpoint(run, arg.step, onDisk);
    const newest = onDisk.length ? onDisk[onDisk.length - 1] : undefined;
    if (run.status === 'running' && newest === arg.step) {
      throw new StudioError(
        ErrorCode.BAD_ARGUMENT,
        `Step ${arg.step} is the newest checkpoint of "${run.name}" (${run.id}), which is running; it cannot be deleted now.`,
        'The run resumes from its newest checkpoint and keep_last removes old ones: stop the run first, or delete an older checkpoint.',
      );
    }
    if (fs.existsSync(dir)) {
      // out of the way under a hidden name first, so that a crash never leaves a half-deleted step_NNNNNN
      const trash = path.join(path.dirname(dir), `.deleting-${path.basename(dir)}-${process.pid}`);
      fs.rmSync(trash, { recursive: true, force: true });
      fs.renameSync(dir, trash);
      fsyncDir(path.dirname(dir));
      fs.rmSync(trash, { recursive: true, force: true });
    }
    this.store().deleteCheckpoint(arg.runId, arg.step);
    return { deleted: true, note: keepLastNote(run, keepLastOf(run)) };
  }

  /**
   * Writes a checkpoint as an HF GPT-2 folder: model.safetensors + config.json, and GPT-2's tokenizer and
   * generation files (vocab.json, merges.txt, tokenizer.json, ...), so `AutoTokenizer` and
   * `AutoModelForCausalLM.from_pretrained` load it as it is. The folder is written beside `dest` under a temporary
   * name, then renamed into place; a folder that holds anything is refused unless `overwrite`, and then only those
   * files are replaced (other files in it are left alone).
   */
  export(arg: { runId: string; step: number; dest: string; overwrite?: boolean }): CheckpointExported {
    const run = this.requireRun(arg.runId);
    const src = this.existingDir(run, arg.step);
    if (!arg.dest.trim())
      throw new StudioError(
        ErrorCode.BAD_ARGUMENT,
        'The export folder is empty.',
        'Give the folder to write the model, its config and its tokenizer into.',
      );
    const dir = path.resolve(arg.dest);
    for (const f of HF_FILES) {
      if (!fs.existsSync(path.join(src, f))) {
        throw new StudioError(
          ErrorCode.BAD_CHECKPOINT,
          `Checkpoint ${src} has no ${f}.`,
          'The checkpoint is damaged; export another one.',
        );
      }
    }
    // a readable safetensors header and config, before anything is written
    readSafetensorsHeader(path.join(src, 'model.safetensors'));
    const tokenizerFiles = hfTokenizerFiles({ modelMaxLength: contextOf(path.join(src, 'config.json')) });

    let existing: string[] | null = null;
    if (fs.existsSync(dir)) {
      if (!fs.statSync(dir).isDirectory()) {
        throw new StudioError(
          ErrorCode.BAD_ARGUMENT,
          `The export destination ${dir} is a file, not a folder.`,
          'Choose a new or empty folder.',
        );
      }
      existing = fs.readdirSync(dir);
      if (existing.length > 0 && !arg.overwrite) {
        throw new StudioError(
          ErrorCode.BAD_ARGUMENT,
          `The export folder ${dir} is not empty (${existing.length} item${existing.length === 1 ? '' : 's'}: ${existing.slice(0, 3).join(', ')}${existing.length > 3 ? ', …' : ''}).`,
          `Choose a new or empty folder, or allow overwriting (${[...HF_FILES, ...HF_TOKENIZER_FILES].join(', ')} there are replaced; other files are kept).`,
        );
      }
    }
    const parent = path.dirname(dir);
    try {
      fs.mkdirSync(parent, { recursive: true });
    } catch (e) {
      throw new StudioError(
        ErrorCode.BAD_ARGUMENT,
        `Cannot create the folder ${parent}: ${(e as Error).message}.`,
        'Choose a folder you can write to.',
        { cause: e },
      );
    }
    const tmp = path.join(parent, `.${path.basename(dir)}.export-${process.pid}-${Date.now()}`);
    try {
      fs.mkdirSync(tmp);
      for (const f of HF_FILES) {
        fs.copyFileSync(path.join(src, f), path.join(tmp, f));
        fsyncFile(path.join(tmp, f));
      }
      for (const f of HF_TOKENIZER_FILES) {
        fs.writeFileSync(path.join(tmp, f), tokenizerFiles[f]!);
        fsyncFile(path.join(tmp, f));
      }
      fsyncDir(tmp);
      if (existing === null) {
        fs.renameSync(tmp, dir);
      } else if (existing.length === 0) {
        fs.rmdirSync(dir);
        fs.renameSync(tmp, dir);
      } else {
        for (const f of [...HF_FILES, ...HF_TOKENIZER_FILES]) fs.renameSync(path.join(tmp, f), path.join(dir, f));
        fs.rmSync(tmp, { recursive: true, force: true });
        fsyncDir(dir);
      }
      fsyncDir(parent);
    } catch (e) {
      fs.rmSync(tmp, { recursive: true, force: true });
      if (e instanceof StudioError) throw e;
      const err = e as NodeJS.ErrnoException;
      throw new StudioError(
        err.code === 'ENOSPC' ? ErrorCode.DISK_FULL : ErrorCode.BAD_ARGUMENT,
        `Cannot export checkpoint step ${arg.step} of "${run.name}" to ${dir}: ${err.message}.`,
        err.code === 'ENOSPC'
          ? 'Free some disk space, or export to another disk.'
          : 'Check that the folder is writable, or choose another one.',
        { cause: e },
      );
    }
    return { dir, modelFile: path.join(dir, 'model.safetensors'), configFile: path.join(dir, 'config.json') };
  }

  /**
   * "Resume from here": a new run with the same config whose checkpoints folder holds this checkpoint (hard links
   * where the disk allows, else copies; state.json names the new run), whose metrics and samples before that step
   * are copied from the original, and which (unless `start: false`) starts and continues from that step with the
   * checkpoint's optimizer state and data position. The original run is not changed. On a failure, the new run is
   * removed again.
   */
  async branch(arg: { runId: string; step: number; name?: string; start?: boolean }): Promise<Run> {
    const source = this.requireRun(arg.runId);
    const src = this.existingDir(source, arg.step);
    const state = readCheckpointState(src);
    const parsed = checkRunConfig(source.config);
    if (parsed.ok) {
      const max = totalSteps(parsed.config);
      if (arg.step >= max) {
        throw new StudioError(
          ErrorCode.BAD_ARGUMENT,
          `Step ${arg.step} is the end of "${source.name}" (${max} steps): a run from there would have nothing left to train.`,
          'Resume from an earlier checkpoint, or start a new run (New run from this config) with a higher max_steps.',
        );
      }
    }
    const name = arg.name?.trim() || `${source.name} from step ${arg.step}`;
    const runs = this.runs();
    const created = await runs.create({
      config: source.config,
      name,
      preset: source.preset ?? undefined,
      tags: source.tags,
      notes: `Branched from "${source.name}" (${source.id}) at checkpoint step ${arg.step}.${source.notes ? `\n\n${source.notes}` : ''}`,
      start: false,
    });
    const store = this.store();
    try {
      const runDir = runDirOf(this.home, created.id);
      const parent = checkpointsDir(runDir);
      fs.mkdirSync(parent, { recursive: true });
      const final = path.join(parent, checkpointDirName(arg.step));
      const tmp = path.join(parent, `.tmp-${checkpointDirName(arg.step)}-${process.pid}`);
      fs.rmSync(tmp, { recursive: true, force: true });
      fs.mkdirSync(tmp);
      let linked = 0;
      for (const f of SHARED_FILES) {
        const from = path.join(src, f);
        if (!fs.existsSync(from))
          throw new StudioError(
            ErrorCode.BAD_CHECKPOINT,
            `Checkpoint ${src} has no ${f}.`,
            'The checkpoint is damaged; resume from another one.',
          );
        if (linkOrCopy(from, path.join(tmp, f))) linked++;
      }
      const own: CheckpointState = { ...state, runId: created.id };
      const fd = fs.openSync(path.join(tmp, 'state.json'), 'w');
      try {
        fs.writeSync(fd, JSON.stringify(own, null, 2) + '\n');
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      fsyncDir(tmp);
      fs.renameSync(tmp, final);
      fsyncDir(parent);

      const copied = store.copyRunHistory(source.id, created.id, arg.step);
      const row = store.listCheckpoints(source.id).find((c) => c.step === arg.step);
      let size = 0;
      for (const f of fs.readdirSync(final)) size += fs.statSync(path.join(final, f)).size;
      store.addCheckpoint(created.id, {
        step: arg.step,
        path: final,
        sizeBytes: size,
        valLoss: row?.valLoss ?? null,
        hellaswag: row?.hellaswag ?? null,
        createdAt: row?.createdAt,
      });
      store.addLog(
        created.id,
        'info',
        `branched from run ${source.id} ("${source.name}") at checkpoint step ${arg.step}: ${linked === SHARED_FILES.length ? 'weights and optimizer state shared by hard links' : 'checkpoint files copied'}; ${copied.metrics} metric values and ${copied.samples} samples of steps before ${arg.step} copied`,
      );
    } catch (e) {
      try {
        runs.delete(created.id);
      } catch {
        // the error below says what went wrong; a run left behind can be deleted from the Runs page
      }
      throw e;
    }
    if (arg.start === false) return store.getRun(created.id)!;
    return runs.start(created.id);
  }

  // ---- helpers ---------------------------------------------------------------------------------------------

  private requireRun(runId: string): Run {
    const run = this.store().getRun(runId);
    if (!run) throw runNotFound(runId, this.home);
    return run;
  }

  private dirOf(runId: string, step: number): string {
    return path.join(checkpointsDir(runDirOf(this.home, runId)), checkpointDirName(step));
  }

  private noCheckpoint(run: Run, step: number, steps: number[]): StudioError {
    return new StudioError(
      ErrorCode.NOT_FOUND,
      `Run "${run.name}" (${run.id}) has no checkpoint at step ${step}.`,
      steps.length
        ? `Its checkpoints are at steps ${steps.join(', ')}.`
        : 'It has no checkpoints; they are written every checkpoint_interval steps.',
    );
  }

  /** The folder of a checkpoint that exists on disk. */
  private existingDir(run: Run, step: number): string {
    const dir = this.dirOf(run.id, step);
    if (!fs.existsSync(path.join(dir, 'state.json')))
      throw this.noCheckpoint(run, step, listCheckpointSteps(runDirOf(this.home, run.id)));
    return dir;
  }
}

/** Hard-links `from` to `to`, or copies it where links are not possible (another disk, a file system without them); true when linked. */
function linkOrCopy(from: string, to: string): boolean {
  try {
    fs.linkSync(from, to);
    return true;
  } catch {
    fs.copyFileSync(from, to);
    return false;
  }
}
