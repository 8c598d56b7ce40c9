import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ExampleResult } from '../src/core/evals/hellaswag';
import { ErrorCode, StudioError } from '../src/shared/errors';
import {
  DATABASE_FILE,
  MIGRATIONS,
  SCHEMA_VERSION,
  type Migration,
  type Store,
  type StoreOptions,
  migrate,
  newId,
  openStore,
} from '../src/node/store';

let home: string;
const open: Store[] = [];
beforeEach(() => {
  home = mkdtempSync(path.join(os.tmpdir(), 'gpt2-store-'));
});
afterEach(() => {
  for (const s of open.splice(0)) s.close();
  rmSync(home, { recursive: true, force: true });
});

function store(opts: StoreOptions = {}): Store {
  const s = openStore(home, opts);
  open.push(s);
  return s;
}

const dbFile = () => path.join(home, DATABASE_FILE);
const sha = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

/** A second, raw connection to the same file (what another process would see). */
function raw(): Database.Database {
  const db = new Database(dbFile());
  db.pragma('foreign_keys = ON');
  return db;
}

function schemaOf(db: Database.Database): Array<{ type: string; name: string; sql: string | null }> {
  return db
    .prepare<[], { type: string; name: string; sql: string | null }>(
      'SELECT type, name, sql FROM sqlite_master ORDER BY name',
    )
    .all();
}

/** Runs fn and returns the StudioError it throws (failing the test if it throws anything else or nothing). */
function studioError(fn: () => unknown): StudioError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(StudioError);
    return e as StudioError;
  }
  throw new Error('expected a StudioError, but nothing was thrown');
}

const TABLES = [
  'chat_messages',
  'checkpoints',
  'conversations',
  'eval_examples',
  'evals',
  'logs',
  'metrics',
  'runs',
  'samples',
];

