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
/** room above the peak and below the floor, so that the 2 px line is drawn whole at both */
const PAD_TOP = 6;
const PAD_BOTTOM = 4;
const MAX_POINTS = 200;

/**
 * The steps the preview draws and their learning rates: every step of a short schedule, about `maxPoints` of a
 * long one, and always the last step of the warm-up and the first after it (where the rate is max_lr), so that the
 * peak is never stepped over, and the last step. Steps are whole numbers, 0 to steps - 1, as training runs them: a
 * fractional step inside the warm-up would read a rate above max_lr.
 */
export function lrSamples(
  c: Pick<RunConfig, 'max_lr' | 'min_lr_ratio' | 'warmup_steps'>,
  steps: number,
  maxPoints = MAX_POINTS,
): { step: number; lr: number }[] {
  if (!(steps > 0)) return [];
  const last = Math.floor(steps) - 1;
  const at = new Set<number>();
  const n = Math.min(last, maxPoints);
  for (let i = 0; i <= n; i++) at.add(n === 0 ? 0 : Math.round((i / n) * last));
  for (const s of [c.warmup_steps - 1, c.warmup_steps]) if (s >= 0 && s <= last) at.add(Math.floor(s));
  return [...at].sort((a, b) => a - b).map((step) => ({ step, lr: learningRate(c, steps, step) }));
}

/** The learning-rate schedule as a small line, with the warm-up marked. */
export function LrPreview({ config, steps }: { config: RunConfig; steps: number }) {
  if (!(steps > 0) || !(config.max_lr > 0)) return null;
  const samples = lrSamples(config, steps);
  const last = Math.max(1, Math.floor(steps) - 1);
  // the top of the plot is the highest rate drawn (max_lr), whatever the schedule
  const top = Math.max(config.max_lr, ...samples.map((p) => p.lr));
  const x = (step: number) => (step / last) * W;
  const y = (lr: number) => H - PAD_BOTTOM - (lr / top) * (H - PAD_TOP - PAD_BOTTOM);
  const pts = samples.map((p) => `${x(p.step).toFixed(1)},${y(p.lr).toFixed(1)}`);
  // the warm-up ramp: steps 0 to warmup_steps - 1, the last of them at max_lr
  const warm = Math.min(W, Math.max(0, x(config.warmup_steps - 1)));
  return (
    <figure className="lr-preview" data-testid="lr-preview" data-peak-y={y(config.max_lr).toFixed(1)}>
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
