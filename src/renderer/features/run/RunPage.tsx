import { accPercent } from '../../../shared/accuracy';
import { useEffect, useId, useMemo, useRef, useState } from 'react';
import { ErrorNote } from '../../components/ErrorNote';
import { ChartToolbar, type Series, type XKind } from '../../components/chart';
import { StatusPill } from '../../components/StatusPill';
import { compact, dateTime, duration, fixed, fullDateTime, int, metric, timeOfDay } from '../../format';
import { href, pageHref } from '../../router';
import { canResume, canStop, engineUsedLabel, modelLabel, plannedSteps, runSeconds, type Run } from '../../run-info';
import { RunFacts } from './RunFacts';
import { RunNodes } from './RunNodes';
import { DownloadMenu } from './DownloadMenu';
import { useClient } from '../../useInvoke';
import { useTicker } from '../../useTicker';
import { usePersistentState } from '../../usePersistentState';
import { RunCharts, type ChartOptions } from './RunCharts';
import { useRunData, type LogLine, type SampleGroup } from './useRunData';
import {
  EVENT_KINDS,
  EVENT_METRICS,
  estimateRemaining,
  estimateRunTime,
  type Calibration,
  type EventKind,
  type TimeEstimate,
} from '../../../shared/estimate';
import { paramCount, planShape } from '../../../shared/planner';
import { checkRunConfig } from '../../../shared/run-config';

export function RunPage({ runId }: { runId: string }) {
  const data = useRunData(runId);
  const { run, error, deleted } = data;

  if (deleted) {
    return (
      <section className="empty" aria-labelledby="gone-title">
        <h1 id="gone-title" tabIndex={-1}>
          Run not found
        </h1>
        <p className="muted">
          There is no run <code>{runId}</code> in this workspace: it was deleted, or the link is wrong.
        </p>
        <a className="button" href={href({ page: 'runs' })}>
          Back to the runs
        </a>
      </section>
    );
  }
  if (!run) {
    return error ? (
      <ErrorNote error={error} onRetry={data.reload} />
    ) : (
      <p className="muted" aria-busy="true">
        Loading the run…
      </p>
    );
  }
  return <RunView run={run} data={data} />;
}

function RunView({ run, data }: { run: Run; data: ReturnType<typeof useRunData> }) {
  const [smoothing, setSmoothing] = usePersistentState('run.smoothing', 0.6);
  const [logY, setLogY] = usePersistentState('run.logY', false);
  const [xKind, setXKind] = usePersistentState<XKind>('run.xKind', 'step');
  const [clip, setClip] = usePersistentState('run.clip', false);
  const options: ChartOptions = { smoothing, logY, xKind, clip };
  useEffect(() => {
    document.title = `${run.name} · GPT-2 Studio`;
  }, [run.name]);

  return (
    <div className="stack run-page" data-run-id={run.id}>
      <RunHeader run={run} setRun={data.setRun} />
      {run.error && run.status !== 'running' && <ErrorNote error={run.error} />}
      <RunNodes run={run} />
      <StatStrip run={run} series={data.series} version={data.version} live={data.live} />
      <section className="card card-tight" aria-labelledby="curves-title">
        <header className="card-header">
          <h2 id="curves-title">Curves</h2>
          <ChartToolbar
            smoothing={smoothing}
            setSmoothing={setSmoothing}
            logY={logY}
            setLogY={setLogY}
            xKind={xKind}
            setXKind={setXKind}
            clip={clip}
            setClip={setClip}
          />
        </header>
        <RunCharts series={data.series} version={data.version} options={options} syncKey={`run-${run.id}`} />
        <p className="muted small chart-help">
          Smoothing is TensorBoard&apos;s debiased exponential moving average (train loss, gradient norm and throughput;
          the faint line is the raw value). Drag across a chart to zoom, double-click to reset; hover to read the
          values.
        </p>
      </section>
      <div className="run-bottom">
        <LogPanel logs={data.logs} series={data.series} version={data.version} running={run.status === 'running'} />
        <SamplesPanel groups={data.samples} />
      </div>
      <details className="card card-tight config-details">
        <summary>Run config</summary>
        <pre className="code-block">{JSON.stringify(run.config, null, 2)}</pre>
      </details>
    </div>
  );
}