describe('opening and migrations', () => {
  it('creates and migrates a new database: every table, user_version, WAL, foreign keys, synchronous NORMAL', () => {
    const s = store();
    expect(existsSync(dbFile())).toBe(true);
    s.close();
    const db = raw();
    try {
      expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
      expect(SCHEMA_VERSION).toBe(MIGRATIONS.length);
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
      const tables = schemaOf(db)
        .filter((o) => o.type === 'table')
        .map((o) => o.name);
      expect(tables).toEqual(TABLES);
    } finally {
      db.close();
    }
    // the per-connection pragmas, as the store's own connection has them
    expect(store().info()).toMatchObject({
      file: dbFile(),
      schemaVersion: SCHEMA_VERSION,
      journalMode: 'wal',
      synchronous: 'normal',
      foreignKeys: true,
      busyTimeoutMs: 5000,
    });
    expect(store({ durability: 'full', busyTimeoutMs: 250 }).info()).toMatchObject({
      synchronous: 'full',
      busyTimeoutMs: 250,
    });
  });

  it('migrates an empty (0-byte) studio.db, which is what a crash between create and first write leaves', () => {
    writeFileSync(dbFile(), '');
    const s = store();
    expect(s.listRuns()).toEqual([]);
    s.close();
    const db = raw();
    expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    db.close();
  });

  it('reopening is idempotent: nothing re-applied, the schema and the data unchanged', () => {
    const s = store();
    const run = s.createRun({ name: 'kept', config: { dataset: 'shakespeare' } });
    s.close();
    let db = raw();
    const before = schemaOf(db);
    expect(migrate(db, dbFile())).toEqual({ from: SCHEMA_VERSION, to: SCHEMA_VERSION, applied: [] });
    db.close();

    for (let i = 0; i < 3; i++) store().close();
    db = raw();
    expect(schemaOf(db)).toEqual(before);
    db.close();
    expect(store().getRun(run.id)?.name).toBe('kept');
  });

  it('refuses a database from a newer studio, naming the file, its version and the supported one, and leaves it untouched', () => {
    // A rollback-journal database, so that switching it to WAL would rewrite its header: the check must come first.
    const db = raw();
    db.pragma('journal_mode = DELETE');
    db.exec('CREATE TABLE runs (id TEXT PRIMARY KEY, future_column TEXT)');
    db.pragma(`user_version = ${SCHEMA_VERSION + 7}`);
    db.close();
    const hash = sha(dbFile());

    const e = studioError(() => openStore(home));
    expect(e.code).toBe(ErrorCode.DATABASE_TOO_NEW);
    expect(e.message).toContain(dbFile());
    expect(e.message).toContain(`schema version ${SCHEMA_VERSION + 7}`);
    expect(e.message).toContain(`versions up to ${SCHEMA_VERSION}`);
    expect(e.hint).toMatch(/Upgrade GPT-2 Studio/);
    expect(sha(dbFile())).toBe(hash);
    expect(existsSync(`${dbFile()}-wal`)).toBe(false);
    const check = raw();
    expect(check.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION + 7);
    check.close();
  });

  it.each([
    ['text', 'hello, this is not a database\n'.repeat(20)],
    ['a short file', 'tiny'],
    ['a JSON file', JSON.stringify({ runs: [] })],
  ])('refuses %s as studio.db with a clear error and never writes to it', (_what, content) => {
    writeFileSync(dbFile(), content);
    const e = studioError(() => openStore(home));
    expect(e.code).toBe(ErrorCode.BAD_DATABASE);
    expect(e.message).toContain(dbFile());
    expect(e.message).toContain('is not a SQLite database');
    expect(e.hint).toMatch(/Move or rename/);
    expect(readFileSync(dbFile(), 'utf8')).toBe(content);
    expect(existsSync(`${dbFile()}-wal`)).toBe(false);
    expect(existsSync(`${dbFile()}-shm`)).toBe(false);
  });

  it('refuses a file with a SQLite header but damaged contents as BAD_DATABASE naming the file', () => {
    const junk = Buffer.alloc(8192, 0x5a);
    Buffer.from('SQLite format 3\0', 'latin1').copy(junk, 0);
    writeFileSync(dbFile(), junk);
    const e = studioError(() => openStore(home));
    expect(e.code).toBe(ErrorCode.BAD_DATABASE);
    expect(e.message).toContain(dbFile());
    expect(readFileSync(dbFile()).equals(junk)).toBe(true);
  });

  it('a failing migration rolls back every pending step, user_version included', () => {
    const db = new Database(path.join(home, 'scratch.db'));
    try {
      const ok: Migration = { version: 1, name: 'table a', up: (d) => d.exec('CREATE TABLE a (x INTEGER)') };
      const bad: Migration = {
        version: 2,
        name: 'table b, then a failure',
        up: (d) => {
          d.exec('CREATE TABLE b (x INTEGER)');
          d.exec('INSERT INTO nowhere VALUES (1)');
        },
      };
      const e = studioError(() => migrate(db, 'scratch.db', [ok, bad]));
      expect(e.code).toBe(ErrorCode.BAD_DATABASE);
      expect(e.message).toMatch(
        /version 2 \(table b, then a failure\) failed: no such table: nowhere.*still at version 0/,
      );
      expect(db.pragma('user_version', { simple: true })).toBe(0);
      expect(schemaOf(db)).toEqual([]);
      // and the good one alone applies
      expect(migrate(db, 'scratch.db', [ok])).toEqual({ from: 0, to: 1, applied: [1] });
      // a gap in the list is a bug caught before anything runs
      const gap: Migration = { version: 3, name: 'gap', up: () => undefined };
      expect(studioError(() => migrate(db, 'scratch.db', [ok, gap])).code).toBe(ErrorCode.INTERNAL);
    } finally {
      db.close();
    }
  });

  it('migrates a version-4 database to version 5: the datasets table is dropped, every other row kept', () => {
    const file = dbFile();
    const v4 = new Database(file);
    v4.pragma('foreign_keys = ON');
    expect(migrate(v4, file, MIGRATIONS.slice(0, 4))).toEqual({ from: 0, to: 4, applied: [1, 2, 3, 4] });
    v4.prepare(`INSERT INTO runs (id, name, config_json, created_at) VALUES ('run-old', 'kept', '{}', 1)`).run();
    v4.prepare(
      `INSERT INTO datasets (id, name, source, status, created_at, updated_at) VALUES ('tiny', 'Tiny', 'tinyshakespeare', 'ready', 1, 1)`,
    ).run();
    expect(migrate(v4, file, MIGRATIONS.slice(0, 5))).toEqual({ from: 4, to: 5, applied: [5] });
    v4.close();

    const s = store();
    expect(s.getRun('run-old')?.name).toBe('kept');
    expect(s.integrityCheck()).toEqual(['ok']);
    s.close();
    const db = raw();
    try {
      expect(
        schemaOf(db)
          .filter((o) => o.type === 'table')
          .map((o) => o.name),
      ).toEqual(TABLES);
      expect(schemaOf(db).some((o) => o.name.includes('datasets'))).toBe(false);
      expect(db.pragma('foreign_key_check')).toEqual([]);
    } finally {
      db.close();
    }
  });

  it('migrates a version-5 database to version 6: runs.nodes_json, [] for the runs already there', () => {
    const file = dbFile();
    const v5 = new Database(file);
    v5.pragma('foreign_keys = ON');
    expect(migrate(v5, file, MIGRATIONS.slice(0, 5))).toEqual({ from: 0, to: 5, applied: [1, 2, 3, 4, 5] });
    v5.prepare(
      `INSERT INTO runs (id, name, status, config_json, created_at, steps_done, tokens_seen, attempts_json)
       VALUES ('run-old', 'kept', 'done', '{"max_steps":10}', 1, 10, 5120, '[]')`,
    ).run();
    expect(migrate(v5, file, MIGRATIONS.slice(0, 6))).toEqual({ from: 5, to: 6, applied: [6] });
    v5.close();

    const s = store();
    expect(s.info().schemaVersion).toBe(SCHEMA_VERSION);
    expect(s.getRun('run-old')).toMatchObject({ name: 'kept', status: 'done', stepsDone: 10, nodes: [] });
    expect(s.listRuns().map((r) => r.nodes)).toEqual([[]]);
    expect(s.integrityCheck()).toEqual(['ok']);
    s.close();
    const db = raw();
    try {
      // the column's default and its check: a JSON array, nothing else
      expect(db.prepare(`SELECT nodes_json FROM runs WHERE id = 'run-old'`).pluck().get()).toBe('[]');
      expect(() => db.prepare(`UPDATE runs SET nodes_json = '{}' WHERE id = 'run-old'`).run()).toThrow(/CHECK/);
      expect(() => db.prepare(`UPDATE runs SET nodes_json = 'not json' WHERE id = 'run-old'`).run()).toThrow(/CHECK/);
    } finally {
      db.close();
    }
  });
});

