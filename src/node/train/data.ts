/**
 * A run's data: the train and val splits of a prepared dataset, as BatchSources for the trainer.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { RunConfig } from '../../shared/run-config';
import type { DataLoader, LoaderPosition } from '../../core/data/loader';
import type { BatchSource } from '../../core/train/trainer';
import { datasetShardFiles, openDatasetLoader } from '../datasets';
import { fitRows, isSftDataset, readSftSplit, sftSource } from '../datasets/sft';

/** Whether the workspace has a finished dataset with this id. */
export function datasetExists(home: string, id: string): boolean {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(id)) return false;
  return fs.existsSync(path.join(home, 'datasets', id, 'manifest.json'));
}

function source(l: DataLoader): BatchSource {
  return {
    next: () => l.nextBatch(),
    getState: () => l.position,
    setState: (s) => l.restore(s as LoaderPosition),
    reset: () => l.reset(),
  };
}

export function openTrainingData(home: string, c: RunConfig): { train: BatchSource; val?: BatchSource } {
  if (isSftDataset(home, c.dataset)) {
    // SFT: one packed stream per split with a loss mask over the assistant's tokens
    const train = readSftSplit(home, c.dataset, 'train');
    const val = readSftSplit(home, c.dataset, 'val');
    const valOk = val !== null && fitRows(val.tokens.length, c.batch_size, c.seq_len) !== null;
    return { train: sftSource(train!, c.batch_size, c.seq_len), val: valOk ? sftSource(val!, c.batch_size, c.seq_len, { shrinkToFit: true }) : undefined };
  }
  const opts = { B: c.batch_size, T: c.seq_len, rank: 0, world: c.world_size, shuffle: c.shuffle, seed: c.seed };
  const train = source(openDatasetLoader(home, c.dataset, 'train', opts));
  const hasVal = datasetShardFiles(home, c.dataset, 'val').length > 0;
  const val = hasVal ? source(openDatasetLoader(home, c.dataset, 'val', { B: c.batch_size, T: c.seq_len })) : undefined;
  return { train, val };
}
