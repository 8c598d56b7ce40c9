/**
 * Models: GPT-2 weights imported into the workspace (`models/<id>/model.safetensors` + `config.json` +
 * `meta.json`), and every run's checkpoints, listed together so that every page can offer the same choice.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ErrorCode, StudioError } from '../../shared/errors';
import type { ModelEntry, ModelTarget } from '../../shared/models';
import { paramCount, toHfConfig, type GPTConfig } from '../../core/model/config';
import { readCheckpointState } from '../checkpoints/files';
import { fsyncDir, folderBytes, writeFileAtomic } from '../fsutil';
import type { Store } from '../store';
import { inspectWeights } from '../generation/remote-model';
import { Workspace } from '../workspace';

const META_FILE = 'meta.json';
const MODEL_ID = /^[a-z0-9][a-z0-9._-]{0,63}$/;

interface ModelMeta {
  format: 'gpt2-studio-model';
  version: 1;
  id: string;
  name: string;
  /** the file it was imported from */
  source: string;
  importedAt: number;
  config: GPTConfig;
  notes: string[];
}

export const modelsDir = (home: string): string => new Workspace(home).models;

/** The folder of an imported model; refuses an id that is not a plain folder name. */
export function modelDir(home: string, id: string): string {
  if (!MODEL_ID.test(id)) {
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `"${id}" is not a model id.`,
      'Model ids are lowercase letters, digits, ".", "_" and "-" (see models-list).',
    );
  }
  return new Workspace(home).model(id);
}

/** A model id from a name: lowercase, other characters as "-", made unique in the workspace. */
export function newModelId(home: string, name: string): string {
  const base =
    name
      .toLowerCase()
      .replace(/[^a-z0-9._-]+/g, '-')
      .replace(/^[-._]+|[-._]+$/g, '')
      .slice(0, 56) || 'model';
  let id = base;
  for (let i = 2; fs.existsSync(path.join(modelsDir(home), id)); i++) id = `${base}-${i}`;
  return id;
}

function readMeta(dir: string): ModelMeta | null {
  try {
    const m = JSON.parse(fs.readFileSync(path.join(dir, META_FILE), 'utf8')) as ModelMeta;
    return m.format === 'gpt2-studio-model' && m.config ? m : null;
  } catch {
    return null;
  }
}

function shapeOf(c: GPTConfig) {
  return {
    params: paramCount(c),
    nLayer: c.nLayer,
    nHead: c.nHead,
    nEmbd: c.nEmbd,
    blockSize: c.blockSize,
    vocabSize: c.vocabSize,
  };
}

function importedEntry(dir: string, m: ModelMeta): ModelEntry {
  return {
    key: `model:${m.id}`,
    kind: 'imported',
    label: `${m.name} (imported)`,
    target: { modelId: m.id },
    ...shapeOf(m.config),
    sft: false,
    sizeBytes: folderBytes(dir),
    createdAt: m.importedAt,
  };
}

/**
 * What makes a checkpoint's weights the same file as another's: the device and inode of its model.safetensors (a
 * branched run shares its source's checkpoint by hard links), else the checkpoint folder's real path.
 */
export function weightsIdentity(checkpointDir: string): string {
  try {
    const st = fs.statSync(path.join(checkpointDir, 'model.safetensors'), { bigint: true });
    return `inode:${st.dev}:${st.ino}`;
  } catch {
    try {
      return `path:${fs.realpathSync(checkpointDir)}`;
    } catch {
      return `path:${path.resolve(checkpointDir)}`;
    }
  }
}

/**
 * One entry per weights file, in the order given: where several checkpoints are the same file (a branch and the run
 * it came from), the one of the run created first is kept, the run that made it.
 */
export function onePerWeightsFile(
  checkpoints: readonly { entry: ModelEntry; identity: string; runCreatedAt: number }[],
): ModelEntry[] {
  const maker = new Map<string, { key: string; runCreatedAt: number }>();
  for (const c of checkpoints) {
    const best = maker.get(c.identity);
    if (!best || c.runCreatedAt < best.runCreatedAt)
      maker.set(c.identity, { key: c.entry.key, runCreatedAt: c.runCreatedAt });
  }
  return checkpoints.filter((c) => maker.get(c.identity)?.key === c.entry.key).map((c) => c.entry);
}

export class ModelService {
  constructor(
    private readonly home: string,
    private readonly store: () => Store,
    /** the model worker's entry, where imported weights are checked (default: the sources') */
    private readonly workerEntry?: string,
  ) {}