describe('runs', () => {
  it('creates runs with short sortable ids and typed fields', () => {
    const t = Date.UTC(2026, 10, 28, 19, 30, 0);
    const s = store({ now: () => t });
    const run = s.createRun({
      name: 'gpt2 124M',
      config: { dataset: 'fineweb', max_steps: 19073 },
      preset: 'gpt2',
      engine: 'native-cuda',
      tags: [' a ', 'b', 'a', ''],
    });
    expect(run.id).toMatch(/^run-20261128-193000-[0-9a-f]{4}$/);
    expect(run).toMatchObject({
      name: 'gpt2 124M',
      status: 'created',
      preset: 'gpt2',
      engine: 'native-cuda',
      createdAt: t,
      startedAt: null,
      endedAt: null,
      stepsDone: 0,
      tokensSeen: 0,
      bestValLoss: null,
      lastCheckpointStep: null,
      error: null,
      tags: ['a', 'b'],
      notes: '',
      pid: null,
      config: { dataset: 'fineweb', max_steps: 19073 },
    });
    expect(newId('eval', t) < newId('eval', t + 1000)).toBe(true);
    expect(s.getRun('run-nope')).toBeUndefined();
  });

  it('refuses an unsafe or duplicate id, and a config that is not an object', () => {
    const s = store();
    expect(studioError(() => s.createRun({ id: '../escape', name: 'x', config: {} })).code).toBe(
      ErrorCode.BAD_ARGUMENT,
    );
    s.createRun({ id: 'mine', name: 'x', config: {} });
    expect(studioError(() => s.createRun({ id: 'mine', name: 'y', config: {} })).message).toContain('already exists');
    expect(studioError(() => s.createRun({ name: 'x', config: [] })).message).toContain('must be a JSON object');
  });

  it('updateRun changes only the given fields, clears with null, refuses unknown fields and unknown runs', () => {
    const s = store();
    const run = s.createRun({ name: 'r', config: { a: 1 }, notes: 'n' });
    const up = s.updateRun(run.id, {
      status: 'running',
      startedAt: 1000,
      pid: 4242,
      error: { code: ErrorCode.NUMERIC, message: 'm', hint: 'h' },
    });
    expect(up).toMatchObject({
      status: 'running',
      startedAt: 1000,
      pid: 4242,
      notes: 'n',
      config: { a: 1 },
      error: { code: 'NUMERIC' },
    });
    expect(s.updateRun(run.id, { pid: null, error: null })).toMatchObject({
      pid: null,
      error: null,
      status: 'running',
    });
    const bad = { stepDone: 3 } as unknown as Parameters<Store['updateRun']>[1];
    expect(studioError(() => s.updateRun(run.id, bad)).message).toContain('stepDone');
    expect(studioError(() => s.updateRun(run.id, { status: 'exploded' as 'done' })).code).toBe(ErrorCode.BAD_ARGUMENT);
    expect(studioError(() => s.updateRun('run-missing', { notes: 'x' })).code).toBe(ErrorCode.NOT_FOUND);
  });

  it('listRuns: newest first, filters by status and searches name, tags, notes and id (case-insensitively, % literal)', () => {
    let t = 1_000_000;
    const s = store({ now: () => (t += 1000) });
    const a = s.createRun({ name: 'Baseline 124M', config: {}, tags: ['fineweb'] });
    const b = s.createRun({ name: 'shakespeare small', config: {}, notes: 'LR sweep at 100% warmup' });
    const c = s.createRun({ name: 'other', config: {}, tags: ['Ablation'] });
    s.updateRun(b.id, { status: 'running' });
    s.updateRun(c.id, { status: 'done' });

    const ids = (runs: Array<{ id: string }>) => runs.map((r) => r.id);
    expect(ids(s.listRuns())).toEqual([c.id, b.id, a.id]);
    expect(ids(s.listRuns({ status: 'running' }))).toEqual([b.id]);
    expect(ids(s.listRuns({ status: ['done', 'created'] }))).toEqual([c.id, a.id]);
    expect(ids(s.listRuns({ status: [] }))).toEqual([]);
    expect(ids(s.listRuns({ search: 'baseline' }))).toEqual([a.id]);
    expect(ids(s.listRuns({ search: 'ablation' }))).toEqual([c.id]);
    expect(ids(s.listRuns({ search: 'FINEWEB' }))).toEqual([a.id]);
    expect(ids(s.listRuns({ search: 'lr sweep' }))).toEqual([b.id]);
    expect(ids(s.listRuns({ search: '100%' }))).toEqual([b.id]);
    expect(ids(s.listRuns({ search: '%' }))).toEqual([b.id]);
    expect(ids(s.listRuns({ search: c.id.slice(-8) }))).toEqual([c.id]);
    expect(ids(s.listRuns({ search: 'shakespeare', status: 'done' }))).toEqual([]);
    expect(ids(s.listRuns({ limit: 1, offset: 1 }))).toEqual([b.id]);
    expect(studioError(() => s.listRuns({ status: 'bogus' as 'done' })).code).toBe(ErrorCode.BAD_ARGUMENT);
  });

  it('deleting a run removes its metrics, samples, checkpoints, logs, evals and eval examples (ON DELETE CASCADE)', () => {
    const s = store();
    const keep = s.createRun({ name: 'keep', config: {} });
    const run = s.createRun({ name: 'gone', config: {} });
    for (const r of [keep, run]) {
      s.recordStep(r.id, { step: 0, metrics: { 'train/loss': 10, 'val/loss': 10.5 }, wallTime: 1, tokensSeen: 8 });
      s.addSample(r.id, { step: 0, idx: 0, prompt: 'Hello', text: 'Hello world' });
      s.addCheckpoint(r.id, { step: 0, path: `/ws/runs/${r.id}/checkpoints/step_000000`, sizeBytes: 10 });
      s.addLog(r.id, 'info', 'step 0');
      const ev = s.createEval({ kind: 'hellaswag', target: { runId: r.id, step: 0 } });
      s.finishEval(ev.id, {
        status: 'done',
        examples: [{ ind: 0, label: 1, pred: 1, pred_norm: 0, sum_loss: [1, 2, 3, 4], avg_loss: [1, 1, 1, 1] }],
      });
    }
    s.updateRun(run.id, { status: 'running' });
    expect(studioError(() => s.deleteRun(run.id)).hint).toContain(`gpt2-studio stop ${run.id}`);
    s.updateRun(run.id, { status: 'stopped' });
    expect(s.deleteRun(run.id)).toBe(true);
    expect(s.deleteRun(run.id)).toBe(false);

    const db = raw();
    try {
      for (const table of ['metrics', 'samples', 'checkpoints', 'logs', 'evals']) {
        const rows = db.prepare<[], { run_id: string }>(`SELECT run_id FROM ${table}`).all();
        expect(
          rows.map((r) => r.run_id),
          table,
        ).toEqual(rows.map(() => keep.id));
        expect(rows.length, table).toBeGreaterThan(0);
      }
      const examples = db.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM eval_examples').get();
      expect(examples?.n).toBe(1);
    } finally {
      db.close();
    }
  });
});

