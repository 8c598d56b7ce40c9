import { useEffect, useId, useRef, useState, type KeyboardEvent } from 'react';
import type { RunFileKind } from '../../../shared/run-files';
import type { Run } from '../../run-info';
import { useClient } from '../../useInvoke';
import { DOWNLOADS, runDownload } from './run-downloads';
import './run-downloads.css';

/**
 * The run page's Download button and its menu: the log, the metrics, the config, the samples and the report. Each
 * is loaded from the service when picked, so the file holds everything recorded, not only what the page shows.
 * The menu follows the menu-button pattern: arrows move, Escape closes it and gives the focus back to the button.
 */
export function DownloadMenu({ run, onError }: { run: Run; onError: (e: unknown) => void }) {
  const client = useClient();
  const [open, setOpen] = useState(false);
  const [busy, setBusy] = useState<RunFileKind | null>(null);
  const box = useRef<HTMLDivElement>(null);
  const button = useRef<HTMLButtonElement>(null);
  const menuId = useId();

  const items = () => [...(box.current?.querySelectorAll<HTMLButtonElement>('[role="menuitem"]') ?? [])];

  // a click anywhere else closes the menu
  useEffect(() => {
    if (!open) return;
    const away = (e: PointerEvent) => {
      if (!box.current?.contains(e.target as Node)) setOpen(false);
    };
    document.addEventListener('pointerdown', away);
    items()[0]?.focus();
    return () => document.removeEventListener('pointerdown', away);
  }, [open]);

  const close = () => {
    setOpen(false);
    button.current?.focus();
  };

  const pick = async (kind: RunFileKind) => {
    close();
    setBusy(kind);
    onError(null);
    try {
      await runDownload(client, run, kind);
    } catch (e) {
      onError(e);
    } finally {
      setBusy(null);
    }
  };

  const onMenuKey = (e: KeyboardEvent<HTMLDivElement>) => {
    const list = items();
    const at = list.indexOf(document.activeElement as HTMLButtonElement);
    const go = (i: number) => list[(i + list.length) % list.length]?.focus();
    switch (e.key) {
      case 'ArrowDown':
        go(at + 1);
        break;
      case 'ArrowUp':
        go(at - 1);
        break;
      case 'Home':
        go(0);
        break;
      case 'End':
        go(list.length - 1);
        break;
      case 'Escape':
        close();
        break;
      case 'Tab':
        setOpen(false);
        return;
      default:
        return;
    }
    e.preventDefault();
  };

  return (
    <div className="download-menu" ref={box}>
      <button
        ref={button}
        type="button"
        className="button"
        aria-haspopup="menu"
        aria-expanded={open}
        aria-controls={open ? menuId : undefined}
        onClick={() => setOpen((o) => !o)}
        onKeyDown={(e) => {
          if (e.key === 'ArrowDown' && !open) {
            e.preventDefault();
            setOpen(true);
          }
        }}
        disabled={busy !== null}
        data-testid="download-button"
      >
        {busy ? 'Preparing…' : 'Download'}
        <svg className="download-caret" width="10" height="10" viewBox="0 0 10 10" aria-hidden="true">
          <path d="M2 3.5l3 3 3-3" fill="none" stroke="currentColor" strokeWidth="1.5" />
        </svg>
      </button>
      {open && (
        <div className="download-list" role="menu" id={menuId} aria-label="Download" onKeyDown={onMenuKey}>
          {DOWNLOADS.map((d) => (
            <button
              key={d.kind}
              type="button"
              role="menuitem"
              tabIndex={-1}
              className="download-item"
              data-kind={d.kind}
              onClick={() => void pick(d.kind)}
            >
              <span className="download-label">{d.label}</span>
              <span className="download-detail">{d.detail}</span>
            </button>
          ))}
        </div>
      )}
    </div>
  );
}
