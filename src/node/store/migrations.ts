/**
 * Numbered schema migrations, as in Signal-Desktop's ts/sql/migrations: each has a version one above the last;
 * `PRAGMA user_version` records the last one applied; every pending migration runs in ONE transaction, so a
 * failure leaves the database exactly as it was; and a database whose version is above the newest one this build
 * knows (written by a newer studio) is refused rather than guessed at.
 *
 * Rules for new migrations:
 * - Append; never edit or renumber a released one.
 * - Do not change `PRAGMA foreign_keys` inside `up` (SQLite ignores it within a transaction). A migration that
 *   rebuilds a table uses SQLite's 12-step procedure (create new, copy, drop old, rename) with
 *   `PRAGMA defer_foreign_keys = ON` and ends with `PRAGMA foreign_key_check`.
 */
import type Database from 'better-sqlite3';
import { ErrorCode, StudioError } from '../../shared/errors';

export interface Migration {
  version: number;
  /** what it does, for messages */
  name: string;
  up(db: Database.Database): void;
}

const list = (xs: readonly string[]) => xs.map((x) => `'${x}'`).join(', ');

/**
 * Version 1: the whole schema of the first release. Tables are STRICT (a wrong type is an error, not a silent
 * conversion); JSON columns are checked with json_valid.
 */