describe('recordStep and metrics', () => {
  it('writes metrics and the run counters together; best_val_loss keeps the lowest finite val/loss; NaN round-trips', () => {
    const s = store();
    const run = s.createRun({ name: 'r', config: {} });
    s.recordStep(run.id, {
      step: 0,
      metrics: { 'train/loss': 10.9, 'train/lr': 8.4e-7, 'val/loss': 10.95 },
      wallTime: 1000.5,
      tokensSeen: 524288,
    });
    s.recordStep(run.id, {
      step: 1,
      metrics: { 'train/loss': Number.NaN, 'train/norm': Number.POSITIVE_INFINITY },
      wallTime: 1001,
      tokensSeen: 1048576,
    });
    s.recordStep(run.id, { step: 2, metrics: { 'val/loss': 9.5 }, wallTime: 1002, tokensSeen: 1572864 });
    s.recordStep(run.id, { step: 3, metrics: { 'val/loss': 9.9 }, wallTime: 1003, tokensSeen: 2097152 });
    s.recordStep(run.id, { step: 4, metrics: { 'val/loss': Number.NaN }, wallTime: 1004, tokensSeen: 2621440 });

    expect(s.getRun(run.id)).toMatchObject({ stepsDone: 5, tokensSeen: 2621440, bestValLoss: 9.5 });
    const m = s.getMetrics(run.id);
    expect(Object.keys(m).sort()).toEqual(['train/loss', 'train/lr', 'train/norm', 'val/loss']);
    expect(m['train/loss']).toEqual({
      steps: [0, 1],
      values: [10.9, Number.NaN],
      wallTimes: [1000.5, 1001],
      tokensSeen: [524288, 1048576],
    });
    expect(m['train/norm']!.values).toEqual([Number.POSITIVE_INFINITY]);
    expect(m['val/loss']!.steps).toEqual([0, 2, 3, 4]);
    expect(s.listMetricNames(run.id)).toEqual(['train/loss', 'train/lr', 'train/norm', 'val/loss']);

    // names and sinceStep (exclusive); an unknown name is an empty series
    const some = s.getMetrics(run.id, ['val/loss', 'hellaswag/acc_norm'], { sinceStep: 2 });
    expect(some['val/loss']!.steps).toEqual([3, 4]);
    expect(some['hellaswag/acc_norm']).toEqual({ steps: [], values: [], wallTimes: [], tokensSeen: [] });
    expect(Object.keys(some)).toEqual(['val/loss', 'hellaswag/acc_norm']);
  });

  it('recording a step again (a resumed run replaying it) replaces its values; counters never go back', () => {
    const s = store();
    const run = s.createRun({ name: 'r', config: {} });
    s.recordStep(run.id, { step: 7, metrics: { 'train/loss': 5 }, wallTime: 1, tokensSeen: 800 });
    s.recordStep(run.id, { step: 5, metrics: { 'train/loss': 6 }, wallTime: 2, tokensSeen: 600 });
    s.recordStep(run.id, { step: 7, metrics: { 'train/loss': 4.5 }, wallTime: 3, tokensSeen: 800 });
    expect(s.getMetrics(run.id, ['train/loss'])['train/loss']).toMatchObject({
      steps: [5, 7],
      values: [6, 4.5],
      wallTimes: [2, 3],
    });
    expect(s.getRun(run.id)).toMatchObject({ stepsDone: 8, tokensSeen: 800 });
  });

  it('is atomic: a failure part-way through a step leaves neither its metrics nor the run counters', () => {
    const s = store();
    const run = s.createRun({ name: 'r', config: {} });
    s.recordStep(run.id, { step: 0, metrics: { 'train/loss': 11, 'val/loss': 11.1 }, wallTime: 1, tokensSeen: 100 });
    // Another connection installs a trigger that fails the third metric insert of a step.
    const db = raw();
    db.exec(
      `CREATE TRIGGER boom BEFORE INSERT ON metrics WHEN NEW.name = 'train/boom' BEGIN SELECT RAISE(ABORT, 'disk on fire'); END`,
    );
    db.close();
    expect(() =>
      s.recordStep(run.id, {
        step: 1,
        metrics: { 'train/loss': 10, 'val/loss': 9, 'train/boom': 1, 'train/lr': 1e-4 },
        wallTime: 2,
        tokensSeen: 200,
      }),
    ).toThrow(/disk on fire/);
    expect(s.getMetrics(run.id)['train/loss']!.steps).toEqual([0]);
    expect(s.getMetrics(run.id)['train/lr']).toBeUndefined();
    expect(s.getRun(run.id)).toMatchObject({ stepsDone: 1, tokensSeen: 100, bestValLoss: 11.1 });
  });

  it('refuses bad input before writing, and an unknown run as NOT_FOUND', () => {
    const s = store();
    const run = s.createRun({ name: 'r', config: {} });
    const bad = (step: number, metrics: Record<string, unknown>, tokensSeen = 1) =>
      studioError(() =>
        s.recordStep(run.id, { step, metrics: metrics as Record<string, number>, wallTime: 1, tokensSeen }),
      );
    expect(bad(-1, { a: 1 }).message).toContain('step must be a whole number');
    expect(bad(1.5, { a: 1 }).message).toContain('step must be a whole number');
    expect(bad(1, { a: '1' }).message).toContain('"a" of step 1');
    expect(bad(1, { '': 1 }).message).toContain('empty name');
    expect(bad(1, { a: 1 }, -5).message).toContain('tokensSeen');
    expect(s.getMetrics(run.id)).toEqual({});
    expect(
      studioError(() => s.recordStep('run-missing', { step: 0, metrics: { a: 1 }, wallTime: 1, tokensSeen: 0 })).code,
    ).toBe(ErrorCode.NOT_FOUND);
  });

  it('rewindRun forgets the steps from the resume point on and recomputes the counters', () => {
    const s = store();
    const run = s.createRun({ name: 'r', config: {} });
    for (let step = 0; step < 10; step++) {
      s.recordStep(run.id, {
        step,
        metrics: { 'train/loss': 10 - step, ...(step % 3 === 0 ? { 'val/loss': 10 - step } : {}) },
        wallTime: step,
        tokensSeen: (step + 1) * 10,
      });
      s.addSample(run.id, { step, idx: 0, prompt: 'p', text: `t${step}` });
    }
    expect(s.getRun(run.id)?.bestValLoss).toBe(1);
    const after = s.rewindRun(run.id, 6);
    expect(after).toMatchObject({ stepsDone: 6, tokensSeen: 60, bestValLoss: 7 });
    expect(s.getMetrics(run.id)['train/loss']!.steps).toEqual([0, 1, 2, 3, 4, 5]);
    expect(s.listSamples(run.id).map((x) => x.step)).toEqual([5, 4, 3, 2, 1, 0]);
  });
});

