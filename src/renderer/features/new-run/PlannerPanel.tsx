import type { ReactNode } from 'react';
import type { EventKind, TimeEstimate } from '../../../shared/estimate';
import type { RunPlan, TimingSource } from '../../../shared/planner';
import type { RunConfig } from '../../../shared/run-config';
import { ErrorNote } from '../../components/ErrorNote';
import { bytes, compact, duration, int, si } from '../../format';
import { href } from '../../router';
import { planOf } from './launch-check';
import type { CalibrationState, TrainedShapeState } from './useThroughputs';

/** What the config costs: size, compute, tokens, memory and time, before the run starts. */
export function PlannerPanel({
  config,
  stale,
  runTimings,
  trained,
  calibration,
  datasetTokens,
  children,
}: {
  config: RunConfig | null;
  stale: boolean;
  /** timings learned from finished runs, by timingKey */
  runTimings: Record<string, TimingSource>;
  /** the shape of the init weights or checkpoint, for a run that does not start from scratch */
  trained: TrainedShapeState;
  calibration: CalibrationState;
  datasetTokens?: number;
  /** what goes at the panel's foot, under a rule */
  children?: ReactNode;
}) {
  if (!config) {
    return (
      <aside className="card planner" aria-labelledby="planner-title">
        <h2 id="planner-title">Plan</h2>
        <p className="muted small">The plan appears when the config is valid.</p>
        {children !== undefined && <div className="planner-foot">{children}</div>}
      </aside>
    );
  }
  const plan = planOf(config, trained, calibration, runTimings);
  const m = plan.memory;
  const memParts = [
    ['Weights', m.params, '--chart-1'],
    ['Gradients', m.grads, '--chart-4'],
    ['AdamW m + v', m.optimizer, '--chart-3'],
    ['Activations', m.activations, '--chart-2'],
  ] as const;
  const { nLayer, nHead, nEmbd, blockSize } = plan.shape;
  const tokensPerParam = plan.totalTokens / plan.params;
  const epochs = datasetTokens ? plan.totalTokens / datasetTokens : undefined;
  return (
    <aside
      className={`card planner${stale ? ' planner-stale' : ''}`}
      aria-labelledby="planner-title"
      data-testid="planner"
    >
      <header className="card-header">
        <h2 id="planner-title">Plan</h2>
        {stale && <span className="muted small">last valid config</span>}
      </header>
      <dl className="plan">
        <dt>Parameters</dt>
        <dd data-testid="plan-params" title={int(plan.params)} data-source={trained.value?.source ?? 'config'}>
          {compact(plan.params)}
          <span className="muted small">
            {nLayer}L · {nHead}H · {nEmbd}C · T {blockSize}
          </span>
        </dd>
        {(trained.loading || (trained.value && trained.value.source !== 'config')) && (
          <>
            <dt title="the run builds its model from these, whatever the model fields say">Shape from</dt>
            <dd data-testid="plan-shape-source">
              {trained.loading
                ? 'reading…'
                : trained.value?.source === 'checkpoint'
                  ? 'the checkpoint'
                  : 'the init weights'}
            </dd>
          </>
        )}
        <dt>FLOPs / token</dt>
        <dd title="6N + 12·L·C·T, N without wpe (training: forward + backward)">{si(plan.flopsPerToken, 'FLOP')}</dd>
        <dt>Tokens / step</dt>
        <dd>{int(plan.tokensPerStep)}</dd>
        <dt title="gradient accumulation: micro-steps of (B × T) per optimizer step">Grad accum.</dt>
        <dd data-testid="plan-accum">
          {int(plan.gradAccumSteps)} × ({config.batch_size} × {config.seq_len}
          {config.world_size > 1 ? ` × ${config.world_size}` : ''})
        </dd>
        <dt>Steps</dt>
        <dd>{int(plan.steps)}</dd>
        <dt>Total tokens</dt>
        <dd title={int(plan.totalTokens)}>{compact(plan.totalTokens)}</dd>
        <dt title="Chinchilla's compute-optimal ratio is about 20">Tokens / param</dt>
        <dd>
          {tokensPerParam < 1
            ? tokensPerParam.toPrecision(2)
            : tokensPerParam < 10
              ? tokensPerParam.toFixed(2)
              : tokensPerParam.toFixed(0)}
        </dd>
        {epochs !== undefined && (
          <>
            <dt title="passes over the dataset's train tokens">Epochs</dt>
            <dd>{epochs < 10 ? epochs.toFixed(2) : epochs.toFixed(0)}</dd>
          </>
        )}
        <dt>Total compute</dt>
        <dd>{si(plan.totalFlops, 'FLOP')}</dd>
      </dl>

      <h3 className="planner-sub">Memory ≈ {bytes(m.total)}</h3>
      <div className="membar" role="img" aria-label={memParts.map(([l, b]) => `${l} ${bytes(b)}`).join(', ')}>
        {memParts.map(([label, b, color]) => (
          <span key={label} style={{ flexGrow: b, background: `var(${color})` }} />
        ))}
      </div>
      <ul className="legend-list small">
        {memParts.map(([label, b, color]) => (
          <li key={label}>
            <span className="swatch" style={{ background: `var(${color})` }} />
            {label}
            <span className="muted">{bytes(b)}</span>
          </li>
        ))}
      </ul>
      <p className="muted small planner-note">
        fp32 weights, gradients and AdamW moments (16 bytes per parameter). Activations: llm.c&apos;s forward buffers
        for one micro-batch of {config.batch_size} × {config.seq_len} tokens, doubled for their gradients.
      </p>

      {trained.error !== undefined && (
        <p className="muted small planner-note" data-testid="plan-shape-error">
          The init weights could not be read, so the plan shows the config&apos;s model:{' '}
          {trained.error instanceof Error ? trained.error.message : String(trained.error)}
        </p>
      )}

      <h3 className="planner-sub">Time</h3>
      <PlanTime plan={plan} config={config} calibration={calibration} />
      {children !== undefined && <div className="planner-foot">{children}</div>}
    </aside>
  );
}