  /** Imported models (newest first), then checkpoints (newest first). */
  list(): ModelEntry[] {
    const out: ModelEntry[] = [];
    const root = modelsDir(this.home);
    const imported: ModelEntry[] = [];
    for (const name of fs.existsSync(root) ? fs.readdirSync(root) : []) {
      if (!MODEL_ID.test(name)) continue;
      const dir = path.join(root, name);
      const m = readMeta(dir);
      if (m) imported.push(importedEntry(dir, m));
    }
    imported.sort((a, b) => b.createdAt - a.createdAt);
    out.push(...imported);
    const store = this.store();
    const runs = store.listRuns();
    const names = new Map(runs.map((r) => [r.id, r.name]));
    const created = new Map(runs.map((r) => [r.id, r.createdAt]));
    const checkpoints: { entry: ModelEntry; identity: string; runCreatedAt: number }[] = [];
    for (const c of store.listCheckpoints()) {
      if (!fs.existsSync(c.path)) continue;
      let state;
      try {
        state = readCheckpointState(c.path);
      } catch {
        continue; // a damaged checkpoint cannot be loaded, so it is not offered
      }
      const runName = names.get(c.runId) ?? c.runId;
      const entry: ModelEntry = {
        key: `ckpt:${c.runId}:${c.step}`,
        kind: 'checkpoint',
        label: `${runName} · step ${c.step}`,
        target: { runId: c.runId, step: c.step },
        ...shapeOf(state.modelConfig),
        sft: state.runConfig.sft === true,
        runId: c.runId,
        runName,
        step: c.step,
        valLoss: c.valLoss,
        hellaswag: c.hellaswag,
        sizeBytes: c.sizeBytes,
        createdAt: c.createdAt,
      };
      checkpoints.push({
        entry,
        identity: weightsIdentity(c.path),
        runCreatedAt: created.get(c.runId) ?? Number.POSITIVE_INFINITY,
      });
    }
    out.push(...onePerWeightsFile(checkpoints));
    return out;
  }

  /**
   * Imports GPT-2 weights: a .safetensors file, or a folder with model.safetensors (and config.json). They are
   * checked by loading them, then copied into models/<id>/ through a temporary folder, so that a failed import
   * leaves nothing behind.
   */
  async import(arg: { path: string; name?: string }): Promise<ModelEntry> {
    const src = path.resolve(arg.path);
    if (!fs.existsSync(src)) {
      throw new StudioError(
        ErrorCode.FILE_NOT_FOUND,
        `Nothing to import at ${src}.`,
        'Pick a model.safetensors file, or a folder that holds one (with its config.json).',
      );
    }
    // read and check in a worker thread, and copy asynchronously: a 500 MB file does not hold up the service
    const loaded = await inspectWeights(src, this.workerEntry);
    const fallback = fs.statSync(src).isDirectory() ? path.basename(src) : path.basename(path.dirname(loaded.file));
    const name = (arg.name ?? '').trim() || fallback || 'gpt2';
    const id = newModelId(this.home, name);
    const dir = modelDir(this.home, id);
    const tmp = path.join(modelsDir(this.home), `.import-${id}-${process.pid}`);
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.mkdirSync(tmp, { recursive: true });
    try {
      const copy = path.join(tmp, 'model.safetensors');
      await fs.promises.copyFile(loaded.file, copy);
      // on disk before the folder is renamed into place, so that a crash never leaves a short file in models/
      const fh = await fs.promises.open(copy, 'r+');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      const meta: ModelMeta = {
        format: 'gpt2-studio-model',
        version: 1,
        id,
        name,
        source: loaded.file,
        importedAt: Date.now(),
        config: loaded.config,
        notes: loaded.notes,
      };
      writeFileAtomic(path.join(tmp, 'config.json'), JSON.stringify(toHfConfig(loaded.config), null, 2) + '\n');
      writeFileAtomic(path.join(tmp, META_FILE), JSON.stringify(meta, null, 2) + '\n');
      fsyncDir(tmp);
      fs.renameSync(tmp, dir);
      fsyncDir(modelsDir(this.home));
      return importedEntry(dir, meta);
    } catch (e) {
      fs.rmSync(tmp, { recursive: true, force: true });
      if (e instanceof StudioError) throw e;
      const err = e as NodeJS.ErrnoException;
      throw new StudioError(
        err.code === 'ENOSPC' ? ErrorCode.DISK_FULL : ErrorCode.INTERNAL,
        `Copying ${loaded.file} into ${dir} failed: ${err.message}`,
        err.code === 'ENOSPC'
          ? 'Free some disk space, then import again.'
          : 'Check that the workspace folder is writable.',
        { cause: e },
      );
    }
  }

  /**
   * Deletes an imported model. Only a folder the studio imported (with its meta.json) is removed, and it is first
   * renamed out of the way, so that a crash never leaves a half-deleted model in the list.
   */
  remove(arg: { id: string }): { removed: boolean } {
    const dir = modelDir(this.home, arg.id);
    if (!fs.existsSync(dir)) return { removed: false };
    if (!readMeta(dir)) {
      throw new StudioError(
        ErrorCode.NOT_FOUND,
        `${dir} is not a model imported by the studio (it has no ${META_FILE}).`,
        'Only imported models are removed here; delete other folders yourself.',
      );
    }
    const trash = path.join(modelsDir(this.home), `.deleting-${arg.id}-${process.pid}`);
    fs.rmSync(trash, { recursive: true, force: true });
    fs.renameSync(dir, trash);
    fsyncDir(modelsDir(this.home));
    fs.rmSync(trash, { recursive: true, force: true });
    return { removed: true };
  }
}

/** The folder of an imported model (what the weights loader reads). */
export function importedModelPath(home: string, id: string): string {
  const dir = modelDir(home, id);
  if (!readMeta(dir)) {
    throw new StudioError(
      ErrorCode.NOT_FOUND,
      `No imported model "${id}" in ${modelsDir(home)}.`,
      'List the models with models-list, or import GPT-2 weights first.',
    );
  }
  return dir;
}

/** A target with an imported model turned into its folder. */
export function resolveModelTarget(
  home: string,
  t: ModelTarget,
): { runId: string; step?: number } | { weightsPath: string } {
  return 'modelId' in t ? { weightsPath: importedModelPath(home, t.modelId) } : t;
}
