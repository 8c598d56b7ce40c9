import { describe, expect, it } from 'vitest';
import { genId } from '../../../shared/schemas';
import { newGenId } from './gen-id';

describe('newGenId', () => {
  it('is a generation id the service accepts, and a new one each time', () => {
    const ids = Array.from({ length: 100 }, newGenId);
    for (const id of ids) expect(genId.safeParse(id).success).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
  });
});