function RunHeader({ run, setRun }: { run: Run; setRun: (r: Run) => void }) {
  const client = useClient();
  const [pending, setPending] = useState<null | 'stop' | 'pause' | 'resume'>(null);
  const [actionError, setActionError] = useState<unknown>(null);
  const status = run.status;
  // a stop or pause is pending until the worker has checkpointed and the status changes
  useEffect(() => setPending(null), [status]);

  const act = async (what: 'stop' | 'pause' | 'resume') => {
    setActionError(null);
    setPending(what);
    try {
      const name = what === 'stop' ? 'runs-stop' : what === 'pause' ? 'runs-pause' : 'runs-resume';
      const r = await client.invoke(name, { id: run.id });
      if (what === 'resume') setRun(r);
    } catch (e) {
      setActionError(e);
      setPending(null);
    }
  };

  const model = modelLabel(run);
  const dataset = typeof run.config.dataset === 'string' ? run.config.dataset : '—';
  return (
    <header className="run-header">
      <div className="run-title">
        <a className="back-link" href={href({ page: 'runs' })}>
          ← Runs
        </a>
        <div className="run-title-row">
          <h1 tabIndex={-1}>{run.name}</h1>
          <StatusPill status={status} />
        </div>
        <p className="run-meta muted small">
          <code>{run.id}</code>
          <span>model {model}</span>
          <span>dataset {dataset}</span>
          {run.preset && <span>preset {run.preset}</span>}
          <span title={run.attempts.length ? run.attempts[run.attempts.length - 1]!.build : undefined}>
            engine {engineUsedLabel(run)}
          </span>
          <span title={fullDateTime(run.createdAt)}>created {dateTime(run.createdAt)}</span>
          {run.tags.map((t) => (
            <span key={t} className="tag">
              {t}
            </span>
          ))}
        </p>
        {run.notes && <p className="run-notes">{run.notes}</p>}
        <RunFacts run={run} />
      </div>
      <div className="run-actions" role="group" aria-label="Run controls">
        {canStop(status) && (
          <>
            <button type="button" className="button" onClick={() => act('pause')} disabled={pending !== null}>
              {pending === 'pause' ? 'Pausing…' : 'Pause'}
            </button>
            <button
              type="button"
              className="button button-danger"
              onClick={() => act('stop')}
              disabled={pending !== null}
            >
              {pending === 'stop' ? 'Stopping…' : 'Stop'}
            </button>
          </>
        )}
        {canResume(status) && (
          <button
            type="button"
            className="button button-primary"
            onClick={() => act('resume')}
            disabled={pending !== null}
          >
            {pending === 'resume' ? 'Resuming…' : status === 'created' ? 'Start' : 'Resume'}
          </button>
        )}
        <a className="button" href={pageHref('checkpoints', { run: run.id })}>
          Checkpoints
        </a>
        <a className="button" href={href({ page: 'new-run', from: run.id })}>
          New run from this config
        </a>
        <DownloadMenu run={run} onError={setActionError} />
      </div>
      {actionError !== null && (
        <div className="run-action-error">
          <ErrorNote error={actionError} />
        </div>
      )}
    </header>
  );
}

const EOT_TEXT = '<|endoftext|>';

/**
 * A sample's text with each end-of-text token shown as a marker, not as text that reads like output: a base model
 * ends a document there and starts another.
 */
function WithEotMarks({ text }: { text: string }) {
  const parts = text.split(EOT_TEXT);
  if (parts.length === 1) return <>{text}</>;
  return (
    <>
      {parts.map((p, i) => (
        <span key={i}>
          {i > 0 && (
            <span
              className="eot-mark"
              title="end of text (token 50256): the model ended the document here and began another"
            >
              end of text
            </span>
          )}
          {p}
        </span>
      ))}
    </>
  );
}

