/**
 * The "Columns" menu of a table: a checkbox per column to show or hide it, and up/down buttons to move it. The
 * table's owner keeps the preferences (usePersistentState) and passes them in; this only edits them.
 */
import { useEffect, useId, useRef, useState } from 'react';
import { defaultColumns, moveColumn, toggleColumn, type ColumnDef, type ColumnPrefs } from './table-columns';

export function ColumnsMenu({
  defs,
  prefs,
  onChange,
  tableName,
}: {
  defs: readonly ColumnDef[];
  prefs: ColumnPrefs;
  onChange: (p: ColumnPrefs) => void;
  /** "runs": names the menu for a screen reader ("Columns of the runs table") */
  tableName: string;
}) {
  const [open, setOpen] = useState(false);
  const box = useRef<HTMLDivElement>(null);
  const panelId = useId();
  const byId = new Map(defs.map((d) => [d.id, d]));
  const hidden = new Set(prefs.hidden);

  // a click elsewhere or Escape closes the menu (Escape gives the focus back to its button)
  useEffect(() => {
    if (!open) return;
    const onDown = (e: PointerEvent) => {
      if (box.current && !box.current.contains(e.target as Node)) setOpen(false);
    };
    const onKey = (e: KeyboardEvent) => {
      if (e.key !== 'Escape') return;
      setOpen(false);
      box.current?.querySelector<HTMLButtonElement>('.columns-button')?.focus();
    };
    document.addEventListener('pointerdown', onDown);
    document.addEventListener('keydown', onKey);
    return () => {
      document.removeEventListener('pointerdown', onDown);
      document.removeEventListener('keydown', onKey);
    };
  }, [open]);

  return (
    <div className="columns-menu" ref={box}>
      <button
        type="button"
        className="button columns-button"
        aria-expanded={open}
        aria-controls={panelId}
        onClick={() => setOpen((o) => !o)}
        title={`Choose and order the columns of the ${tableName} table`}
      >
        Columns
      </button>
      {open && (
        <div className="columns-panel" id={panelId} role="group" aria-label={`Columns of the ${tableName} table`}>
          <ul className="columns-list">
            {prefs.order.map((id, i) => {
              const d = byId.get(id);
              if (!d) return null;
              return (
                <li key={id} className="columns-item" data-column={id}>
                  <label className="columns-check">
                    <input
                      type="checkbox"
                      checked={!hidden.has(id)}
                      onChange={(e) => onChange(toggleColumn(prefs, id, e.target.checked))}
                    />
                    {d.label}
                  </label>
                  {d.note && <span className="columns-note muted">{d.note}</span>}
                  <button
                    type="button"
                    className="icon-button columns-move"
                    disabled={i === 0}
                    onClick={() => onChange(moveColumn(prefs, id, -1))}
                    aria-label={`Move ${d.label} left`}
                    title="Move left (up in this list)"
                  >
                    ↑
                  </button>
                  <button
                    type="button"
                    className="icon-button columns-move"
                    disabled={i === prefs.order.length - 1}
                    onClick={() => onChange(moveColumn(prefs, id, 1))}
                    aria-label={`Move ${d.label} right`}
                    title="Move right (down in this list)"
                  >
                    ↓
                  </button>
                </li>
              );
            })}
          </ul>
          <div className="columns-foot">
            <span className="muted small">Kept for this browser.</span>
            <button type="button" className="button columns-reset" onClick={() => onChange(defaultColumns(defs))}>
              Reset
            </button>
          </div>
        </div>
      )}
    </div>
  );
}
