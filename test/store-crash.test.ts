/**
 * Durability of the run store under SIGKILL: a child process records steps (one transaction each) and prints
 * `ack N` after each commit; the test kills it mid-stream, then checks that the database is sound and that every
 * acknowledged step is there with all of its metrics, and that no step is there in part.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { openStore } from '../src/node/store';
import { CRASH_METRIC_NAMES, TOKENS_PER_STEP, crashMetricsFor } from './support/step-metrics';
import { repoRoot } from './shared';

const RUN_TS = path.join(repoRoot, 'bin/run-ts.mjs');
const WRITER = path.join(repoRoot, 'test/support/record-steps.ts');
const MAX_STEPS = 1_000_000;

const homes: string[] = [];
afterEach(() => {
  for (const h of homes.splice(0)) rmSync(h, { recursive: true, force: true });
});

interface KilledWriter {
  lastAck: number;
  /** acks out of sequence (should be none) */
  badAcks: string[];
  signal: NodeJS.Signals | null;
  code: number | null;
  stderr: string;
}

/** Starts the writer and SIGKILLs it once it has acknowledged `killAfter` steps. */
function runAndKill(home: string, runId: string, killAfter: number): Promise<KilledWriter> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [RUN_TS, WRITER, home, runId, String(MAX_STEPS)], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let lastAck = 0;
    let pending = '';
    let stderr = '';
    let killed = false;
    const badAcks: string[] = [];
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop() ?? ''; // an unfinished line is not an acknowledgement
      for (const line of lines) {
        const m = /^ack (\d+)$/.exec(line);
        if (!m) continue;
        const n = Number(m[1]);
        if (n !== lastAck + 1) badAcks.push(`ack ${n} after ack ${lastAck}`);
        lastAck = n;
      }
      if (!killed && lastAck >= killAfter) {
        killed = true;
        child.kill('SIGKILL');
      }
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    // 'close' waits for stdout to drain, so acks written before the kill are all counted.
    child.on('close', (code, signal) => resolve({ lastAck, badAcks, signal, code, stderr }));
  });
}

describe('store durability under SIGKILL', () => {
  // Three kill points, random each time (printed, to reproduce a failure).
  for (const round of [1, 2, 3]) {
    it(`round ${round}: integrity_check is ok and every acknowledged step is present, whole`, async () => {
      const home = mkdtempSync(path.join(os.tmpdir(), 'gpt2-store-crash-'));
      homes.push(home);
      const setup = openStore(home);
      const run = setup.createRun({ name: 'crash test', config: { dataset: 'x' } });
      setup.updateRun(run.id, { status: 'running' });
      setup.close();

      const killAfter = 200 + Math.floor(Math.random() * 800);
      const w = await runAndKill(home, run.id, killAfter);
      expect(w.stderr).toBe('');
      expect(w.badAcks).toEqual([]);
      expect(w.signal, `the writer should have been killed (exit code ${w.code})`).toBe('SIGKILL');
      expect(w.lastAck, `kill point ${killAfter}`).toBeGreaterThanOrEqual(killAfter);

      // The kill left the connection open: the WAL holds the commits not yet checkpointed into studio.db.
      const wal = path.join(home, 'studio.db-wal');
      expect(existsSync(wal) && statSync(wal).size > 0).toBe(true);

      // A fresh connection, before the studio's own open: recovery from the WAL, then a full check.
      const raw = new Database(path.join(home, 'studio.db'));
      expect(raw.pragma('integrity_check', { simple: true })).toBe('ok');
      expect(raw.pragma('foreign_key_check')).toEqual([]);
      // No step is present in part: every step has all of its metrics or none.
      const counts = raw
        .prepare<[string], { step: number; n: number }>(
          'SELECT step, COUNT(*) AS n FROM metrics WHERE run_id = ? GROUP BY step ORDER BY step',
        )
        .all(run.id);
      raw.close();
      expect(
        counts.filter((c) => c.n !== CRASH_METRIC_NAMES.length),
        'steps stored in part',
      ).toEqual([]);
      const lastStored = counts.length ? counts[counts.length - 1]!.step : 0;
      expect(counts.map((c) => c.step)).toEqual(Array.from({ length: lastStored }, (_, i) => i + 1));
      // Committed-but-not-yet-acknowledged steps may be there too (the kill lands between commit and print).
      expect(lastStored).toBeGreaterThanOrEqual(w.lastAck);
      expect(lastStored).toBeLessThan(MAX_STEPS);

      const store = openStore(home);
      try {
        const series = store.getMetrics(run.id, CRASH_METRIC_NAMES);
        for (const name of CRASH_METRIC_NAMES) {
          const s = series[name]!;
          expect(s.steps.length).toBe(lastStored);
          for (let step = 1; step <= w.lastAck; step++) {
            expect(s.steps[step - 1]).toBe(step);
            expect(s.values[step - 1], `${name} at step ${step}`).toBe(crashMetricsFor(step)[name]);
            expect(s.tokensSeen[step - 1]).toBe(step * TOKENS_PER_STEP);
          }
        }
        // The run's counters were updated in the same transactions as the metrics.
        const after = store.getRun(run.id);
        expect(after?.stepsDone).toBe(lastStored + 1);
        expect(after?.tokensSeen).toBe(lastStored * TOKENS_PER_STEP);
        expect(store.integrityCheck()).toEqual(['ok']);
      } finally {
        store.close();
      }
    });
  }
});
