/** Rates and ETAs for progress reports. */

/**
 * A rate over a sliding window: feed it running totals, read units per second over the last `windowMs`
 * (over everything so far while less time has passed).
 */
export class RateMeter {
  private readonly samples: Array<{ t: number; v: number }> = [];
  private readonly windowMs: number;
  private readonly now: () => number;

  constructor(opts: { windowMs?: number; now?: () => number } = {}) {
    this.windowMs = opts.windowMs ?? 5000;
    this.now = opts.now ?? (() => performance.now());
  }

  /** Records the running total `value` (it may restart lower, e.g. after a resumed download's first sample). */
  add(value: number): void {
    const t = this.now();
    this.samples.push({ t, v: value });
    // keep one sample older than the window, so the rate spans the whole window
    while (this.samples.length > 2 && t - this.samples[1]!.t > this.windowMs) this.samples.shift();
  }

  /** units per second; 0 until two samples span some time */
  get rate(): number {
    if (this.samples.length < 2) return 0;
    const a = this.samples[0]!;
    const b = this.samples[this.samples.length - 1]!;
    const dt = (b.t - a.t) / 1000;
    return dt > 0 ? Math.max(0, (b.v - a.v) / dt) : 0;
  }

  /** seconds until `total`, when the rate is known */
  eta(total: number | undefined): number | undefined {
    const r = this.rate;
    const last = this.samples.at(-1);
    if (total === undefined || !last || r <= 0) return undefined;
    return Math.max(0, (total - last.v) / r);
  }
}

/** Calls `fn` at most once per `intervalMs` (the first call passes); `force` always passes. */
export function throttle(
  intervalMs: number,
  now: () => number = () => performance.now(),
): (force?: boolean) => boolean {
  let last = -Infinity;
  return (force = false) => {
    const t = now();
    if (!force && t - last < intervalMs) return false;
    last = t;
    return true;
  };
}
