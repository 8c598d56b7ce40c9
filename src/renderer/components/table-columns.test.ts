import { describe, expect, it } from 'vitest';
import {
  defaultColumns,
  moveColumn,
  normalizeColumns,
  toggleColumn,
  visibleColumns,
  type ColumnDef,
} from './table-columns';

const defs: ColumnDef[] = [
  { id: 'a', label: 'A' },
  { id: 'b', label: 'B' },
  { id: 'c', label: 'C', hiddenByDefault: true },
  { id: 'd', label: 'D' },
];

describe('table columns', () => {
  it('starts from the definitions, with the hidden-by-default ones hidden', () => {
    expect(defaultColumns(defs)).toEqual({ order: ['a', 'b', 'c', 'd'], hidden: ['c'] });
    expect(visibleColumns(defaultColumns(defs))).toEqual(['a', 'b', 'd']);
  });

  it('reads nothing, junk or an empty value as the defaults', () => {
    for (const saved of [undefined, null, 3, 'x', {}, { order: 'a' }, { order: [1, 2] }])
      expect(normalizeColumns(saved, defs)).toEqual(defaultColumns(defs));
  });

  it('keeps a saved order and hidden set, drops unknown and repeated ids', () => {
    const p = normalizeColumns({ order: ['d', 'zz', 'c', 'a', 'b', 'a'], hidden: ['a', 'zz'] }, defs);
    expect(p).toEqual({ order: ['d', 'c', 'a', 'b'], hidden: ['a'] });
    expect(visibleColumns(p)).toEqual(['d', 'c', 'b']);
  });

  it('inserts a column added since after its neighbour in the definitions, hidden when hidden by default', () => {
    expect(normalizeColumns({ order: ['d', 'b', 'a'], hidden: [] }, defs)).toEqual({
      order: ['d', 'b', 'c', 'a'],
      hidden: ['c'],
    });
    expect(normalizeColumns({ order: ['b', 'c', 'd'], hidden: [] }, defs).order).toEqual(['a', 'b', 'c', 'd']);
  });

  it('hides and shows a column, keeping the hidden list in display order', () => {
    const p0 = defaultColumns(defs);
    const p1 = toggleColumn(p0, 'a', false);
    expect(p1.hidden).toEqual(['a', 'c']);
    expect(visibleColumns(p1)).toEqual(['b', 'd']);
    expect(toggleColumn(p1, 'c', true).hidden).toEqual(['a']);
    expect(toggleColumn(p1, 'a', false).hidden).toEqual(['a', 'c']);
  });

  it('moves a column up and down, stopping at either end', () => {
    const p = defaultColumns(defs);
    expect(moveColumn(p, 'c', -1).order).toEqual(['a', 'c', 'b', 'd']);
    expect(moveColumn(p, 'c', 1).order).toEqual(['a', 'b', 'd', 'c']);
    expect(moveColumn(p, 'a', -1)).toBe(p);
    expect(moveColumn(p, 'd', 5).order).toEqual(['a', 'b', 'c', 'd']);
    expect(moveColumn(p, 'zz', 1)).toBe(p);
  });

  it('survives a round trip through JSON (as localStorage keeps it)', () => {
    const p = moveColumn(toggleColumn(defaultColumns(defs), 'b', false), 'd', -3);
    expect(normalizeColumns(JSON.parse(JSON.stringify(p)), defs)).toEqual(p);
  });
});