function last(s: Series | undefined): number | undefined {
  if (!s) return undefined;
  for (let i = s.values.length - 1; i >= 0; i--) if (Number.isFinite(s.values[i])) return s.values[i];
  return undefined;
}

/** A calibration of the run's step that the service already has (runs-calibrate without measuring), for the ETA. */
function useCachedCalibration(run: Run): Calibration | undefined {
  const client = useClient();
  const [cal, setCal] = useState<Calibration | undefined>();
  const running = run.status === 'running';
  useEffect(() => {
    if (!running) return;
    let live = true;
    client.invoke('runs-calibrate', { config: run.config }).then(
      (c) => live && setCal(c ?? undefined),
      () => undefined,
    );
    return () => {
      live = false;
    };
  }, [client, run.id, run.config, running]);
  return cal;
}

const ETA_PARTS: [EventKind | 'steps', string][] = [
  ['steps', 'steps'],
  ['eval', 'val loss'],
  ['hellaswag', 'HellaSwag'],
  ['sample', 'samples'],
  ['checkpoint', 'checkpoints'],
  ['snapshot', 'guard snapshots'],
];

/** What the ETA is made of, for its tooltip. */
function etaTitle(e: TimeEstimate): string {
  const parts = ETA_PARTS.filter(([k]) => e.parts[k] > 0.5).map(([k, label]) =>
    k === 'steps'
      ? `${int(e.steps)} steps at ${Math.round(e.stepMs)} ms (the last 20 steps: their median and its capped excess) = ${duration(e.parts.steps)}`
      : `${int(e.counts[k])} × ${label} at ${e.costs[k] < 1000 ? `${Math.round(e.costs[k])} ms` : duration(e.costs[k] / 1000)} (${e.sources[k] === 'measured' ? 'measured in this run' : e.sources[k] === 'wall-gap' ? 'read off this run’s wall clock' : e.sources[k] === 'timing' ? 'from a calibration' : 'a rough guess until it happens'}) = ${duration(e.parts[k])}`,
  );
  return parts.join('\n');
}