const PART_LABELS: [EventKind | 'startup' | 'steps', string][] = [
  ['steps', 'steps'],
  ['eval', 'val loss'],
  ['hellaswag', 'HellaSwag'],
  ['sample', 'samples'],
  ['checkpoint', 'checkpoints'],
  ['snapshot', 'guard snapshots'],
  ['startup', 'start-up'],
];

/** The parts of a time estimate, largest first: "steps 1 min 2 s · 7 × val loss 1 s · ...". */
function partsText(t: TimeEstimate): string {
  return PART_LABELS.map(([k, label]) => {
    const sec = t.parts[k];
    if (!(sec > 0.5)) return null;
    const n = k === 'steps' ? t.steps : k === 'startup' ? 0 : t.counts[k];
    return { sec, text: `${n > 0 ? `${int(n)} ${label}` : label} ${duration(sec)}` };
  })
    .filter((x): x is { sec: number; text: string } => x !== null)
    .sort((a, b) => b.sec - a.sec)
    .map((x) => x.text)
    .join(' · ');
}

/** The plan's time, where it came from, and the Measure button. */
function PlanTime({ plan, config, calibration }: { plan: RunPlan; config: RunConfig; calibration: CalibrationState }) {
  const bt = `${config.batch_size} × ${config.seq_len}`;
  const src = plan.timing;
  const measuring = calibration.status === 'measuring';
  const measureButton = (label: string) => (
    <button
      type="button"
      className="button"
      style={{ alignSelf: 'flex-start', marginTop: 4 }}
      onClick={calibration.measure}
      disabled={measuring}
    >
      {measuring ? 'Measuring…' : label}
    </button>
  );
  if (plan.seconds !== undefined && plan.time && src) {
    const t = plan.time;
    return (
      <div className="plan-time" data-testid="plan-time" data-source={src.kind} data-seconds={Math.round(plan.seconds)}>
        <strong>≈ {duration(plan.seconds)}</strong>
        {src.kind === 'calibration' ? (
          <span
            className="muted small"
            data-testid="plan-time-source"
            title="A real training step of this model shape and micro-batch, timed in a child process after one warm-up step. Other programs on the same cores make the run slower than this; the run page's ETA follows the run's own steps."
          >
            measured{' '}
            {Date.now() - src.measuredAt < 120_000 ? 'now' : `${duration((Date.now() - src.measuredAt) / 1000)} ago`}:{' '}
            {src.microSteps} {plan.gradAccumSteps > 1 ? 'micro-step' : 'step'}
            {src.microSteps === 1 ? '' : 's'} of {bt} on {src.timing.engine} (
            {compact((config.batch_size * config.seq_len) / (src.timing.microStepMs / 1000))} tok/s)
            {src.runningRuns > 0 &&
              `, while ${src.runningRuns} run${src.runningRuns === 1 ? ' was' : 's were'} training (slower than alone)`}
          </span>
        ) : (
          <span className="muted small" data-testid="plan-time-source">
            at the speed of <a href={href({ page: 'run', runId: src.runId })}>{src.runName}</a> (same model shape,
            micro-batch {bt} and engine; its median step)
          </span>
        )}
        <span className="muted small">{partsText(t)}</span>
        {t.counts.hellaswag > 0 && t.sources.hellaswag === 'none' && (
          <span className="muted small">HellaSwag time not known yet: not counted.</span>
        )}
        {calibration.status === 'error' && <ErrorNote error={calibration.error} />}
        {src.kind === 'run' && measureButton('Measure on this machine now')}
      </div>
    );
  }
  return (
    <div className="plan-time" data-testid="plan-time" data-source={measuring ? 'measuring' : 'none'}>
      <strong>{measuring ? 'Measuring…' : calibration.status === 'checking' ? '…' : 'Unknown'}</strong>
      <span className="muted small">
        {measuring
          ? `Timing a training step of ${bt} on ${config.engine} in the background.`
          : calibration.waiting === 'busy'
            ? 'A run is training: measuring now would slow it down and read slow.'
            : calibration.waiting === 'slow'
              ? `A step of ${bt} is large${calibration.estimateMs !== undefined ? ` (about ${duration(calibration.estimateMs / 1000)} each)` : ''}: measure it when you are ready.`
              : 'No measurement of this model shape and micro-batch on this machine yet.'}
      </span>
      {calibration.status === 'error' && <ErrorNote error={calibration.error} />}
      {calibration.status !== 'checking' && !measuring && measureButton('Measure')}
    </div>
  );
}
