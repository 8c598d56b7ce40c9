import { describe, expect, it } from 'vitest';
import { STORIES_PER_UNIT, syntheticStory, syntheticUnit } from './synthetic';

describe('the builtin synthetic corpus', () => {
  it('is deterministic per (seed, index) and differs between seeds', () => {
    expect(syntheticStory(1337, 42)).toBe(syntheticStory(1337, 42));
    expect(syntheticStory(1337, 42)).not.toBe(syntheticStory(1338, 42));
    expect(syntheticUnit(7, 3)).toEqual(syntheticUnit(7, 3));
    expect(syntheticUnit(7, 3)).toHaveLength(STORIES_PER_UNIT);
  });

  it('reads as simple English: varied stories of plain sentences', () => {
    const stories = Array.from({ length: 400 }, (_, i) => syntheticStory(1, i));
    expect(new Set(stories).size).toBe(400);
    const openings = new Set(stories.map((s) => s.split(' ').slice(0, 2).join(' ')));
    expect(openings.size).toBeGreaterThan(20);
    for (const s of stories) {
      expect(s).toMatch(/^[A-Z"]/);
      expect(s).toMatch(/[.!"]$/);
      expect(s).not.toMatch(/ {2}|undefined|NaN/);
    }
    const mean = stories.reduce((n, s) => n + s.length, 0) / stories.length;
    expect(mean).toBeGreaterThan(250);
    expect(mean).toBeLessThan(900);
  });
});