function StatStrip({
  run,
  series,
  version,
  live,
}: {
  run: Run;
  series: Record<string, Series>;
  version: number;
  live: { skipped: number; mfu?: number; receivedAt?: number };
}) {
  const now = useTicker(run.status === 'running');
  const planned = plannedSteps(run);
  const calibration = useCachedCalibration(run);
  const stats = useMemo(() => {
    void version;
    const dt = series['train/dt_ms'];
    // the time of every recorded step, over all the run's attempts (stop, resume): its training time
    let trainSec: number | undefined;
    if (dt && dt.values.length) {
      trainSec = dt.values.reduce<number>((a, b) => (b !== null && Number.isFinite(b) ? a + b : a), 0) / 1000;
    }
    // the time left: the run's own recent steps, and what the evaluations, samples and checkpoints left cost
    let eta: TimeEstimate | undefined;
    /** before the first step: the plan from a calibration, counted from the run's start */
    let planned: TimeEstimate | undefined;
    const parsed = checkRunConfig(run.config);
    if (parsed.ok && run.status === 'running' && run.stepsDone === 0 && calibration)
      planned = estimateRunTime(parsed.config, calibration);
    if (dt && parsed.ok && run.status === 'running') {
      const eventMs: Partial<Record<EventKind, number[]>> = {};
      for (const k of EVENT_KINDS) {
        const name = EVENT_METRICS[k];
        if (name && series[name]) eventMs[k] = series[name].values;
      }
      // the shape trained (a fine-tune's is its weights'), for the rough costs of what has not happened yet
      const params = run.attempts.at(-1)?.model.params ?? paramCount(planShape(parsed.config));
      eta = estimateRemaining(
        parsed.config,
        {
          stepsDone: run.stepsDone,
          series: { steps: dt.steps, dtMs: dt.values, wallSec: dt.wall },
          eventMs,
          startedAtSec: run.startedAt ? run.startedAt / 1000 : undefined,
        },
        calibration,
        { params },
      );
    }
    return {
      trainSec,
      loss: last(series['train/loss']),
      tokPerSec: last(series['train/tok_per_sec']),
      hellaswag: last(series['hellaswag/acc_norm']),
      eta,
      planned,
    };
  }, [series, version, run, calibration]);
  const elapsed = runSeconds(run, now);
  // counted down between steps from when the latest step arrived, so that it does not stand still during a long step
  const sinceStep = live.receivedAt ? Math.max(0, (now - live.receivedAt) / 1000) : 0;
  const eta = stats.eta
    ? Math.max(0, stats.eta.seconds - Math.min(sinceStep, stats.eta.stepMs / 1000))
    : stats.planned && elapsed !== undefined
      ? Math.max(0, stats.planned.seconds - elapsed)
      : undefined;
  const progress = planned ? Math.min(1, run.stepsDone / planned) : 0;

  return (
    <section className="stat-strip" aria-label="Run summary">
      {/* data-received-at: when the latest step event reached the page (the e2e measures the event latency) */}
      <div
        className="stat stat-wide"
        data-testid="step-counter"
        data-step={run.stepsDone}
        data-received-at={live.receivedAt}
      >
        {/* steps done, not the step's index: the charts count steps from 0, so "2 of 60" is after step 1 */}
        <span className="stat-label">Steps done</span>
        <span className="stat-value">
          {int(run.stepsDone)}
          <span className="muted"> of {planned !== undefined ? int(planned) : '?'} steps</span>
        </span>
        <span className="progress" aria-hidden="true">
          <span style={{ width: `${(progress * 100).toFixed(1)}%` }} />
        </span>
      </div>
      <Stat label="Train loss" value={metric(stats.loss)} testId="stat-loss" />
      <Stat label="Best val" value={fixed(run.bestValLoss, 4)} title="Best val loss" />
      <Stat label="Tokens" value={compact(run.tokensSeen)} title={int(run.tokensSeen)} />
      <Stat label="tok/s" value={compact(stats.tokPerSec)} />
      {live.mfu !== undefined && <Stat label="MFU" value={`${(live.mfu * 100).toFixed(1)}%`} />}
      {stats.hellaswag !== undefined && (
        <Stat label="HellaSwag" value={accPercent(stats.hellaswag)} testId="stat-hellaswag" />
      )}
      {stats.trainSec !== undefined ? (
        <Stat
          label="Train time"
          value={duration(stats.trainSec)}
          title={`The steps' own time over every attempt; ${duration(elapsed)} since it was last started`}
        />
      ) : (
        <Stat label={run.status === 'running' ? 'Elapsed' : 'Duration'} value={duration(elapsed)} />
      )}
      <Stat
        label="ETA"
        value={eta !== undefined ? duration(eta) : '—'}
        title={
          stats.eta
            ? etaTitle(stats.eta)
            : stats.planned
              ? 'the plan from a calibration of this step, until the first steps are done'
              : undefined
        }
        testId="stat-eta"
      />
      <Stat
        label="Checkpoint"
        value={run.lastCheckpointStep !== null ? `step ${run.lastCheckpointStep}` : '—'}
        testId="stat-checkpoint"
      />
      {live.skipped > 0 && <Stat label="Skipped updates" value={String(live.skipped)} />}
    </section>
  );
}

function Stat({ label, value, title, testId }: { label: string; value: string; title?: string; testId?: string }) {
  return (
    <div className="stat" title={title} data-testid={testId}>
      <span className="stat-label">{label}</span>
      <span className="stat-value">{value}</span>
    </div>
  );
}

interface Line {
  key: string;
  time: number;
  level: LogLine['level'] | 'step';
  message: string;
}

const MAX_SHOWN = 500;

