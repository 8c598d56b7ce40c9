/**
 * The runs table: creating, listing, changing and deleting runs, the attempts each ran, and marking runs whose
 * worker died as interrupted (at studio start, or when the service notices).
 */
import { ErrorCode, StudioError, type PlainError } from '../../shared/errors';
import type { RunAttempt } from '../../shared/run-facts';
import { checkId, newId } from '../store/ids';
import {
  type Sql,
  type SqlValue,
  badArgument,
  checkFinite,
  checkInt,
  checkLimit,
  checkMember,
  checkTags,
  checkText,
  insertUnique,
  isConstraint,
  jsonObject,
  nullOr,
  orphaned,
  parseError,
  parseObject,
  pidNote,
  whereAll,
} from '../store/sql';
import {
  ACTIVE_RUN_STATUSES,
  RUN_NODE_STATUSES,
  RUN_STATUSES,
  type CreateRunInput,
  type ListRunsFilter,
  type Run,
  type RunNode,
  type RunPatch,
  type RunRow,
  type RunStatus,
} from '../store/types';

const ACTIVE_SQL = `(${ACTIVE_RUN_STATUSES.map((s) => `'${s}'`).join(', ')})`;
const RUN_PATCH_KEYS = new Set<string>([
  'name',
  'status',
  'preset',
  'config',
  'engine',
  'startedAt',
  'endedAt',
  'stepsDone',
  'tokensSeen',
  'bestValLoss',
  'lastCheckpointStep',
  'error',
  'tags',
  'notes',
  'pid',
]);

/** ended_at of a run found dead at start: its last sign of life (metric, log line, start), not the restart time. */
const LAST_ACTIVITY_SQL = `COALESCE(
  (SELECT CAST(MAX(t) AS INTEGER) FROM (
     SELECT MAX(wall_time) AS t FROM metrics WHERE run_id = @id
     UNION ALL SELECT MAX(time) FROM logs WHERE run_id = @id
     UNION ALL SELECT started_at FROM runs WHERE id = @id)),
  @now)`;

export class RunsTable {
  constructor(
    private readonly sql: Sql,
    private readonly now: () => number,
    private readonly isPidAlive: (pid: number) => boolean,
  ) {}

