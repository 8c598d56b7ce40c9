import { describe, expect, it } from 'vitest';
import { ago, rankRanges } from './run-nodes';

describe('the Nodes table of the Run page', () => {
  it('shows ranks as ranges', () => {
    expect(rankRanges([0, 1, 2, 3])).toBe('0–3');
    expect(rankRanges([2])).toBe('2');
    expect(rankRanges([7, 4, 5, 6])).toBe('4–7');
    expect(rankRanges([0, 1, 4, 6, 7])).toBe('0–1, 4, 6–7');
    expect(rankRanges([3, 3, 4])).toBe('3–4');
    expect(rankRanges([])).toBe('—');
  });

  it('shows a heartbeat as relative time', () => {
    const now = 1_700_000_000_000;
    expect(ago(now - 3_400, now)).toBe('3 s ago');
    expect(ago(now - 125_000, now)).toBe('2 min 5 s ago');
    expect(ago(now - 300, now)).toBe('just now');
    // a node's clock a little ahead of this one's
    expect(ago(now + 800, now)).toBe('just now');
    expect(ago(Number.NaN, now)).toBe('—');
  });
});