describe('samples, checkpoints, logs', () => {
  it('samples: newest step first, idx order, replace on the same (step, idx), NOT_FOUND for an unknown run', () => {
    const s = store();
    const run = s.createRun({ name: 'r', config: {} });
    s.addSample(run.id, { step: 250, idx: 1, prompt: 'Hello', text: 'b' });
    s.addSample(run.id, { step: 250, idx: 0, prompt: 'Hello', text: 'a' });
    s.addSample(run.id, { step: 500, idx: 0, prompt: 'Hello', text: 'c' });
    s.addSample(run.id, { step: 500, idx: 0, prompt: 'Hello', text: 'c2' });
    expect(s.listSamples(run.id).map((x) => `${x.step}/${x.idx}/${x.text}`)).toEqual([
      '500/0/c2',
      '250/0/a',
      '250/1/b',
    ]);
    expect(s.listSamples(run.id, { step: 250 }).map((x) => x.text)).toEqual(['a', 'b']);
    expect(s.listSamples(run.id, { limit: 1 }).length).toBe(1);
    expect(studioError(() => s.addSample('run-missing', { step: 0, idx: 0, prompt: '', text: '' })).code).toBe(
      ErrorCode.NOT_FOUND,
    );
  });

  it('checkpoints keep last_checkpoint_step in step with the rows', () => {
    const s = store();
    const run = s.createRun({ name: 'r', config: {} });
    s.addCheckpoint(run.id, { step: 5000, path: '/c/5000', sizeBytes: 1_500_000_000, valLoss: 3.3 });
    s.addCheckpoint(run.id, { step: 10000, path: '/c/10000', sizeBytes: 1_500_000_000, valLoss: 3.1, hellaswag: 0.29 });
    expect(s.getRun(run.id)?.lastCheckpointStep).toBe(10000);
    expect(s.listCheckpoints(run.id).map((c) => [c.step, c.valLoss, c.hellaswag])).toEqual([
      [5000, 3.3, null],
      [10000, 3.1, 0.29],
    ]);
    expect(s.listCheckpoints().length).toBe(2);
    expect(s.deleteCheckpoint(run.id, 10000)).toBe(true);
    expect(s.deleteCheckpoint(run.id, 10000)).toBe(false);
    expect(s.getRun(run.id)?.lastCheckpointStep).toBe(5000);
    s.deleteCheckpoint(run.id, 5000);
    expect(s.getRun(run.id)?.lastCheckpointStep).toBeNull();
  });

  it('logs: seq 1, 2, 3 ... per run, in order, across two connections; afterSeq, limit and tail', () => {
    const a = store();
    const b = store(); // e.g. the app and a CLI on the same workspace
    const r1 = a.createRun({ name: 'r1', config: {} });
    const r2 = a.createRun({ name: 'r2', config: {} });
    const seqs: number[] = [];
    for (let i = 0; i < 10; i++) seqs.push((i % 2 ? b : a).addLog(r1.id, 'info', `line ${i}`, 1000 + i).seq);
    expect(seqs).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(a.addLog(r2.id, 'warn', 'other run').seq).toBe(1);

    const all = a.listLogs(r1.id);
    expect(all.map((l) => l.message)).toEqual(Array.from({ length: 10 }, (_, i) => `line ${i}`));
    expect(all[0]).toEqual({ runId: r1.id, seq: 1, level: 'info', message: 'line 0', time: 1000 });
    expect(a.listLogs(r1.id, { afterSeq: 7 }).map((l) => l.seq)).toEqual([8, 9, 10]);
    expect(a.listLogs(r1.id, { afterSeq: 2, limit: 3 }).map((l) => l.seq)).toEqual([3, 4, 5]);
    expect(a.listLogs(r1.id, { limit: 3, tail: true }).map((l) => l.seq)).toEqual([8, 9, 10]);
    expect(studioError(() => a.addLog(r1.id, 'loud' as 'info', 'x')).code).toBe(ErrorCode.BAD_ARGUMENT);
    expect(studioError(() => a.addLog('run-missing', 'info', 'x')).code).toBe(ErrorCode.NOT_FOUND);
  });
});

