/**
 * Which columns a table shows, and in what order: the user's choice, kept in localStorage. The saved value may be
 * from an older studio (a column since renamed or added), so it is always read through normalizeColumns.
 */

/** A column the user may show, hide and move. Columns that are always there (a row's name, its actions) are not. */
export interface ColumnDef {
  id: string;
  /** its name in the Columns menu (the header itself may be shorter) */
  label: string;
  /** hidden until the user ticks it */
  hiddenByDefault?: boolean;
  /** a few words the menu shows beside the label (e.g. that a narrow table leaves the column out) */
  note?: string;
}

export interface ColumnPrefs {
  /** every known column id, in display order */
  order: string[];
  /** the ids the user hid */
  hidden: string[];
}

const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);

/** The preferences a table starts with: the definitions' order, the columns hidden by default hidden. */
export function defaultColumns(defs: readonly ColumnDef[]): ColumnPrefs {
  return { order: defs.map((d) => d.id), hidden: defs.filter((d) => d.hiddenByDefault).map((d) => d.id) };
}

/**
 * Saved preferences made whole: ids no definition knows are dropped, duplicates kept once, and a column the saved
 * order does not know yet (one added since) is inserted after the column that precedes it in the definitions (so a
 * new column lands near its neighbours, not at the far end), hidden if it is hidden by default.
 */
export function normalizeColumns(saved: unknown, defs: readonly ColumnDef[]): ColumnPrefs {
  const known = new Set(defs.map((d) => d.id));
  const s = (typeof saved === 'object' && saved !== null ? saved : {}) as Record<string, unknown>;
  const savedOrder = strings(s.order).filter((id) => known.has(id));
  if (savedOrder.length === 0 && !Array.isArray(s.hidden)) return defaultColumns(defs);
  const order = [...new Set(savedOrder)];
  const seen = new Set(order);
  const hidden = new Set(strings(s.hidden).filter((id) => known.has(id)));
  defs.forEach((d, i) => {
    if (seen.has(d.id)) return;
    const before = i > 0 ? order.indexOf(defs[i - 1]!.id) : -1;
    order.splice(before + 1, 0, d.id);
    seen.add(d.id);
    if (d.hiddenByDefault) hidden.add(d.id);
  });
  return { order, hidden: order.filter((id) => hidden.has(id)) };
}

/** The ids to show, in order. */
export function visibleColumns(prefs: ColumnPrefs): string[] {
  const hidden = new Set(prefs.hidden);
  return prefs.order.filter((id) => !hidden.has(id));
}

/** Shows or hides one column. */
export function toggleColumn(prefs: ColumnPrefs, id: string, show: boolean): ColumnPrefs {
  const hidden = prefs.hidden.filter((h) => h !== id);
  return { order: prefs.order, hidden: show ? hidden : prefs.order.filter((x) => x === id || hidden.includes(x)) };
}

/** Moves one column `delta` places (−1 = one earlier); a move past either end stops there. */
export function moveColumn(prefs: ColumnPrefs, id: string, delta: number): ColumnPrefs {
  const from = prefs.order.indexOf(id);
  if (from < 0) return prefs;
  const to = Math.max(0, Math.min(prefs.order.length - 1, from + delta));
  if (to === from) return prefs;
  const order = [...prefs.order];
  order.splice(from, 1);
  order.splice(to, 0, id);
  return { order, hidden: prefs.hidden };
}
