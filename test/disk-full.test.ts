/**
 * A full disk during a run, on a small tmpfs: the run ends failed with DISK_FULL and the free-space hint (not
 * INTERNAL with an empty hint), and the partial checkpoint is removed. Needs root to mount; skipped with the reason
 * elsewhere.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli/main';
import { Studio } from '../src/node/studio';

const mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-full-'));
let mounted = false;
let why = '';
try {
  // 40 MiB: the dataset, the database and one checkpoint fit; the next checkpoint does not
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=40m', 'tmpfs', mnt], { stdio: 'pipe' });
  mounted = true;
} catch (e) {
  why = `cannot mount a tmpfs here (${(e as Error).message.split('\n')[0]})`;
}

describe.skipIf(!mounted)(`a full disk during a run${mounted ? '' : `: skipped, ${why}`}`, () => {
  const home = path.join(mnt, 'ws');
  let studio: Studio;
  beforeAll(async () => {
    expect(await main(['prepare', 'builtin', '--size-mb', '1', '--home', home], { out: () => {}, err: () => {} })).toBe(
      0,
    );
    studio = new Studio({ home });
  });
  afterAll(async () => {
    await studio?.shutdown(5000);
    try {
      execFileSync('umount', [mnt]);
    } catch {
      // already gone
    }
    fs.rmSync(mnt, { recursive: true, force: true });
  });

  it('ends the run failed with DISK_FULL and the free-space hint, leaving no partial checkpoint', async () => {
    const config = {
      model: { n_layer: 2, n_head: 2, n_embd: 64, block_size: 64 },
      dataset: 'builtin',
      total_batch_size: 128,
      batch_size: 2,
      seq_len: 64,
      max_steps: 50,
      warmup_steps: 1,
      eval_interval: 0,
      hellaswag_interval: 0,
      sample_interval: 0,
      checkpoint_interval: 1,
      keep_last: 0,
    };
    const run = await studio.invoke('runs-create', { config, force: true });
    const end = await studio.runs.wait(run.id);
    expect(end.status).toBe('failed');
    expect(end.error?.code).toBe('DISK_FULL');
    expect(end.error?.hint).toMatch(/Free space on the disk that holds/);
    const left = fs.readdirSync(path.join(home, 'runs', run.id, 'checkpoints')).filter((n) => n.startsWith('.'));
    expect(left).toEqual([]);
  }, 120_000);
});
