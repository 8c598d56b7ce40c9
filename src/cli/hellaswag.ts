import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { ErrorCode, StudioError } from '../shared/errors';
import { HELLASWAG_BASELINES, parseHellaswag, runHellaswag } from '../core/evals/hellaswag';
import { Workspace } from '../node/workspace';
import { resolveHome } from '../node/workspace';
import { loadTarget } from '../node/evals/service';
import { getEngine } from '../node/engines';
import type { Model } from '../core/engine/types';
import { common, needWeights, num, openModel, parse, type CliIo } from './common';

async function openRunCheckpoint(
  home: string,
  runId: string,
  step: number | undefined,
  engineName: string,
  backend: string | undefined,
  io: CliIo,
): Promise<{ model: Model }> {
  const t = loadTarget(home, { runId, step });
  const engine = await getEngine(engineName, { backend });
  io.err(`model: ${t.label}; engine: ${engine.info().detail}\n`);
  return { model: await engine.createModel(t.config, t.weights) };
}

function findData(explicit: string | undefined, homeFlag: string | undefined): string {
  if (explicit) {
    const p = path.resolve(explicit);
    if (!existsSync(p))
      throw new StudioError(
        ErrorCode.FILE_NOT_FOUND,
        `HellaSwag data file ${p} does not exist.`,
        'Pass --data with the path of hellaswag_val.jsonl.',
      );
    if (!statSync(p).isFile()) {
      const inside = path.join(p, 'hellaswag_val.jsonl');
      throw new StudioError(
        ErrorCode.BAD_ARGUMENT,
        `HellaSwag data ${p} is a folder, not a file.`,
        existsSync(inside) ? `Pass --data ${inside}.` : 'Pass --data with the path of hellaswag_val.jsonl.',
      );
    }
    return p;
  }
  const p = new Workspace(resolveHome({ flag: homeFlag })).hellaswagData;
  if (!existsSync(p)) {
    throw new StudioError(
      ErrorCode.FILE_NOT_FOUND,
      `No HellaSwag data in the workspace (looked for ${p}).`,
      'Download it with "gpt2-studio prepare hellaswag", or pass --data FILE.',
    );
  }
  return p;
}

/** gpt2-studio hellaswag (--weights W | --run ID [--step N]) [--data FILE] [--limit N] [--engine E] [--json] [--strict] */
export async function hellaswagCommand(argv: string[], io: CliIo): Promise<number> {
  const a = parse(
    argv,
    {
      ...common,
      run: { type: 'string' },
      step: { type: 'string' },
      data: { type: 'string' },
      limit: { type: 'string' },
      strict: { type: 'boolean', default: false },
      home: { type: 'string' },
    },
    'hellaswag',
  );
  if (a.help) {
    io.out(
      'gpt2-studio hellaswag (--weights W | --run ID [--step N]) [--data FILE] [--limit N] [--engine E] [--strict] [--json]\n',
    );
    return 0;
  }
  if ((a.run === undefined) === (a.weights === undefined)) {
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      'hellaswag needs exactly one of --weights W or --run ID.',
      'Example: --weights model.safetensors, or --run run-20261128-193000-ab12 --step 5000.',
    );
  }
  if (a.step !== undefined && a.run === undefined)
    throw new StudioError(ErrorCode.BAD_ARGUMENT, '--step goes with --run.', 'Pass --run ID --step N.');
  const limit = num(a.limit, 'limit', { int: true, min: 1 });
  const file = findData(a.data, a.home);
  const parsed = parseHellaswag(readFileSync(file, 'utf8'), { strict: a.strict, source: file });
  for (const s of parsed.skipped) io.err(`warning: ${file}, line ${s.line}: ${s.message}; skipped\n`);
  if (parsed.skipped.length)
    io.err(`${parsed.skipped.length} malformed line(s) skipped (use --strict to stop on the first)\n`);
  const { model } =
    a.weights !== undefined
      ? await openModel(needWeights(a.weights, 'hellaswag', a.home), a.engine, a.backend, io)
      : await openRunCheckpoint(
          resolveHome({ flag: a.home }),
          a.run!,
          num(a.step, 'step', { int: true, min: 0 }),
          a.engine,
          a.backend,
          io,
        );
  try {
    const tty = process.stderr.isTTY === true;
    let lastPrint = 0;
    const t0 = performance.now();
    const res = await runHellaswag(model, parsed.examples, {
      limit,
      onProgress: (done, total, s) => {
        const now = performance.now();
        if (done !== total && now - lastPrint < (tty ? 200 : 5000)) return;
        lastPrint = now;
        const rate = done / ((now - t0) / 1000);
        const eta = rate > 0 ? (total - done) / rate : 0;
        const width = 30;
        const filled = Math.round((done / total) * width);
        const line = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} acc_norm ${(s.correctNorm / done).toFixed(4)} | ${rate.toFixed(1)} ex/s | eta ${eta.toFixed(0)}s`;
        io.err(tty ? `\r${line}${done === total ? '\n' : ''}` : `${line}\n`);
      },
    });
    const s = res.summary;
    for (const k of s.skipped) io.err(`warning: ${k.message}; skipped\n`);
    if (a.json) {
      io.out(
        JSON.stringify({
          data: file,
          summary: { ...s, malformed: parsed.skipped },
          baselines: HELLASWAG_BASELINES,
          examples: res.examples,
        }) + '\n',
      );
    } else {
      io.out(
        `acc: ${s.correct}/${s.n}=${s.acc.toFixed(4)} acc_norm: ${s.correctNorm}/${s.n}=${s.accNorm.toFixed(4)}\n`,
      );
      io.out(
        'reference (full 10,042-example split): ' +
          HELLASWAG_BASELINES.map((b) => `${b.model} acc_norm ${b.accNorm}`).join(', ') +
          '\n',
      );
    }
    return 0;
  } finally {
    model.dispose();
  }
}
