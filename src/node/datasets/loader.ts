/**
 * The file-backed data loader: DataLoader (src/core/data/loader.ts) over shard files, llm.c `.bin` or
 * build-nanogpt `.npy`. Every shard's header is checked when the loader opens, so a bad file fails at the start
 * of a run, not hours into it; one shard is held in memory at a time.
 */
import path from 'node:path';
import { DataLoader, type DataLoaderOptions, type ShardSource } from '../../core/data/loader';
import type { Split } from '../../core/data/shard';
import { datasetShardFiles } from './manifest';
import { readShardLayout, readShardTokens } from './shards';

/** Shards read from files; token counts come from the headers, tokens on demand. */
export class FileShardSource implements ShardSource {
  readonly files: readonly string[];
  private readonly counts: number[];

  constructor(files: string[]) {
    this.files = files.map((f) => path.resolve(f));
    this.counts = this.files.map((f) => readShardLayout(f).tokens);
  }

  get count(): number {
    return this.files.length;
  }

  tokens(i: number): number {
    return this.counts[i]!;
  }

  load(i: number): Uint16Array {
    return readShardTokens(this.files[i]!);
  }

  name(i: number): string {
    return this.files[i]!;
  }
}

/** A loader over the given shard files. */
export function openShardLoader(files: string[], opts: DataLoaderOptions): DataLoader {
  return new DataLoader(new FileShardSource(files), opts);
}

/** A loader over one split of a prepared dataset in the workspace. */
export function openDatasetLoader(home: string, dataset: string, split: Split, opts: DataLoaderOptions): DataLoader {
  return openShardLoader(datasetShardFiles(home, dataset, split), opts);
}
