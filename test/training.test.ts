/**
 * Training runs end to end, through the CLI and real worker processes, on Tiny Shakespeare prepared from
 * ../shared/data: the loss falls; a run killed with SIGKILL resumes bit for bit; the database survives a
 * SIGKILL of the parent.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli/main';
import { readCheckpoint, listCheckpointSteps } from '../src/node/checkpoints/files';
import { hasFixture, repoRoot, sharedPath } from './shared';

const BIN = path.join(repoRoot, 'bin/gpt2-studio.mjs');
const present = hasFixture('data/tinyshakespeare.txt');

/** A small model that learns within seconds per step on a CPU. */
const CONFIG = {
  model: { n_layer: 2, n_head: 2, n_embd: 64, block_size: 64 },
  dataset: 'tinyshakespeare',
  total_batch_size: 512,
  batch_size: 8,
  seq_len: 64,
  max_steps: 40,
  warmup_steps: 4,
  max_lr: 3e-3,
  eval_interval: 0,
  hellaswag_interval: 0,
  sample_interval: 0,
  checkpoint_interval: 0,
  keep_last: 0,
  seed: 7,
};

interface Ev {
  event: string;
  runId?: string;
  step?: number;
  loss?: number;
  status?: string;
}

/** Runs the CLI in a child process, calling onEvent for each JSON line. */
function cli(
  args: string[],
  onEvent: (e: Ev, child: ChildProcess) => void = () => {},
  opts: { group?: boolean } = {},
): {
  child: ChildProcess;
  done: Promise<{ code: number | null; signal: string | null; events: Ev[]; stderr: string }>;
} {
  // group: the CLI leads a process group of its own, as a command typed in a terminal does (Ctrl-C signals the group)
  const child = spawn(process.execPath, [BIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: opts.group ?? false,
  });
  const events: Ev[] = [];
  let buf = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (!line.startsWith('{')) continue;
      const e = JSON.parse(line) as Ev;
      events.push(e);
      onEvent(e, child);
    }
  });
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<{ code: number | null; signal: string | null; events: Ev[]; stderr: string }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal, events, stderr })),
  );
  return { child, done };
}

const stepLosses = (events: Ev[]) =>
  new Map(events.filter((e) => e.event === 'run-step').map((e) => [e.step!, e.loss!]));