describe('recover on start', () => {
  it("turns every 'running' run whose pid is gone into 'interrupted', and leaves the rest (a paused run has no worker)", () => {
    const alive = new Set([4242]);
    const s = store({ isPidAlive: (pid) => alive.has(pid), now: () => 9_999_999 });
    const make = (name: string, status: 'created' | 'running' | 'paused' | 'done', pid: number | null) => {
      const r = s.createRun({ name, config: {} });
      return s.updateRun(r.id, { status, pid, startedAt: 1000 });
    };
    const dead = make('dead worker', 'running', 1111);
    const paused = make('paused, no pid', 'paused', null);
    const live = make('live worker', 'running', 4242);
    const done = make('done', 'done', null);
    const created = make('created', 'created', null);
    s.recordStep(dead.id, { step: 41, metrics: { 'train/loss': 3 }, wallTime: 5000.7, tokensSeen: 42 });
    s.addCheckpoint(dead.id, { step: 40, path: '/c', sizeBytes: 1 });

    const recovered = s.recoverOnStart();
    expect(recovered.map((r) => r.id)).toEqual([dead.id]);
    const d = s.getRun(dead.id);
    expect(d).toMatchObject({ status: 'interrupted', pid: null, endedAt: 5000 });
    expect(d?.error?.code).toBe(ErrorCode.INTERRUPTED);
    expect(d?.error?.message).toContain('interrupted after 42 step(s)');
    expect(d?.error?.message).toContain('pid 1111');
    expect(d?.error?.hint).toContain(`step 40): gpt2-studio resume ${dead.id}`);
    expect(s.getRun(paused.id)).toMatchObject({ status: 'paused' });
    expect(s.getRun(live.id)).toMatchObject({ status: 'running', pid: 4242 });
    expect(s.getRun(done.id)?.status).toBe('done');
    expect(s.getRun(created.id)?.status).toBe('created');
    expect(s.recoverOnStart()).toEqual([]);

    // when the live worker dies later, the studio marks it directly
    expect(s.markInterrupted([live.id, done.id, 'run-missing']).map((r) => r.id)).toEqual([live.id]);
    expect(s.getRun(live.id)).toMatchObject({ status: 'interrupted', pid: null, endedAt: 9_999_999 });
  });

  it('checks real pids by default: this process is alive, an exited one is not', async () => {
    const { spawnSync } = await import('node:child_process');
    const exited = spawnSync(process.execPath, ['-e', '0']).pid;
    const s = store();
    const mine = s.updateRun(s.createRun({ name: 'mine', config: {} }).id, { status: 'running', pid: process.pid });
    const gone = s.updateRun(s.createRun({ name: 'gone', config: {} }).id, { status: 'running', pid: exited });
    expect(s.recoverOnStart().map((r) => r.id)).toEqual([gone.id]);
    expect(s.getRun(mine.id)?.status).toBe('running');
  });

  it("turns evals left 'running' by a dead process into 'interrupted'", () => {
    const s = store({ isPidAlive: (pid) => pid === 7 });
    const deadEval = s.createEval({ kind: 'hellaswag', target: { weightsPath: '/w/gpt2' }, pid: 99 });
    const liveEval = s.createEval({ kind: 'val_loss', target: { weightsPath: '/w/gpt2' }, pid: 7 });
    expect(s.recoverEvalsOnStart().map((e) => e.id)).toEqual([deadEval.id]);
    expect(s.getEval(deadEval.id)).toMatchObject({ status: 'interrupted', pid: null });
    expect(s.getEval(liveEval.id)?.status).toBe('running');
  });
});

