import { describe, expect, it } from 'vitest';
import { href, navPageOf, parseRoute } from './router';

describe('hash router', () => {
  it('parses and writes every route', () => {
    expect(parseRoute('')).toEqual({ page: 'runs' });
    expect(parseRoute('#/settings')).toEqual({ page: 'settings' });
    expect(parseRoute('#/nope')).toEqual({ page: 'runs' });
    expect(parseRoute('#/run/run-20261128-193000-ab12')).toEqual({ page: 'run', runId: 'run-20261128-193000-ab12' });
    expect(parseRoute('#/new-run?from=run-1')).toEqual({ page: 'new-run', from: 'run-1' });
    for (const r of [
      { page: 'run', runId: 'a b' },
      { page: 'new-run', from: 'x' },
      { page: 'new-run' },
      { page: 'compare' },
    ] as const) {
      expect(parseRoute(href(r))).toEqual(r);
    }
    expect(navPageOf({ page: 'run', runId: 'x' })).toBe('runs');
  });
});