const v1: Migration = {
  version: 1,
  name: 'runs, metrics, samples, checkpoints, logs, evals, eval_examples, datasets',
  up(db) {
    db.exec(`
      CREATE TABLE runs (
        id                   TEXT PRIMARY KEY,
        name                 TEXT NOT NULL,
        status               TEXT NOT NULL DEFAULT 'created'
                               CHECK (status IN (${list(['created', 'running', 'paused', 'stopped', 'done', 'failed', 'interrupted'])})),
        preset               TEXT,
        config_json          TEXT NOT NULL CHECK (json_valid(config_json) AND json_type(config_json) = 'object'),
        engine               TEXT,
        created_at           INTEGER NOT NULL,
        started_at           INTEGER,
        ended_at             INTEGER,
        steps_done           INTEGER NOT NULL DEFAULT 0 CHECK (steps_done >= 0),
        tokens_seen          INTEGER NOT NULL DEFAULT 0 CHECK (tokens_seen >= 0),
        best_val_loss        REAL,
        last_checkpoint_step INTEGER,
        error_json           TEXT CHECK (error_json IS NULL OR json_valid(error_json)),
        tags                 TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(tags) AND json_type(tags) = 'array'),
        notes                TEXT NOT NULL DEFAULT '',
        pid                  INTEGER
      ) STRICT;
      -- the runs list (newest first) and recover-on-start (status IN running, paused)
      CREATE INDEX runs_by_created ON runs (created_at DESC, id DESC);
      CREATE INDEX runs_by_status ON runs (status);

      -- One row per (run, metric, step). The primary key is also the only index a chart query needs:
      -- WHERE run_id = ? AND name = ? AND step > ? ORDER BY step. value NULL stores NaN.
      CREATE TABLE metrics (
        run_id      TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        name        TEXT NOT NULL CHECK (length(name) > 0),
        step        INTEGER NOT NULL CHECK (step >= 0),
        value       REAL,
        wall_time   REAL NOT NULL,
        tokens_seen INTEGER NOT NULL,
        PRIMARY KEY (run_id, name, step)
      ) STRICT, WITHOUT ROWID;

      CREATE TABLE samples (
        run_id     TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        step       INTEGER NOT NULL,
        idx        INTEGER NOT NULL,
        prompt     TEXT NOT NULL,
        text       TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (run_id, step, idx)
      ) STRICT;

      CREATE TABLE checkpoints (
        run_id     TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        step       INTEGER NOT NULL,
        path       TEXT NOT NULL,
        size_bytes INTEGER NOT NULL CHECK (size_bytes >= 0),
        val_loss   REAL,
        hellaswag  REAL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (run_id, step)
      ) STRICT;

      -- seq is 1, 2, 3, ... per run (see Store.addLog)
      CREATE TABLE logs (
        run_id  TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        seq     INTEGER NOT NULL,
        level   TEXT NOT NULL CHECK (level IN (${list(['debug', 'info', 'warn', 'error'])})),
        message TEXT NOT NULL,
        time    INTEGER NOT NULL,
        PRIMARY KEY (run_id, seq)
      ) STRICT, WITHOUT ROWID;

      -- The target is either a run's checkpoint (run_id + step) or a weights path, never both. An eval of a run
      -- goes with the run; deleting only the checkpoint keeps the result.
      CREATE TABLE evals (
        id           TEXT PRIMARY KEY,
        kind         TEXT NOT NULL CHECK (kind IN (${list(['hellaswag', 'val_loss'])})),
        run_id       TEXT REFERENCES runs (id) ON DELETE CASCADE,
        step         INTEGER,
        weights_path TEXT,
        status       TEXT NOT NULL DEFAULT 'running'
                       CHECK (status IN (${list(['running', 'done', 'failed', 'cancelled', 'interrupted'])})),
        params_json  TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(params_json)),
        summary_json TEXT CHECK (summary_json IS NULL OR json_valid(summary_json)),
        error_json   TEXT CHECK (error_json IS NULL OR json_valid(error_json)),
        pid          INTEGER,
        created_at   INTEGER NOT NULL,
        finished_at  INTEGER,
        CHECK ((run_id IS NOT NULL AND step IS NOT NULL AND weights_path IS NULL)
            OR (run_id IS NULL AND step IS NULL AND weights_path IS NOT NULL))
      ) STRICT;
      CREATE INDEX evals_by_created ON evals (created_at DESC, id DESC);
      CREATE INDEX evals_by_run ON evals (run_id, step) WHERE run_id IS NOT NULL;
      CREATE INDEX evals_running ON evals (status) WHERE status = 'running';

      CREATE TABLE eval_examples (
        eval_id       TEXT NOT NULL REFERENCES evals (id) ON DELETE CASCADE,
        ind           INTEGER NOT NULL,
        label         INTEGER NOT NULL,
        pred          INTEGER NOT NULL,
        pred_norm     INTEGER NOT NULL,
        sum_loss_json TEXT NOT NULL CHECK (json_valid(sum_loss_json)),
        avg_loss_json TEXT NOT NULL CHECK (json_valid(avg_loss_json)),
        PRIMARY KEY (eval_id, ind)
      ) STRICT, WITHOUT ROWID;
      -- "show me what it got wrong" without scanning the right ones
      CREATE INDEX eval_examples_wrong ON eval_examples (eval_id, ind) WHERE pred_norm <> label;

      CREATE TABLE datasets (
        id            TEXT PRIMARY KEY,
        name          TEXT NOT NULL,
        source        TEXT NOT NULL,
        manifest_path TEXT,
        train_tokens  INTEGER NOT NULL DEFAULT 0 CHECK (train_tokens >= 0),
        val_tokens    INTEGER NOT NULL DEFAULT 0 CHECK (val_tokens >= 0),
        status        TEXT NOT NULL CHECK (status IN (${list(['preparing', 'ready', 'failed', 'interrupted'])})),
        error_json    TEXT CHECK (error_json IS NULL OR json_valid(error_json)),
        created_at    INTEGER NOT NULL,
        updated_at    INTEGER NOT NULL
      ) STRICT;
    `);
  },
};

/**
 * Version 2: chat conversations. A conversation keeps its model (target_json, a ModelTarget) and its sampling
 * settings (settings_json); title NULL means "not named yet" (the first message names it). Messages are numbered
 * 1, 2, 3, ... per conversation (see ChatStore.addMessage) and go with their conversation.
 */
const v2: Migration = {
  version: 2,
  name: 'conversations, chat_messages',
  up(db) {
    db.exec(`
      CREATE TABLE conversations (
        id            TEXT PRIMARY KEY,
        title         TEXT CHECK (title IS NULL OR length(title) > 0),
        target_json   TEXT NOT NULL CHECK (json_valid(target_json) AND json_type(target_json) = 'object'),
        settings_json TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(settings_json) AND json_type(settings_json) = 'object'),
        created_at    INTEGER NOT NULL,
        updated_at    INTEGER NOT NULL
      ) STRICT;
      -- the conversations list, newest first
      CREATE INDEX conversations_by_updated ON conversations (updated_at DESC, id DESC);

      CREATE TABLE chat_messages (
        conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
        seq             INTEGER NOT NULL CHECK (seq >= 1),
        role            TEXT NOT NULL CHECK (role IN (${list(['user', 'assistant'])})),
        content         TEXT NOT NULL,
        created_at      INTEGER NOT NULL,
        -- assistant messages: tokens generated, their rate, why generation ended, and the error if it failed
        tokens          INTEGER CHECK (tokens IS NULL OR tokens >= 0),
        tokens_per_sec  REAL CHECK (tokens_per_sec IS NULL OR tokens_per_sec >= 0),
        reason          TEXT CHECK (reason IS NULL OR reason IN (${list(['eot', 'length', 'stopped', 'error'])})),
        error_json      TEXT CHECK (error_json IS NULL OR (json_valid(error_json) AND json_type(error_json) = 'object')),
        PRIMARY KEY (conversation_id, seq)
      ) STRICT, WITHOUT ROWID;
    `);
  },
};

