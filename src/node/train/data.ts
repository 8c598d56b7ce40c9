/**
 * A run's data: the train and val splits of a prepared dataset, as BatchSources for the trainer.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ErrorCode, StudioError } from '../../shared/errors';
import type { RunConfig } from '../../shared/run-config';
import type { DataLoader, LoaderPosition } from '../../core/data/loader';
import type { BatchSource } from '../../core/train/trainer';
import { datasetShardFiles, openDatasetLoader } from '../datasets';
import { fitRows, isSftDataset, readSftSplit, sftSource } from '../datasets/sft';
import { Workspace } from '../workspace';

/** Whether the workspace has a finished dataset with this id. */
export function datasetExists(home: string, id: string): boolean {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(id)) return false;
  return fs.existsSync(path.join(new Workspace(home).dataset(id), 'manifest.json'));
}

function source(l: DataLoader): BatchSource {
  return {
    next: () => l.nextBatch(),
    getState: () => l.position,
    setState: (s) => l.restore(s as LoaderPosition),
    reset: () => l.reset(),
  };
}

/** The run's data; under data parallel, `rank` reads its share of every step (see src/core/data/loader.ts). */
export function openTrainingData(home: string, c: RunConfig, rank = 0): { train: BatchSource; val?: BatchSource } {
  if (isSftDataset(home, c.dataset)) {
    if (c.world_size > 1) {
      throw new StudioError(
        ErrorCode.BAD_ARGUMENT,
        `SFT dataset "${c.dataset}" is read by one process; world_size is ${c.world_size}.`,
        'Set world_size to 1 for fine-tuning.',
      );
    }
    // SFT: one packed stream per split with a loss mask over the assistant's tokens
    const train = readSftSplit(home, c.dataset, 'train');
    const val = readSftSplit(home, c.dataset, 'val');
    const valOk = val !== null && fitRows(val.tokens.length, c.batch_size, c.seq_len) !== null;
    return {
      train: sftSource(train!, c.batch_size, c.seq_len),
      val: valOk ? sftSource(val!, c.batch_size, c.seq_len, { shrinkToFit: true }) : undefined,
    };
  }
  const opts = { B: c.batch_size, T: c.seq_len, rank, world: c.world_size, shuffle: c.shuffle, seed: c.seed };
  const train = source(openDatasetLoader(home, c.dataset, 'train', opts));
  const hasVal = datasetShardFiles(home, c.dataset, 'val').length > 0;
  const val = hasVal ? source(openDatasetLoader(home, c.dataset, 'val', { B: c.batch_size, T: c.seq_len })) : undefined;
  return { train, val };
}