function LogPanel({
  logs,
  series,
  version,
  running,
}: {
  logs: LogLine[];
  series: Record<string, Series>;
  version: number;
  running: boolean;
}) {
  const [showSteps, setShowSteps] = usePersistentState('run.logSteps', true);
  const box = useRef<HTMLDivElement>(null);
  const stick = useRef(true);
  const lines = useMemo((): Line[] => {
    void version;
    const out: Line[] = logs
      .slice(-MAX_SHOWN)
      .map((l) => ({ key: `l${l.seq}`, time: l.time, level: l.level, message: l.message }));
    if (showSteps) {
      const loss = series['train/loss'];
      if (loss) {
        const lr = series['train/lr'];
        const norm = series['train/norm'];
        const tps = series['train/tok_per_sec'];
        const from = Math.max(0, loss.steps.length - MAX_SHOWN);
        for (let i = from; i < loss.steps.length; i++) {
          const step = loss.steps[i];
          // the other step metrics share the loss' steps
          const at = (s: Series | undefined) => (s && s.steps[i] === step ? s.values[i] : undefined);
          const parts = [`step ${String(step).padStart(5)}`, `loss ${fixed(loss.values[i], 6)}`];
          const l = at(lr);
          if (l !== undefined) parts.push(`lr ${l.toExponential(4)}`);
          const n = at(norm);
          if (n !== undefined) parts.push(`norm ${fixed(n, 4)}`);
          const t = at(tps);
          if (t !== undefined) parts.push(`tok/sec ${fixed(t, 2)}`);
          out.push({ key: `s${step}`, time: loss.wall[i]! * 1000, level: 'step', message: parts.join(' | ') });
        }
      }
      out.sort((a, b) => a.time - b.time);
    }
    return out.slice(-MAX_SHOWN);
  }, [logs, series, version, showSteps]);

  useEffect(() => {
    const el = box.current;
    if (el && stick.current) el.scrollTop = el.scrollHeight;
  }, [lines]);

  return (
    <section className="card card-tight log-panel" aria-labelledby="log-title">
      <header className="card-header">
        <h2 id="log-title">Log {running && <span className="live-dot" aria-label="live" />}</h2>
        <label className="check">
          <input type="checkbox" checked={showSteps} onChange={(e) => setShowSteps(e.target.checked)} />
          Step lines
        </label>
      </header>
      <div
        className="log"
        ref={box}
        role="log"
        aria-live="off"
        tabIndex={0}
        aria-label="Run log"
        data-testid="run-log"
        onScroll={(e) => {
          const el = e.currentTarget;
          stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 24;
        }}
      >
        {lines.length === 0 && <p className="muted small">Nothing logged yet.</p>}
        {lines.map((l) => (
          <div key={l.key} className={`log-line log-${l.level}`}>
            <span className="log-time">{timeOfDay(l.time)}</span>
            <span className="log-msg">{l.message}</span>
          </div>
        ))}
      </div>
    </section>
  );
}

function SamplesPanel({ groups }: { groups: SampleGroup[] }) {
  const [picked, setPicked] = useState<number | null>(null);
  const sid = useId();
  const group = groups.find((g) => g.step === picked) ?? groups[0];
  return (
    <section className="card card-tight samples-panel" aria-labelledby="samples-title" data-testid="samples">
      <header className="card-header">
        <h2 id="samples-title">Samples</h2>
        {groups.length > 1 && (
          <div className="inline-select">
            <label className="muted small" htmlFor={sid}>
              at
            </label>
            <select id={sid} value={group?.step} onChange={(e) => setPicked(Number(e.target.value))}>
              {groups.map((g, i) => (
                <option key={g.step} value={g.step}>
                  step {g.step}
                  {i === 0 ? ' (latest)' : ''}
                </option>
              ))}
            </select>
          </div>
        )}
      </header>
      {!group ? (
        <p className="muted small">No samples yet. The run samples every sample_interval steps.</p>
      ) : (
        <ol className="samples" aria-label={`Samples at step ${group.step}`}>
          {group.samples.map((text, i) => {
            const hasPrompt = group.prompt && text.startsWith(group.prompt);
            return (
              <li key={i} className="sample">
                {hasPrompt ? (
                  <>
                    <mark className="sample-prompt">{group.prompt}</mark>
                    <WithEotMarks text={text.slice(group.prompt.length)} />
                  </>
                ) : (
                  <WithEotMarks text={text} />
                )}
              </li>
            );
          })}
        </ol>
      )}
      {group && groups.length === 1 && <p className="muted small samples-step">step {group.step}</p>}
    </section>
  );
}
