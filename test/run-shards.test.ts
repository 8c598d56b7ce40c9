/** A damaged shard is refused before the run is created (not as a failed run at its first step, reported twice). */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli/main';
import { Studio } from '../src/node/studio';

describe('shards named in a config are checked before a run exists', () => {
  let home: string;
  let studio: Studio;
  beforeAll(async () => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-shards-'));
    expect(await main(['prepare', 'builtin', '--size-mb', '1', '--home', home], { out: () => {}, err: () => {} })).toBe(
      0,
    );
    studio = new Studio({ home });
  });
  afterAll(async () => {
    await studio.shutdown(5000);
    fs.rmSync(home, { recursive: true, force: true });
  });

  it('a truncated train shard: the dataset field names the file, and no run is created', async () => {
    const dir = path.join(home, 'datasets', 'builtin');
    const shard = fs.readdirSync(dir).find((f) => /train.*\.bin$/.test(f))!;
    const file = path.join(dir, shard);
    fs.truncateSync(file, fs.statSync(file).size - 1001);
    const config = {
      model: { n_layer: 1, n_head: 2, n_embd: 32, block_size: 64 },
      dataset: 'builtin',
      total_batch_size: 128,
      batch_size: 2,
      seq_len: 64,
      max_steps: 2,
      warmup_steps: 1,
    };
    const errors = await studio.invoke('config-validate', { config });
    expect(errors.find((e) => e.field === 'dataset')?.message).toContain(shard);
    await expect(studio.invoke('runs-create', { config })).rejects.toThrow(/dataset: .*builtin/);
    expect(await studio.invoke('runs-list')).toEqual([]);
  });
});
