/**
 * How well the time estimates hold against the wall clock. Two runs through the Studio service, each to its end
 * in a fresh workspace: the nano preset on the builtin stories (all 300 steps), and the micro preset on Tiny
 * Shakespeare cut to 40 steps. For each it prints two lines:
 *   - eta-<run>-plan: the New run page's time, from a calibration (runs-calibrate) before the first step;
 *   - eta-<run>-at-20pct: the run page's estimate once 20% of the steps are done (the time so far plus its ETA);
 * each against the run's actual wall time (from runs-create to the run's `done`), with predicted / actual as the
 * ratio. The goal is within 15%. `config` holds the parts of each estimate, the old estimates for comparison
 * (the run page's mean dt of the last 20 steps), and the machine's load average, since another program on the
 * machine slows a run down after the calibration measured it.
 *
 * Options: --only-run nano|micro; --micro-steps N (default 40).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Studio } from '../src/node/studio';
import { getPreset } from '../src/node/runs/presets';
import { main as cli } from '../src/cli/main';
import {
  estimateRemaining,
  estimateRunTime,
  EVENT_KINDS,
  EVENT_METRICS,
  type EventKind,
  type TimeEstimate,
} from '../src/shared/estimate';
import { paramCount, planShape } from '../src/shared/planner';
import { checkRunConfig, type RunConfig } from '../src/shared/run-config';
import { printResult } from './lib';

const argv = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
};
const onlyRun = opt('only-run');
const microSteps = Number(opt('micro-steps') ?? 40);
const shared = path.resolve(process.env.GPT2_STUDIO_SHARED ?? path.join(import.meta.dirname, '..', '..', 'shared'));
const quiet = { out: () => {}, err: (s: string) => void process.stderr.write(s) };

const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;
const parts = (e: TimeEstimate) =>
  Object.fromEntries(
    Object.entries(e.parts)
      .filter(([, v]) => v > 0)
      .map(([k, v]) => [k, round(v)]),
  );

interface Case {
  name: string;
  preset: string;
  patch: Record<string, unknown>;
  prepare: (home: string) => Promise<void>;
}

async function runCase(k: Case): Promise<void> {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), `gpt2-eta-${k.name}-`));
  const studio = new Studio({ home });
  try {
    await k.prepare(home);
    const input = { ...getPreset(k.preset).config, ...k.patch, name: `eta ${k.name}` };
    const parsed = checkRunConfig(input);
    if (!parsed.ok) throw new Error(`${k.name}: ${JSON.stringify(parsed.errors)}`);
    const c: RunConfig = parsed.config;
    const params = paramCount(planShape(c));
    const loadBefore = os.loadavg()[0]!;

    // before the first step: what the New run page says
    let t = performance.now();
    const cal = await studio.invoke('runs-calibrate', { config: input, measure: true });
    const calibrateSec = (performance.now() - t) / 1000;
    if (!cal) throw new Error('runs-calibrate measured nothing');
    const plan = estimateRunTime(c, cal, { params });

    // the run, to its end; the run page's estimate once 20% of the steps are done
    const maxSteps = c.max_steps!;
    const at20 = Math.ceil(maxSteps * 0.2);
    let runId = '';
    const ended = new Promise<string>((resolve) => {
      studio.on('run-status', (p) => {
        if (p.runId === runId && p.status !== 'running' && p.status !== 'created') resolve(p.status);
      });
    });
    let mid: { elapsedSec: number; eta: TimeEstimate; meanDtEtaSec: number } | undefined;
    let midPending = false;
    const onStep = async (stepsDone: number) => {
      if (mid || midPending || stepsDone < at20) return;
      midPending = true;
      const elapsedSec = (performance.now() - t) / 1000;
      const run = await studio.invoke('runs-get', { id: runId });
      const m = await studio.invoke('runs-metrics', { id: runId });
      const dt = m['train/dt_ms'];
      if (!dt) throw new Error('runs-metrics returned no train/dt_ms series');
      const eventMs: Partial<Record<EventKind, (number | null)[]>> = {};
      for (const e of EVENT_KINDS) {
        const n = EVENT_METRICS[e];
        if (n && m[n]) eventMs[e] = m[n].values;
      }
      const eta = estimateRemaining(
        c,
        {
          stepsDone: run.stepsDone,
          series: { steps: dt.steps, dtMs: dt.values, wallSec: dt.wallTimes.map((w) => w / 1000) },
          eventMs,
          startedAtSec: run.startedAt ? run.startedAt / 1000 : undefined,
        },
        cal,
        { params },
      );
      const tail = dt.values.slice(-20).filter((v): v is number => v !== null && Number.isFinite(v));
      const meanDtEtaSec = ((maxSteps - run.stepsDone) * (tail.reduce((a, b) => a + b, 0) / tail.length)) / 1000;
      if (eta) mid = { elapsedSec, eta, meanDtEtaSec };
      else midPending = false;
    };
    studio.on('run-step', (p) => {
      if (p.runId === runId) void onStep(p.step + 1);
    });
    t = performance.now();
    const run = await studio.invoke('runs-create', { config: input });
    runId = run.id;
    const status = await ended;
    const actualSec = (performance.now() - t) / 1000;
    if (status !== 'done') throw new Error(`${k.name}: the run ended ${status}`);
    const loadAfter = os.loadavg()[0]!;
    const metrics = await studio.invoke('runs-metrics', { id: runId });
    const dtSeries = metrics['train/dt_ms'];
    if (!dtSeries) throw new Error(`${k.name}: runs-metrics returned no train/dt_ms series`);
    const dts = dtSeries.values.filter((v): v is number => v !== null);
    // where the wall time went, as the run recorded it (the parts the plan estimates)
    const finished = await studio.invoke('runs-get', { id: runId });
    const sumOf = (name: string) => (metrics[name]?.values ?? []).reduce<number>((a, v) => a + (v ?? 0), 0) / 1000;
    const firstWall = dtSeries.wallTimes[0] ?? NaN;
    const actualParts: Record<string, number> = {
      steps: round(sumOf('train/dt_ms')),
      startupToFirstStep: round(
        (firstWall - (finished.startedAt ?? firstWall)) / 1000 -
          (dts[0] ?? 0) / 1000 -
          (metrics['time/eval_ms']?.steps[0] === 0 ? (metrics['time/eval_ms'].values[0] ?? 0) / 1000 : 0),
      ),
    };
    for (const e of EVENT_KINDS) {
      const n = EVENT_METRICS[e];
      if (n && metrics[n]) actualParts[e] = round(sumOf(n));
    }
    const sorted = [...dts].sort((a, b) => a - b);
    const machine = {
      cores: os.availableParallelism(),
      cpu: os.cpus()[0]?.model ?? 'unknown',
      loadavg1mBefore: round(loadBefore),
      loadavg1mAfter: round(loadAfter),
    };
    const common = {
      steps: maxSteps,
      batch: `${c.batch_size}x${c.seq_len}`,
      accum: c.total_batch_size / (c.batch_size * c.seq_len),
      engine: cal.engine,
      runMedianDtMs: round(sorted[sorted.length >> 1] ?? NaN),
      runMeanDtMs: round(dts.reduce((a, b) => a + b, 0) / dts.length),
      ...machine,
    };

    printResult({
      name: `eta-${k.name}-plan`,
      figure: round(plan.seconds),
      unit: 's',
      peer: 'actual wall time',
      peerFigure: round(actualSec),
      ratio: round(plan.seconds / actualSec, 3),
      config: {
        ...common,
        calibrateSec: round(calibrateSec),
        calibratedMicroStepMs: round(cal.microStepMs),
        calibratedStepMs: round(plan.stepMs),
        parts: parts(plan),
        actualParts,
      },
    });
    if (!mid) throw new Error(`${k.name}: no estimate at 20% of the run`);
    const predicted = mid.elapsedSec + mid.eta.seconds;
    printResult({
      name: `eta-${k.name}-at-20pct`,
      figure: round(predicted),
      unit: 's',
      peer: 'actual wall time',
      peerFigure: round(actualSec),
      ratio: round(predicted / actualSec, 3),
      config: {
        ...common,
        elapsedSec: round(mid.elapsedSec),
        etaSec: round(mid.eta.seconds),
        stepMs: round(mid.eta.stepMs),
        parts: parts(mid.eta),
        sources: mid.eta.sources,
        meanDtEtaSec: round(mid.meanDtEtaSec),
        meanDtRatio: round((mid.elapsedSec + mid.meanDtEtaSec) / actualSec, 3),
      },
    });
  } finally {
    await studio.shutdown(10_000);
    fs.rmSync(home, { recursive: true, force: true });
  }
}

const cases: Case[] = [
  {
    name: 'nano',
    preset: 'nano',
    patch: {},
    prepare: async (home) => {
      if ((await cli(['prepare', 'builtin', '--home', home], quiet)) !== 0) throw new Error('prepare builtin failed');
    },
  },
  {
    name: 'micro',
    preset: 'micro',
    // cut to a benchmark's length; the warm-up must fit in it
    patch: { max_steps: microSteps, warmup_steps: Math.max(1, Math.floor(microSteps / 10)) },
    prepare: async (home) => {
      const file = path.join(shared, 'data', 'tinyshakespeare.txt');
      if (!fs.existsSync(file))
        throw new Error(
          `Tiny Shakespeare is not at ${file}; set GPT2_STUDIO_SHARED to the shared folder that holds data/tinyshakespeare.txt.`,
        );
      if ((await cli(['prepare', 'tinyshakespeare', '--file', file, '--home', home], quiet)) !== 0)
        throw new Error('prepare tinyshakespeare failed');
    },
  },
];

for (const k of cases) {
  if (onlyRun && onlyRun !== k.name) continue;
  process.stderr.write(`[bench] eta: ${k.name}\n`);
  await runCase(k);
}