/**
 * Version 3: chat answers end for the reasons every generation path reports (EndReason in src/core/sampling.ts):
 * 'context' (the model's context filled before max tokens) is new and 'stopped' becomes 'stop'. context_tokens
 * keeps the model's context at the time, so that "context full (256 tokens)" stays true after the conversation's
 * model changes. SQLite cannot alter a CHECK, so chat_messages is rebuilt (create new, copy, drop old, rename).
 */
const v3: Migration = {
  version: 3,
  name: "chat_messages: end reasons 'context' and 'stop', context_tokens",
  up(db) {
    db.pragma('defer_foreign_keys = ON');
    db.exec(`
      CREATE TABLE chat_messages_v3 (
        conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
        seq             INTEGER NOT NULL CHECK (seq >= 1),
        role            TEXT NOT NULL CHECK (role IN (${list(['user', 'assistant'])})),
        content         TEXT NOT NULL,
        created_at      INTEGER NOT NULL,
        -- assistant messages: tokens generated, their rate, why generation ended, the model's context (tokens),
        -- and the error if it failed
        tokens          INTEGER CHECK (tokens IS NULL OR tokens >= 0),
        tokens_per_sec  REAL CHECK (tokens_per_sec IS NULL OR tokens_per_sec >= 0),
        reason          TEXT CHECK (reason IS NULL OR reason IN (${list(['eot', 'length', 'context', 'stop', 'error'])})),
        context_tokens  INTEGER CHECK (context_tokens IS NULL OR context_tokens >= 1),
        error_json      TEXT CHECK (error_json IS NULL OR (json_valid(error_json) AND json_type(error_json) = 'object')),
        PRIMARY KEY (conversation_id, seq)
      ) STRICT, WITHOUT ROWID;
      INSERT INTO chat_messages_v3 (conversation_id, seq, role, content, created_at, tokens, tokens_per_sec, reason, error_json)
        SELECT conversation_id, seq, role, content, created_at, tokens, tokens_per_sec,
               CASE reason WHEN 'stopped' THEN 'stop' ELSE reason END, error_json
        FROM chat_messages;
      DROP TABLE chat_messages;
      ALTER TABLE chat_messages_v3 RENAME TO chat_messages;
    `);
    const broken = db.pragma('foreign_key_check') as unknown[];
    if (broken.length > 0)
      throw new Error(`${broken.length} chat messages lost their conversation while chat_messages was rebuilt`);
  },
};

/**
 * Version 4: what ran, and where values come from.
 * - runs.attempts_json: one RunAttempt (src/shared/run-facts.ts) per start or resume: the engine, backend, build,
 *   threads and precision that actually ran, the model shape trained, the host and the studio's version and commit.
 * - checkpoints.val_loss_step: the step whose weights val_loss was measured on (a checkpoint written on stop or
 *   pause carries an earlier step's value); NULL for checkpoints recorded before this version.
 */
const v4: Migration = {
  version: 4,
  name: 'runs.attempts_json, checkpoints.val_loss_step',
  up(db) {
    db.exec(`
      ALTER TABLE runs ADD COLUMN attempts_json TEXT NOT NULL DEFAULT '[]'
        CHECK (json_valid(attempts_json) AND json_type(attempts_json) = 'array');
      ALTER TABLE checkpoints ADD COLUMN val_loss_step INTEGER CHECK (val_loss_step IS NULL OR val_loss_step >= 0);
    `);
  },
};

