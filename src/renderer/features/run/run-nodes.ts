/** What the Nodes table of the Run page shows of a multi-node run's nodes, as text (pure, so it is unit-tested). */
import { duration } from '../../format';

/** Global ranks as ranges: [0, 1, 2, 3] -> "0–3", [2] -> "2", [0, 1, 4, 6, 7] -> "0–1, 4, 6–7", [] -> "—". */
export function rankRanges(ranks: readonly number[]): string {
  const sorted = [...new Set(ranks)].sort((a, b) => a - b);
  if (!sorted.length) return '—';
  const parts: string[] = [];
  let start = sorted[0]!;
  let prev = start;
  for (const r of [...sorted.slice(1), Number.NaN]) {
    if (r === prev + 1) {
      prev = r;
      continue;
    }
    parts.push(start === prev ? String(start) : `${start}–${prev}`);
    start = prev = r;
  }
  return parts.join(', ');
}

/** How long ago `ms` was at `now`: "just now" under a second (or a clock a little ahead), else "3 s ago", "2 min 5 s ago". */
export function ago(ms: number, now: number): string {
  const s = (now - ms) / 1000;
  if (!Number.isFinite(s)) return '—';
  if (s < 1) return 'just now';
  return `${duration(Math.floor(s))} ago`;
}
