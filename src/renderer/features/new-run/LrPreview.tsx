import type { RunConfig } from '../../../shared/run-config';

/** build-nanogpt's get_lr (src/core/schedule.ts, which the renderer cannot import): warm-up, cosine, then flat. */
export function learningRate(
  c: Pick<RunConfig, 'max_lr' | 'min_lr_ratio' | 'warmup_steps'>,
  maxSteps: number,
  it: number,
): number {
  const minLr = c.max_lr * c.min_lr_ratio;
  if (it < c.warmup_steps) return (c.max_lr * (it + 1)) / c.warmup_steps;
  if (it > maxSteps) return minLr;
  const ratio = (it - c.warmup_steps) / Math.max(1, maxSteps - c.warmup_steps);
  return minLr + 0.5 * (1 + Math.cos(Math.PI * ratio)) * (c.max_lr - minLr);
}

const W = 320;
const H = 64;

/** The learning-rate schedule as a small line, with the warm-up marked. */
export function LrPreview({ config, steps }: { config: RunConfig; steps: number }) {
  if (!(steps > 0) || !(config.max_lr > 0)) return null;
  const n = Math.min(steps, 200);
  const pts: string[] = [];
  for (let i = 0; i <= n; i++) {
    const it = (i / n) * (steps - 1);
    const lr = learningRate(config, steps, it);
    pts.push(`${((i / n) * W).toFixed(1)},${(H - 4 - (lr / config.max_lr) * (H - 10)).toFixed(1)}`);
  }
  const warm = Math.min(1, config.warmup_steps / steps) * W;
  return (
    <figure className="lr-preview">
      <svg
        viewBox={`0 0 ${W} ${H}`}
        preserveAspectRatio="none"
        role="img"
        aria-label={`Learning rate: warm-up over ${config.warmup_steps} steps to ${config.max_lr}, cosine decay to ${config.max_lr * config.min_lr_ratio} at step ${steps}`}
      >
        <rect x={0} y={0} width={warm} height={H} className="lr-warmup" />
        <polyline points={pts.join(' ')} className="lr-line" />
      </svg>
      <figcaption className="muted small">
        <span>0</span>
        <span>
          lr {config.max_lr.toExponential(1)} → {(config.max_lr * config.min_lr_ratio).toExponential(1)}
        </span>
        <span>{steps.toLocaleString('en-US')} steps</span>
      </figcaption>
    </figure>
  );
}