/**
 * Version 5: the datasets table goes. Its rows were written but never read: a dataset is its folder,
 * datasets/<id>/, and the manifest there is the truth (src/node/datasets/manifest.ts). Nothing references the
 * table, so dropping it touches no other row.
 */
const v5: Migration = {
  version: 5,
  name: 'drop datasets',
  up(db) {
    db.exec('DROP TABLE IF EXISTS datasets');
  },
};

/**
 * Version 6: runs.nodes_json, the hosts of a multi-node data-parallel run: one RunNode (src/shared/records.ts) per
 * node, written by node 0's service as nodes join, heartbeat, leave or are lost (Store.setRunNodes). '[]' for a
 * run on one node, which every run recorded before this version was.
 */
const v6: Migration = {
  version: 6,
  name: 'runs.nodes_json',
  up(db) {
    db.exec(`
      ALTER TABLE runs ADD COLUMN nodes_json TEXT NOT NULL DEFAULT '[]'
        CHECK (json_valid(nodes_json) AND json_type(nodes_json) = 'array');
    `);
  },
};

/** Every migration, in order. The last one's version is the schema version this build writes. */
export const MIGRATIONS: readonly Migration[] = [v1, v2, v3, v4, v5, v6];

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

export function userVersion(db: Database.Database): number {
  return Number(db.pragma('user_version', { simple: true }));
}

/** Throws when the database was written by a newer studio than this one. */
export function refuseFutureVersion(
  db: Database.Database,
  file: string,
  migrations: readonly Migration[] = MIGRATIONS,
): void {
  const version = userVersion(db);
  const supported = latestVersion(migrations);
  if (version > supported) {
    throw new StudioError(
      ErrorCode.DATABASE_TOO_NEW,
      `The database "${file}" has schema version ${version}, but this studio supports versions up to ${supported}: it was written by a newer GPT-2 Studio.`,
      'Upgrade GPT-2 Studio to the version that wrote this workspace (or newer), or choose another workspace with --home DIR. The file was left untouched.',
    );
  }
}

export interface MigrateResult {
  /** user_version before */
  from: number;
  /** user_version after */
  to: number;
  /** the versions applied now */
  applied: number[];
}

/**
 * Applies every pending migration in one IMMEDIATE transaction (it takes the write lock first, so that two
 * processes opening the same workspace at once cannot both migrate: the second re-reads the version under the lock
 * and finds nothing to do). Each step sets user_version; a throw rolls back every step, the version included.
 */
export function migrate(
  db: Database.Database,
  file: string,
  migrations: readonly Migration[] = MIGRATIONS,
): MigrateResult {
  checkMigrationList(migrations);
  refuseFutureVersion(db, file, migrations);
  const run = db.transaction((): MigrateResult => {
    // Re-read under the lock: another process may have migrated since the check above.
    refuseFutureVersion(db, file, migrations);
    const from = userVersion(db);
    const applied: number[] = [];
    for (const m of migrations) {
      if (m.version <= from) continue;
      try {
        m.up(db);
      } catch (e) {
        throw new StudioError(
          ErrorCode.BAD_DATABASE,
          `Migrating the database "${file}" to version ${m.version} (${m.name}) failed: ${e instanceof Error ? e.message : String(e)}. Nothing was changed: it is still at version ${from}.`,
          'Report this with the message above. Your data is as it was; an older GPT-2 Studio can still open it.',
          { cause: e },
        );
      }
      // user_version lives in the database header, which is part of the transaction.
      db.pragma(`user_version = ${m.version}`);
      applied.push(m.version);
    }
    return { from, to: userVersion(db), applied };
  });
  return run.immediate();
}

function latestVersion(migrations: readonly Migration[]): number {
  return migrations.length ? migrations[migrations.length - 1]!.version : 0;
}

/** A programming error in the list (a gap, a repeat, a reorder) is caught before it touches a database. */
function checkMigrationList(migrations: readonly Migration[]): void {
  migrations.forEach((m, i) => {
    if (!Number.isInteger(m.version) || m.version !== i + 1) {
      throw new StudioError(
        ErrorCode.INTERNAL,
        `Migration "${m.name}" at position ${i} has version ${m.version}; versions must be 1, 2, 3, ... in order.`,
        'This is a bug in the studio build: fix the MIGRATIONS list.',
      );
    }
  });
}