  create(input: CreateRunInput): Run {
    const createdAt = input.createdAt ?? this.now();
    const insert = (id: string) =>
      this.sql.run(
        `INSERT INTO runs (id, name, preset, config_json, engine, created_at, tags, notes) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
        id,
        checkText(input.name, 'run name'),
        input.preset ?? null,
        jsonObject(input.config, 'run config'),
        input.engine ?? null,
        checkInt(createdAt, 'createdAt'),
        JSON.stringify(checkTags(input.tags ?? [])),
        input.notes ?? '',
      );
    if (input.id !== undefined) {
      const id = checkId(input.id, 'run');
      insertUnique('A run', id, () => insert(id));
      return this.require(id);
    }
    // A generated id collides only with a run created in the same second with the same 16 random bits.
    for (let attempt = 0; ; attempt++) {
      const id = newId('run', createdAt);
      try {
        insert(id);
        return this.require(id);
      } catch (e) {
        if (!isConstraint(e, 'SQLITE_CONSTRAINT_PRIMARYKEY') || attempt >= 20) throw e;
      }
    }
  }

  get(id: string): Run | undefined {
    const row = this.sql.get<RunRow>('SELECT * FROM runs WHERE id = ?', id);
    return row && toRun(row);
  }

  require(id: string): Run {
    const run = this.get(id);
    if (!run) throw runNotFound(id);
    return run;
  }

  list(filter: ListRunsFilter): Run[] {
    const where: string[] = [];
    const params: SqlValue[] = [];
    if (filter.status !== undefined) {
      const statuses = typeof filter.status === 'string' ? [filter.status] : [...filter.status];
      statuses.forEach((s) => checkMember(s, RUN_STATUSES, 'run status'));
      if (statuses.length === 0) return [];
      where.push(`status IN (${statuses.map(() => '?').join(', ')})`);
      params.push(...statuses);
    }
    const search = filter.search?.trim();
    if (search) {
      const like = `%${search.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
      where.push(`(id LIKE ? ESCAPE '\\' OR name LIKE ? ESCAPE '\\' OR notes LIKE ? ESCAPE '\\'
                   OR EXISTS (SELECT 1 FROM json_each(runs.tags) AS t WHERE t.value LIKE ? ESCAPE '\\'))`);
      params.push(like, like, like, like);
    }
    const sql = `SELECT * FROM runs ${whereAll(where)} ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?`;
    params.push(checkLimit(filter.limit, 1000), checkInt(filter.offset ?? 0, 'offset'));
    return this.sql.all<RunRow>(sql, ...params).map(toRun);
  }

  addAttempt(id: string, attempt: RunAttempt): Run {
    const r = this.sql.run(
      `UPDATE runs SET attempts_json = json_insert(attempts_json, '$[#]', json(?)), engine = ? WHERE id = ?`,
      JSON.stringify(attempt),
      checkText(attempt.engine, 'engine'),
      id,
    );
    if (r.changes === 0) throw runNotFound(id);
    return this.require(id);
  }

  /**
   * Replaces the nodes of a multi-node run (runs.nodes_json) and nothing else. Node 0's service calls it every few
   * seconds while such a run trains, so it is one UPDATE of one column, without reading the run back.
   */
  setNodes(id: string, nodes: readonly RunNode[]): void {
    const r = this.sql.run('UPDATE runs SET nodes_json = ? WHERE id = ?', nodesJson(nodes), id);
    if (r.changes === 0) throw runNotFound(id);
  }

  update(id: string, patch: RunPatch): Run {
    const unknown = Object.keys(patch).filter((k) => !RUN_PATCH_KEYS.has(k));
    if (unknown.length) {
      throw new StudioError(
        ErrorCode.BAD_ARGUMENT,
        `updateRun got unknown field(s) ${unknown.join(', ')} for run "${id}".`,
        `The fields a run update may change are: ${[...RUN_PATCH_KEYS].join(', ')}.`,
      );
    }
    const sets: string[] = [];
    const values: SqlValue[] = [];
    const set = (column: string, value: SqlValue) => {
      sets.push(`${column} = ?`);
      values.push(value);
    };
    const intOrNull = (v: number | null, what: string) => nullOr(v, (n) => checkInt(n, what));
    if (patch.name !== undefined) set('name', checkText(patch.name, 'run name'));
    if (patch.status !== undefined) set('status', checkMember(patch.status, RUN_STATUSES, 'run status'));
    if (patch.preset !== undefined) set('preset', patch.preset);
    if (patch.config !== undefined) set('config_json', jsonObject(patch.config, 'run config'));
    if (patch.engine !== undefined) set('engine', patch.engine);
    if (patch.startedAt !== undefined) set('started_at', intOrNull(patch.startedAt, 'startedAt'));
    if (patch.endedAt !== undefined) set('ended_at', intOrNull(patch.endedAt, 'endedAt'));
    if (patch.stepsDone !== undefined) set('steps_done', checkInt(patch.stepsDone, 'stepsDone'));
    if (patch.tokensSeen !== undefined) set('tokens_seen', checkInt(patch.tokensSeen, 'tokensSeen'));
    if (patch.bestValLoss !== undefined) set('best_val_loss', patch.bestValLoss);
    if (patch.lastCheckpointStep !== undefined)
      set('last_checkpoint_step', intOrNull(patch.lastCheckpointStep, 'lastCheckpointStep'));
    if (patch.error !== undefined) set('error_json', patch.error === null ? null : JSON.stringify(patch.error));
    if (patch.tags !== undefined) set('tags', JSON.stringify(checkTags(patch.tags)));
    if (patch.notes !== undefined) set('notes', patch.notes);
    if (patch.pid !== undefined) set('pid', intOrNull(patch.pid, 'pid'));
    if (sets.length) {
      const r = this.sql.run(`UPDATE runs SET ${sets.join(', ')} WHERE id = ?`, ...values, id);
      if (r.changes === 0) throw runNotFound(id);
    }
    return this.require(id);
  }

  /**
   * Deletes a run and, through ON DELETE CASCADE, its metrics, samples, checkpoints rows, logs and evals. A run
   * with a worker attached (status 'running', the one ACTIVE_RUN_STATUSES holds) is refused.
   */
  delete(id: string): boolean {
    const run = this.get(id);
    if (!run) return false;
    if (isActive(run.status)) {
      throw new StudioError(
        ErrorCode.BAD_ARGUMENT,
        `The run "${id}" is ${run.status}; it cannot be deleted while its worker is attached.`,
        `Stop it first (gpt2-studio stop ${id}), then delete it.`,
      );
    }
    return this.sql.run('DELETE FROM runs WHERE id = ?', id).changes > 0;
  }

  /**
   * Marks runs whose worker died as 'interrupted' (only those still 'running'; a paused run has no worker), clears
   * their pid and sets ended_at to now. Returns the runs changed.
   */
  markInterrupted(runIds: readonly string[], error?: PlainError): Run[] {
    return this.sql.immediate((): Run[] => {
      const changed: Run[] = [];
      for (const id of runIds) {
        const run = this.get(id);
        if (!run || !isActive(run.status)) continue;
        const err = error ?? interruptedError(run, `its worker${pidNote(run.pid)} stopped unexpectedly`);
        changed.push(this.interrupt(run.id, err, '@now'));
      }
      return changed;
    });
  }

  /**
   * At studio start: every run still 'running' whose pid is gone (or unknown) becomes 'interrupted', with an error
   * that says so and an ended_at of its last recorded activity. Runs whose worker is still alive (another studio or
   * a CLI `train` on the same workspace) are left alone. Returns the runs changed.
   *
   * A pid can be reused by an unrelated process after a reboot; such a run stays 'running' until the studio
   * notices its worker is not ours (the caller can then use markInterrupted).
   */
  recoverOnStart(): Run[] {
    return this.sql.immediate((): Run[] => {
      const active = this.sql.all<RunRow>(`SELECT * FROM runs WHERE status IN ${ACTIVE_SQL} ORDER BY created_at, id`);
      return orphaned(active, this.isPidAlive).map((row) => {
        const err = interruptedError(
          toRun(row),
          `its worker${pidNote(row.pid)} was no longer running when the studio started`,
        );
        return this.interrupt(row.id, err, LAST_ACTIVITY_SQL);
      });
    });
  }

  /** Sets a run 'interrupted' with its error, clears its pid and sets ended_at to `endedAtSql` (@id, @now bound). */
  private interrupt(id: string, err: PlainError, endedAtSql: string): Run {
    this.sql.run(
      `UPDATE runs SET status = 'interrupted', pid = NULL, error_json = @err, ended_at = ${endedAtSql} WHERE id = @id`,
      { err: JSON.stringify(err), id, now: this.now() },
    );
    return this.require(id);
  }
}

/** The one error for a run id that names no run, wherever it is looked up. */
export function runNotFound(id: string, home?: string, cause?: unknown): StudioError {
  return new StudioError(
    ErrorCode.NOT_FOUND,
    `No run "${id}"${home ? ` in ${home}` : ''}.`,
    'List the runs (the Runs page, or "gpt2-studio runs") to see their ids.',
    { cause },
  );
}

/** Runs a write that references a run, turning the foreign-key failure of an unknown run into NOT_FOUND. */
export function withRun<T>(runId: string, write: () => T): T {
  try {
    return write();
  } catch (e) {
    if (isConstraint(e, 'SQLITE_CONSTRAINT_FOREIGNKEY')) throw runNotFound(runId, undefined, e);
    throw e;
  }
}

function isActive(status: RunStatus): boolean {
  return (ACTIVE_RUN_STATUSES as readonly RunStatus[]).includes(status);
}

function interruptedError(run: Run, why: string): PlainError {
  const resume =
    run.lastCheckpointStep === null
      ? 'It has no checkpoint to resume from; start it again.'
      : `Resume it from its last checkpoint (step ${run.lastCheckpointStep}): gpt2-studio resume ${run.id}`;
  return {
    code: ErrorCode.INTERRUPTED,
    message: `The run "${run.id}" was interrupted after ${run.stepsDone} step(s): ${why}.`,
    hint: resume,
  };
}

/**
 * The nodes as the JSON of runs.nodes_json: each checked, with only the fields of a RunNode, ranks ascending, by
 * node rank. A node rank given twice is a bad argument.
 */
function nodesJson(nodes: readonly RunNode[]): string {
  if (!Array.isArray(nodes as unknown))
    throw badArgument(
      `The nodes of a run must be a list, got ${JSON.stringify(nodes)}.`,
      'Pass one RunNode per node, or [] for a run on one node.',
    );
  const seen = new Set<number>();
  const out = nodes.map((n, i): RunNode => {
    const what = (field: string) => `nodes[${i}].${field}`;
    if (typeof n !== 'object' || n === null)
      throw badArgument(`nodes[${i}] must be an object, got ${JSON.stringify(n)}.`, 'Pass one RunNode per node.');
    const node = checkInt(n.node, what('node'));
    if (seen.has(node))
      throw badArgument(
        `Node ${node} is listed twice in the nodes of a run.`,
        'Pass each node once, by its node rank.',
      );
    seen.add(node);
    const ranks: readonly number[] = n.ranks;
    if (!Array.isArray(ranks as unknown))
      throw badArgument(
        `${what('ranks')} must be a list of global ranks, got ${JSON.stringify(n.ranks)}.`,
        'Pass the global ranks on that node, e.g. [4, 5, 6, 7].',
      );
    return {
      node,
      host: checkText(n.host, what('host')),
      ranks: ranks.map((r, j) => checkInt(r, `${what('ranks')}[${j}]`)).sort((a, b) => a - b),
      status: checkMember(n.status, RUN_NODE_STATUSES, 'node status'),
      joinedAt: checkInt(n.joinedAt, what('joinedAt')),
      lastHeartbeat: checkInt(n.lastHeartbeat, what('lastHeartbeat')),
      step: n.step === null ? null : checkInt(n.step, what('step')),
      tokPerSec: n.tokPerSec === null ? null : checkFinite(n.tokPerSec, what('tokPerSec')),
    };
  });
  return JSON.stringify(out.sort((a, b) => a.node - b.node));
}

function toRun(r: RunRow): Run {
  return {
    id: r.id,
    name: r.name,
    status: r.status,
    preset: r.preset,
    config: parseObject(r.config_json),
    engine: r.engine,
    createdAt: r.created_at,
    startedAt: r.started_at,
    endedAt: r.ended_at,
    stepsDone: r.steps_done,
    tokensSeen: r.tokens_seen,
    bestValLoss: r.best_val_loss,
    lastCheckpointStep: r.last_checkpoint_step,
    error: parseError(r.error_json),
    tags: JSON.parse(r.tags) as string[],
    notes: r.notes,
    pid: r.pid,
    attempts: JSON.parse(r.attempts_json) as RunAttempt[],
    nodes: JSON.parse(r.nodes_json) as RunNode[],
  };
}
