import type { ReactNode } from 'react';
import { planRun, shapeKey, planShape, type ThroughputSource } from '../../../shared/planner';
import type { RunConfig } from '../../../shared/run-config';
import { bytes, compact, duration, int, si } from '../../format';
import { href } from '../../router';

/** What the config costs: size, compute, tokens, memory and time, before the run starts. */
export function PlannerPanel({
  config,
  stale,
  throughputs,
  datasetTokens,
  children,
}: {
  config: RunConfig | null;
  stale: boolean;
  throughputs: Record<string, ThroughputSource>;
  datasetTokens?: number;
  /** the submit button and its notes, at the panel's foot */
  children?: ReactNode;
}) {
  if (!config) {
    return (
      <aside className="card planner" aria-labelledby="planner-title">
        <h2 id="planner-title">Plan</h2>
        <p className="muted small">The plan appears when the config is valid.</p>
        <div className="planner-foot">{children}</div>
      </aside>
    );
  }
  const plan = planRun(config, throughputs[shapeKey(planShape(config))]);
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
    <aside className={`card planner${stale ? ' planner-stale' : ''}`} aria-labelledby="planner-title" data-testid="planner">
      <header className="card-header">
        <h2 id="planner-title">Plan</h2>
        {stale && <span className="muted small">last valid config</span>}
      </header>
      <dl className="plan">
        <dt>Parameters</dt>
        <dd data-testid="plan-params" title={int(plan.params)}>
          {compact(plan.params)}
          <span className="muted small">
            {nLayer}L · {nHead}H · {nEmbd}C · T {blockSize}
          </span>
        </dd>
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
        <dd>{tokensPerParam < 1 ? tokensPerParam.toPrecision(2) : tokensPerParam < 10 ? tokensPerParam.toFixed(2) : tokensPerParam.toFixed(0)}</dd>
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
        fp32 weights, gradients and AdamW moments (16 bytes per parameter). Activations: llm.c&apos;s forward buffers for one
        micro-batch of {config.batch_size} × {config.seq_len} tokens, doubled for their gradients.
      </p>

      <h3 className="planner-sub">Time</h3>
      {plan.seconds !== undefined && plan.throughput ? (
        <p className="plan-time" data-testid="plan-time">
          <strong>≈ {duration(plan.seconds)}</strong>
          <span className="muted small">
            at {compact(plan.throughput.tokensPerSec)} tok/s, measured by{' '}
            <a href={href({ page: 'run', runId: plan.throughput.runId })}>{plan.throughput.runName}</a> (same model shape, latest step)
          </span>
        </p>
      ) : (
        <p className="plan-time" data-testid="plan-time">
          <strong>Unknown</strong>
          <span className="muted small">No finished run of this model shape on this machine yet; its measured tok/s will give the time.</span>
        </p>
      )}
      <div className="planner-foot">{children}</div>
    </aside>
  );
}