describe('evals', () => {
  const ex = (ind: number, label: number, predNorm: number): ExampleResult => ({
    ind,
    label,
    pred: label,
    pred_norm: predNorm,
    sum_loss: [ind, 2, 3, 4],
    avg_loss: [0.5, Number.NaN, 0.25, 1],
  });

  it('finishEval writes the status, summary and per-example rows in one go; wrongOnly lists the misses', () => {
    const s = store({ now: () => 5000 });
    const run = s.createRun({ name: 'r', config: {} });
    const ev = s.createEval({
      kind: 'hellaswag',
      target: { runId: run.id, step: 19072 },
      params: { limit: 4 },
      pid: process.pid,
    });
    expect(ev).toMatchObject({
      status: 'running',
      target: { runId: run.id, step: 19072 },
      params: { limit: 4 },
      summary: null,
      pid: process.pid,
    });

    const examples = [ex(0, 1, 1), ex(1, 2, 0), ex(2, 3, 3), ex(3, 0, 2)];
    const done = s.finishEval(ev.id, { status: 'done', summary: { n: 4, accNorm: 0.5 }, examples });
    expect(done).toMatchObject({ status: 'done', summary: { n: 4, accNorm: 0.5 }, finishedAt: 5000, pid: null });
    const all = s.listEvalExamples(ev.id);
    expect(all.map((e) => e.ind)).toEqual([0, 1, 2, 3]);
    expect(all[1]).toEqual({
      evalId: ev.id,
      ind: 1,
      label: 2,
      pred: 2,
      pred_norm: 0,
      sum_loss: [1, 2, 3, 4],
      avg_loss: [0.5, Number.NaN, 0.25, 1],
    });
    expect(s.listEvalExamples(ev.id, { wrongOnly: true }).map((e) => e.ind)).toEqual([1, 3]);
    expect(s.listEvalExamples(ev.id, { limit: 2, offset: 1 }).map((e) => e.ind)).toEqual([1, 2]);
    expect(studioError(() => s.finishEval(ev.id, { status: 'failed' })).message).toContain('already finished (done)');
  });

  it('a failure among the examples writes nothing: the eval stays running with no rows', () => {
    const s = store();
    const ev = s.createEval({ kind: 'hellaswag', target: { weightsPath: '/w/gpt2' } });
    // a repeated ind fails on the primary key after the first rows went in
    expect(() => s.finishEval(ev.id, { status: 'done', examples: [ex(0, 1, 1), ex(1, 1, 1), ex(1, 1, 1)] })).toThrow(
      /UNIQUE|PRIMARY KEY/,
    );
    expect(s.getEval(ev.id)?.status).toBe('running');
    expect(s.listEvalExamples(ev.id)).toEqual([]);
    const malformed = [
      { ind: 0, label: 1, pred: 1, pred_norm: 1, sum_loss: 'x', avg_loss: [] },
    ] as unknown as ExampleResult[];
    expect(studioError(() => s.finishEval(ev.id, { status: 'done', examples: malformed })).message).toContain(
      'Example 0',
    );
    expect(
      s.finishEval(ev.id, { status: 'failed', error: { code: ErrorCode.BAD_DATA, message: 'bad file', hint: '' } })
        .error?.message,
    ).toBe('bad file');
  });

  it('getEval / listEvals filter by kind, status and run; a weights target round-trips', () => {
    let t = 0;
    const s = store({ now: () => (t += 1000) });
    const run = s.createRun({ name: 'r', config: {} });
    const a = s.createEval({ kind: 'hellaswag', target: { weightsPath: '/models/gpt2' } });
    const b = s.createEval({ kind: 'val_loss', target: { runId: run.id, step: 250 } });
    s.finishEval(b.id, { status: 'done', summary: { loss: 3.28 } });
    expect(s.getEval(a.id)?.target).toEqual({ weightsPath: '/models/gpt2' });
    expect(s.listEvals().map((e) => e.id)).toEqual([b.id, a.id]);
    expect(s.listEvals({ kind: 'hellaswag' }).map((e) => e.id)).toEqual([a.id]);
    expect(s.listEvals({ status: 'done' }).map((e) => e.id)).toEqual([b.id]);
    expect(s.listEvals({ runId: run.id }).map((e) => e.id)).toEqual([b.id]);
    expect(studioError(() => s.createEval({ kind: 'hellaswag', target: { runId: 'run-missing', step: 0 } })).code).toBe(
      ErrorCode.NOT_FOUND,
    );
    expect(studioError(() => s.finishEval('eval-missing', { status: 'done' })).code).toBe(ErrorCode.NOT_FOUND);
    expect(s.deleteEval(a.id)).toBe(true);
    expect(s.getEval(a.id)).toBeUndefined();
  });
});
