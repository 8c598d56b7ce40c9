/**
 * The GPU machine's check (native/test/gpu/gpu-check.sh) runs there without Node; its CPU half runs here, so that
 * the script, the Node-free parity harness and the step benchmark keep working between sessions with a GPU.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from './shared';

const hasCompilers = ['g++', 'gcc'].every((c) => spawnSync('sh', ['-c', `command -v ${c}`]).status === 0);

describe.skipIf(!hasCompilers)('gpu-check.sh --cpu-only', () => {
  it('builds the engine and the harnesses without Node, passes parity, and measures a training step', () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'gpu-check-'));
    try {
      const r = spawnSync('bash', [path.join(repoRoot, 'native/test/gpu/gpu-check.sh'), '--cpu-only'], {
        env: { ...process.env, OUT: out, GPU_CHECK_BUILD: path.join(out, 'build') },
        encoding: 'utf8',
        timeout: 240_000,
      });
      const summary = fs.readFileSync(path.join(out, 'summary.txt'), 'utf8');
      expect(summary, r.stdout + r.stderr).toContain('parity FP32: pass');
      expect(fs.readFileSync(path.join(out, 'parity-fp32.txt'), 'utf8')).toContain('parity ok');
      const lines = fs
        .readFileSync(path.join(out, 'bench.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      const engine = lines.find((l) => 'lib' in l)!;
      expect(engine).toMatchObject({ precision: 'fp32', B: 2, T: 64, params: 3_323_648 });
      expect(engine.tokens_per_sec as number).toBeGreaterThan(0);
      expect(Number.isFinite(engine.last_loss as number)).toBe(true);
      // the PyTorch peer runs where torch is installed; the same model has the same parameter count
      const peer = lines.find((l) => 'peer' in l);
      if (peer) expect(peer.params).toBe(engine.params);
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  }, 300_000);
});
