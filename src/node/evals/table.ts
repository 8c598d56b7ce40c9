/**
 * The evals and eval_examples tables: an eval of a run's checkpoint or of a weights path, from 'running' to its
 * end, with its per-example results (HellaSwag) written in the same transaction as the end.
 */
import { ErrorCode, StudioError, type PlainError } from '../../shared/errors';
import { checkId, newId } from '../store/ids';
import { withRun } from '../runs/runs-table';
import {
  type Sql,
  type SqlValue,
  badArgument,
  checkInt,
  checkLimit,
  checkMember,
  checkText,
  insertUnique,
  jsonObject,
  nullOr,
  orphaned,
  parseError,
  parseObject,
  pidNote,
  whereAll,
} from '../store/sql';
import {
  EVAL_KINDS,
  EVAL_STATUSES,
  type CreateEvalInput,
  type Eval,
  type EvalExample,
  type EvalExampleInput,
  type EvalExampleRow,
  type EvalRow,
  type FinishEvalInput,
  type ListEvalExamplesOptions,
  type ListEvalsFilter,
} from '../store/types';

export class EvalsTable {
  constructor(
    private readonly sql: Sql,
    private readonly now: () => number,
    private readonly isPidAlive: (pid: number) => boolean,
  ) {}

  create(input: CreateEvalInput): Eval {
    checkMember(input.kind, EVAL_KINDS, 'eval kind');
    const t = input.target;
    const [runId, step, weightsPath] =
      'runId' in t
        ? [t.runId, checkInt(t.step, 'target step'), null]
        : [null, null, checkText(t.weightsPath, 'weights path')];
    const createdAt = checkInt(input.createdAt ?? this.now(), 'createdAt');
    const id = input.id === undefined ? newId('eval', createdAt) : checkId(input.id, 'eval');
    const insert = () =>
      this.sql.run(
        `INSERT INTO evals (id, kind, run_id, step, weights_path, params_json, pid, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
        id,
        input.kind,
        runId,
        step,
        weightsPath,
        jsonObject(input.params ?? {}, 'eval params'),
        nullOr(input.pid ?? null, (v) => checkInt(v, 'pid')),
        createdAt,
      );
    insertUnique('An eval', id, () => (runId === null ? insert() : withRun(runId, insert)));
    return this.require(id);
  }

  finish(id: string, input: FinishEvalInput): Eval {
    checkMember(input.status, ['done', 'failed', 'cancelled'] as const, 'eval end status');
    const examples = (input.examples ?? []).map((ex, i) => checkExample(ex, i, id));
    return this.sql.immediate((): Eval => {
      const ev = this.require(id);
      if (ev.status !== 'running' && ev.status !== 'interrupted') {
        throw new StudioError(
          ErrorCode.BAD_ARGUMENT,
          `The eval "${id}" has already finished (${ev.status}).`,
          'Start a new eval to measure again.',
        );
      }
      this.sql.run('DELETE FROM eval_examples WHERE eval_id = ?', id);
      for (const ex of examples) {
        this.sql.run(
          `INSERT INTO eval_examples (eval_id, ind, label, pred, pred_norm, sum_loss_json, avg_loss_json) VALUES (?, ?, ?, ?, ?, ?, ?)`,
          id,
          ex.ind,
          ex.label,
          ex.pred,
          ex.pred_norm,
          JSON.stringify(ex.sum_loss),
          JSON.stringify(ex.avg_loss),
        );
      }
      this.sql.run(
        `UPDATE evals SET status = ?, summary_json = ?, error_json = ?, finished_at = ?, pid = NULL WHERE id = ?`,
        input.status,
        input.summary == null ? null : jsonObject(input.summary, 'eval summary'),
        input.error == null ? null : JSON.stringify(input.error),
        checkInt(input.finishedAt ?? this.now(), 'finishedAt'),
        id,
      );
      return this.require(id);
    });
  }

  get(id: string): Eval | undefined {
    const row = this.sql.get<EvalRow>('SELECT * FROM evals WHERE id = ?', id);
    return row && toEval(row);
  }

  list(filter: ListEvalsFilter): Eval[] {
    const where: string[] = [];
    const params: SqlValue[] = [];
    const filterBy = (column: string, value: SqlValue) => {
      where.push(`${column} = ?`);
      params.push(value);
    };
    if (filter.kind !== undefined) filterBy('kind', checkMember(filter.kind, EVAL_KINDS, 'eval kind'));
    if (filter.status !== undefined) filterBy('status', checkMember(filter.status, EVAL_STATUSES, 'eval status'));
    if (filter.runId !== undefined) filterBy('run_id', filter.runId);
    const sql = `SELECT * FROM evals ${whereAll(where)} ORDER BY created_at DESC, id DESC LIMIT ?`;
    return this.sql.all<EvalRow>(sql, ...params, checkLimit(filter.limit, 1000)).map(toEval);
  }

  examples(evalId: string, opts: ListEvalExamplesOptions): EvalExample[] {
    const sql = `SELECT * FROM eval_examples WHERE eval_id = ? ${opts.wrongOnly ? 'AND pred_norm <> label' : ''} ORDER BY ind LIMIT ? OFFSET ?`;
    const limit = opts.limit === undefined ? -1 : checkInt(opts.limit, 'limit');
    return this.sql.all<EvalExampleRow>(sql, evalId, limit, checkInt(opts.offset ?? 0, 'offset')).map((r) => ({
      evalId: r.eval_id,
      ind: r.ind,
      label: r.label,
      pred: r.pred,
      pred_norm: r.pred_norm,
      sum_loss: parseNumbers(r.sum_loss_json),
      avg_loss: parseNumbers(r.avg_loss_json),
    }));
  }

  delete(id: string): boolean {
    return this.sql.run('DELETE FROM evals WHERE id = ?', id).changes > 0;
  }

  recoverOnStart(): Eval[] {
    return this.sql.immediate((): Eval[] => {
      const running = this.sql.all<EvalRow>(`SELECT * FROM evals WHERE status = 'running' ORDER BY created_at, id`);
      return orphaned(running, this.isPidAlive).map((row) => {
        const err: PlainError = {
          code: ErrorCode.INTERRUPTED,
          message: `The ${row.kind} eval "${row.id}" stopped before it finished: its process${pidNote(row.pid)} was no longer running when the studio started.`,
          hint: 'Start the eval again.',
        };
        this.sql.run(
          `UPDATE evals SET status = 'interrupted', pid = NULL, error_json = ?, finished_at = ? WHERE id = ?`,
          JSON.stringify(err),
          this.now(),
          row.id,
        );
        return this.require(row.id);
      });
    });
  }

  private require(id: string): Eval {
    const ev = this.get(id);
    if (!ev)
      throw new StudioError(
        ErrorCode.NOT_FOUND,
        `There is no eval with the id "${id}".`,
        'List evals to see their ids.',
      );
    return ev;
  }
}

function checkExample(ex: EvalExampleInput, i: number, evalId: string): EvalExampleInput {
  const ints = [ex.ind, ex.label, ex.pred, ex.pred_norm];
  if (!ints.every((n) => Number.isSafeInteger(n)) || !Array.isArray(ex.sum_loss) || !Array.isArray(ex.avg_loss)) {
    throw badArgument(
      `Example ${i} of eval "${evalId}" is malformed: ${JSON.stringify(ex).slice(0, 200)}.`,
      "Each example needs integer ind, label, pred, pred_norm and number arrays sum_loss, avg_loss (the HellaSwag scorer's ExampleResult).",
    );
  }
  return ex;
}

/** JSON has no NaN: a non-finite loss was stored as null and comes back as NaN. */
function parseNumbers(text: string): number[] {
  return (JSON.parse(text) as Array<number | null>).map((x) => (x === null ? Number.NaN : x));
}

function toEval(r: EvalRow): Eval {
  return {
    id: r.id,
    kind: r.kind,
    target:
      r.run_id !== null && r.step !== null ? { runId: r.run_id, step: r.step } : { weightsPath: r.weights_path ?? '' },
    status: r.status,
    params: parseObject(r.params_json),
    summary: r.summary_json === null ? null : parseObject(r.summary_json),
    error: parseError(r.error_json),
    pid: r.pid,
    createdAt: r.created_at,
    finishedAt: r.finished_at,
  };
}