describe.skipIf(!present)('training runs (CLI, worker processes, SQLite)', () => {
  let home: string;
  let configFile: string;

  beforeAll(async () => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-train-'));
    const code = await main(
      ['prepare', 'tinyshakespeare', '--file', sharedPath('data/tinyshakespeare.txt'), '--home', home],
      { out: () => {}, err: () => {} },
    );
    expect(code).toBe(0);
    configFile = path.join(home, 'config.json');
    fs.writeFileSync(configFile, JSON.stringify(CONFIG));
  });
  afterAll(() => fs.rmSync(home, { recursive: true, force: true }));

  it('the loss falls on Tiny Shakespeare: 40 steps take it from about 10.8 to below 7.5', async () => {
    const r = await cli(['train', '--config', configFile, '--home', home, '--json']).done;
    expect(r.code, r.stderr).toBe(0);
    const losses = [...stepLosses(r.events).values()];
    expect(losses).toHaveLength(40);
    const first = losses[0];
    const last5 = losses.slice(-5).reduce((a, b) => a + b, 0) / 5;
    // measured: first 10.79, mean of the last five about 6.5 (a drop of about 4.3 nats)
    expect(first).toBeGreaterThan(10.5);
    expect(last5).toBeLessThan(7.5);
    expect(r.events.at(-1)).toMatchObject({ event: 'run-status', status: 'done' });
  });

  it('a run killed with SIGKILL after a checkpoint resumes with bitwise identical losses and final weights', async () => {
    const cfg = { ...CONFIG, max_steps: 24, checkpoint_interval: 8, name: 'straight' };
    const f1 = path.join(home, 'straight.json');
    fs.writeFileSync(f1, JSON.stringify(cfg));
    const straight = await cli(['train', '--config', f1, '--home', home, '--json']).done;
    expect(straight.code, straight.stderr).toBe(0);
    const straightId = straight.events[0]!.runId!;

    // the same run, its worker killed with SIGKILL at a step after the step-8 checkpoint
    const killAt = 10 + Math.floor(Math.random() * 4);
    let runId = '';
    const killed = cli(['train', '--config', f1, '--home', home, '--json'], (e) => {
      if (e.event === 'run') runId = e.runId!;
      if (e.event === 'run-step' && e.step === killAt) {
        const db = new Database(path.join(home, 'studio.db'), { readonly: true, fileMustExist: true });
        const row = db.prepare('SELECT pid FROM runs WHERE id = ?').get(runId) as { pid: number };
        db.close();
        process.kill(row.pid, 'SIGKILL');
      }
    });
    const k = await killed.done;
    expect(k.code).toBe(1);
    expect(k.events.at(-1)).toMatchObject({ event: 'run-status', status: 'interrupted' });
    expect(listCheckpointSteps(path.join(home, 'runs', runId))).toEqual([8]);

    const resumed = await cli(['resume', runId, '--home', home, '--json']).done;
    expect(resumed.code, resumed.stderr).toBe(0);
    const a = stepLosses(straight.events);
    const b = stepLosses(resumed.events);
    expect([...b.keys()]).toEqual(Array.from({ length: 16 }, (_, i) => 8 + i));
    for (const [step, loss] of b) expect(loss, `step ${step}`).toBe(a.get(step));

    const wa = readCheckpoint(path.join(home, 'runs', straightId, 'checkpoints', 'step_000024')).weights;
    const wb = readCheckpoint(path.join(home, 'runs', runId, 'checkpoints', 'step_000024')).weights;
    for (const [name, t] of wa)
      expect(Buffer.from(wb.get(name)!.data.buffer).equals(Buffer.from(t.data.buffer)), name).toBe(true);

    // the store holds one series without gaps or duplicates, steps 0..23
    const db = new Database(path.join(home, 'studio.db'), { readonly: true });
    const steps = db
      .prepare("SELECT step FROM metrics WHERE run_id = ? AND name = 'train/loss' ORDER BY step")
      .all(runId) as { step: number }[];
    const status = (db.prepare('SELECT status FROM runs WHERE id = ?').get(runId) as { status: string }).status;
    db.close();
    expect(steps.map((s) => s.step)).toEqual(Array.from({ length: 24 }, (_, i) => i));
    expect(status).toBe('done');
  });

  it('Ctrl-C in a terminal (SIGINT to the whole process group) checkpoints the run and stops it', async () => {
    let runId = '';
    const r = cli(
      ['train', '--config', configFile, '--home', home, '--json', '--name', 'ctrl-c'],
      (e, child) => {
        if (e.event === 'run') runId = e.runId!;
        if (e.event === 'run-step' && e.step === 2) process.kill(-child.pid!, 'SIGINT');
      },
      { group: true },
    );
    const k = await r.done;
    expect(k.code, k.stderr).toBe(0);
    expect(k.stderr).toMatch(/stopping: the run saves a checkpoint/);
    expect(k.events.at(-1)).toMatchObject({ event: 'run-status', status: 'stopped' });
    const steps = listCheckpointSteps(path.join(home, 'runs', runId));
    expect(steps.length).toBe(1);
    expect(steps[0]).toBeGreaterThanOrEqual(3);
  });

  it('a reader that goes away ("train --json | head") stops the run with a checkpoint instead of crashing it', async () => {
    let runId = '';
    const r = cli(['train', '--config', configFile, '--home', home, '--json', '--name', 'epipe'], (e, child) => {
      if (e.event === 'run') runId = e.runId!;
      if (e.event === 'run-step' && e.step === 1) child.stdout!.destroy();
    });
    const k = await r.done;
    expect(k.code, k.stderr).toBe(0);
    expect(k.stderr).not.toMatch(/EPIPE|Unhandled/);
    expect(k.stderr).toMatch(/output closed: the run saves a checkpoint/);
    const db = new Database(path.join(home, 'studio.db'), { readonly: true });
    const status = (db.prepare('SELECT status FROM runs WHERE id = ?').get(runId) as { status: string }).status;
    db.close();
    expect(status).toBe('stopped');
    expect(listCheckpointSteps(path.join(home, 'runs', runId)).length).toBe(1);
  });

  it('--set max_steps below the warmup lowers the warmup to fit, and says so', async () => {
    const r = await cli(['train', '--config', configFile, '--home', home, '--json', '--set', 'max_steps=2']).done;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('note: warmup_steps lowered from 4 to 2 to fit max_steps');
    expect(r.events.filter((e) => e.event === 'run-step').map((e) => e.step)).toEqual([0, 1]);
  });

  it('resuming a run that never saved a checkpoint says that it starts again from step 0', async () => {
    let runId = '';
    const killed = await cli(
      ['train', '--config', configFile, '--home', home, '--json', '--name', 'no-checkpoint'],
      (e) => {
        if (e.event === 'run') runId = e.runId!;
        if (e.event === 'run-step' && e.step === 2) {
          const db = new Database(path.join(home, 'studio.db'), { readonly: true, fileMustExist: true });
          const row = db.prepare('SELECT pid FROM runs WHERE id = ?').get(runId) as { pid: number };
          db.close();
          process.kill(row.pid, 'SIGKILL');
        }
      },
    ).done;
    expect((killed.events.at(-1) as { error?: { hint?: string } }).error?.hint).toMatch(
      /It had no checkpoint yet, so resuming starts it again from step 0/,
    );
    const again = cli(['resume', runId, '--home', home, '--json'], (e, child) => {
      if (e.event === 'run-step') child.kill('SIGKILL');
    });
    const r = await again.done;
    const warn = r.events.find(
      (e) =>
        e.event === 'run-log' &&
        /has no checkpoint, so it starts again from step 0/.test((e as { message?: string }).message ?? ''),
    );
    expect(warn, r.stderr).toBeDefined();
    expect(r.events.find((e) => e.event === 'run-step')?.step).toBe(0);
  });

  it('after a SIGKILL of the parent mid-run, integrity_check is ok and every acknowledged step is in the database', async () => {
    let runId = '';
    let lastAck = -1;
    const target = 5 + Math.floor(Math.random() * 10);
    const r = cli(['train', '--config', configFile, '--home', home, '--json'], (e, child) => {
      if (e.event === 'run') runId = e.runId!;
      if (e.event === 'run-step') {
        lastAck = e.step!; // printed only after the step was committed to SQLite
        if (e.step === target) child.kill('SIGKILL');
      }
    });
    const k = await r.done;
    expect(k.signal).toBe('SIGKILL');
    const db = new Database(path.join(home, 'studio.db'));
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    const rows = db.prepare('SELECT step, name FROM metrics WHERE run_id = ? AND step <= ?').all(runId, lastAck) as {
      step: number;
      name: string;
    }[];
    db.close();
    for (let s = 0; s <= lastAck; s++) {
      // the system samples (sys/*) are recorded beside the steps, at the step they were taken in
      const names = rows
        .filter((x) => x.step === s && !x.name.startsWith('sys/'))
        .map((x) => x.name)
        .sort();
      expect(names, `step ${s}`).toEqual(['train/dt_ms', 'train/loss', 'train/lr', 'train/norm', 'train/tok_per_sec']);
    }
    // the orphaned worker notices that its parent is gone (between two steps) and exits; then a new studio marks
    // the run interrupted
    const db2 = new Database(path.join(home, 'studio.db'), { readonly: true });
    const pid = (db2.prepare('SELECT pid FROM runs WHERE id = ?').get(runId) as { pid: number | null }).pid;
    db2.close();
    const alive = (p: number) => {
      try {
        process.kill(p, 0);
        return true;
      } catch {
        return false;
      }
    };
    for (let i = 0; i < 600 && pid && alive(pid); i++) await new Promise((res) => setTimeout(res, 100));
    expect(pid && alive(pid)).toBeFalsy();
    let out = '';
    await main(['runs', '--home', home, '--json'], { out: (s) => (out += s), err: () => {} });
    const run = (JSON.parse(out) as { id: string; status: string }[]).find((x) => x.id === runId);
    expect(run?.status).toBe('interrupted');
  });
});
