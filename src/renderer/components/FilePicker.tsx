import { useCallback, useEffect, useId, useMemo, useRef, useState, type KeyboardEvent } from 'react';
import type { HandlerResult } from '../../shared/contract';
import { ErrorCode, StudioError } from '../../shared/errors';
import { bytes } from '../format';
import { useClient } from '../useInvoke';
import { Dialog } from './Dialog';
import './FilePicker.css';
import { ErrorNote } from './ErrorNote';

type Listing = HandlerResult<'files-browse'>;
type Entry = Listing['entries'][number];

/** The last segment of a path, and the path without it ("/a/b.txt" -> ["/a", "b.txt"]; POSIX and Windows). */
function splitPath(p: string): [string, string] {
  const trimmed = p.replace(/[\\/]+$/, '');
  const i = Math.max(trimmed.lastIndexOf('/'), trimmed.lastIndexOf('\\'));
  if (i < 0) return ['', trimmed];
  return [i === 0 ? trimmed.slice(0, 1) : trimmed.slice(0, i), trimmed.slice(i + 1)];
}

function FolderGlyph() {
  return (
    <svg
      className="fp-glyph fp-glyph-dir"
      width="16"
      height="16"
      viewBox="0 0 24 24"
      fill="none"
      stroke="currentColor"
      strokeWidth="1.8"
      strokeLinejoin="round"
      aria-hidden="true"
      focusable="false"
    >
      <path d="M3 6a1 1 0 0 1 1-1h5l2 2h9a1 1 0 0 1 1 1v10a1 1 0 0 1-1 1H4a1 1 0 0 1-1-1z" />
    </svg>
  );
}

function FileGlyph() {
  return (
    <svg
      className="fp-glyph"
      width="16"
      height="16"
      viewBox="0 0 24 24"
      fill="none"
      stroke="currentColor"
      strokeWidth="1.8"
      strokeLinejoin="round"
      aria-hidden="true"
      focusable="false"
    >
      <path d="M6 3h8l4 4v14H6zM14 3v4h4" />
    </svg>
  );
}

/** What a root's button says: "Workspace", or the allowed folder's last segment. */
function rootName(r: { path: string; label: string }): string {
  return r.label === 'the workspace' ? 'Workspace' : splitPath(r.path)[1] || r.path;
}

/**
 * A file or folder picker over the machine the studio runs on (files-browse): the current folder, an editable path,
 * Up, one button per folder it may open (the workspace and the allowed folders of Settings; nothing outside them is
 * listed), a name filter, an extension filter, and a keyboard-navigable list (arrows, Home/End, Enter opens a folder
 * or picks a file, Backspace goes up). Select picks the highlighted entry, or the current folder when folders may be
 * picked and nothing is highlighted.
 */
export function FilePicker(props: {
  title: string;
  mode: 'file' | 'folder' | 'either';
  extensions?: string[];
  initialPath?: string;
  onPick: (path: string) => void;
  onClose: () => void;
}) {
  const { title, mode, initialPath, onPick, onClose } = props;
  // by value: a caller may pass a new array on each render
  const extKey = (props.extensions ?? []).join('\n');
  const extensions = useMemo(() => (extKey ? extKey.split('\n') : undefined), [extKey]);
  const client = useClient();
  const [listing, setListing] = useState<Listing | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(false);
  const [pathText, setPathText] = useState(initialPath ?? '');
  const [filter, setFilter] = useState('');
  const [onlyExt, setOnlyExt] = useState(true);
  const [showHidden, setShowHidden] = useState(false);
  const [active, setActive] = useState(-1);
  const listRef = useRef<HTMLUListElement>(null);
  const seq = useRef(0);
  const ids = { path: useId(), filter: useId(), list: useId(), status: useId() };
  const hasExt = !!extensions && extensions.length > 0 && mode !== 'folder';

  const open = useCallback(
    async (
      target: string | undefined,
      opts: { select?: string; focusList?: boolean; fallback?: boolean; note?: unknown } = {},
    ) => {
      const my = ++seq.current;
      setLoading(true);
      try {
        const l = await client.invoke('files-browse', {
          ...(target ? { path: target } : {}),
          ...(hasExt && onlyExt ? { extensions } : {}),
          ...(showHidden ? { showHidden: true } : {}),
        });
        if (my !== seq.current) return;
        setListing(l);
        setPathText(l.path);
        setError(opts.note ?? null);
        setFilter('');
        const sel = opts.select ? l.entries.findIndex((e) => e.name === opts.select) : -1;
        setActive(sel);
        if (opts.focusList) listRef.current?.focus();
      } catch (e) {
        if (my !== seq.current) return;
        // an initial path outside the allowed folders: open the workspace, and say why
        if (opts.fallback && target && e instanceof StudioError && e.code === ErrorCode.FORBIDDEN) {
          void open(undefined, { note: e });
          return;
        }
        // an initial path that is a file (or gone): open its folder with it highlighted
        if (opts.fallback && target) {
          const [dir, base] = splitPath(target);
          if (dir && dir !== target) {
            void open(dir, { select: base, fallback: true });
            return;
          }
        }
        setError(e);
      } finally {
        if (my === seq.current) setLoading(false);
      }
    },
    [client, extensions, hasExt, onlyExt, showHidden],
  );

  useEffect(() => {
    // the first listing, and again when the filters that the service applies change
    void open(listing?.path ?? (initialPath || undefined), {
      fallback: !listing,
      select: listing ? listing.entries[active]?.name : undefined,
    });
    // (`open` changes with the filters; the listing and highlight are read as they are when they change)
  }, [open]);

  const shown: Entry[] = useMemo(() => {
    const q = filter.trim().toLowerCase();
    const all = listing?.entries ?? [];
    return q ? all.filter((e) => e.name.toLowerCase().includes(q)) : all;
  }, [listing, filter]);

  const current = active >= 0 && active < shown.length ? shown[active] : null;

  useEffect(() => {
    if (active >= shown.length) setActive(shown.length - 1);
  }, [active, shown.length]);

  useEffect(() => {
    if (!current) return;
    document.getElementById(`${ids.list}-${active}`)?.scrollIntoView({ block: 'nearest' });
  }, [current, active, ids.list]);

  const canPickEntry = (e: Entry | null): boolean => !!e && (e.kind === 'file' ? mode !== 'folder' : mode !== 'file');
  const selectLabel =
    current?.kind === 'dir' && mode === 'file'
      ? 'Open folder'
      : current
        ? 'Select'
        : mode === 'file'
          ? 'Select'
          : 'Select this folder';
  const selectDisabled =
    loading || !listing || (current ? current.kind === 'file' && mode === 'folder' : mode === 'file');

  const activate = (e: Entry) => {
    if (e.kind === 'dir') void open(e.path, { focusList: true });
    else if (mode !== 'folder') onPick(e.path);
  };

  const select = () => {
    if (!listing) return;
    if (current) {
      if (current.kind === 'dir' && mode === 'file') void open(current.path, { focusList: true });
      else if (canPickEntry(current)) onPick(current.path);
      return;
    }
    if (mode !== 'file') onPick(listing.path);
  };

  const up = () => {
    if (listing?.parent) {
      const [, base] = splitPath(listing.path);
      void open(listing.parent, { select: base, focusList: true });
    }
  };

  const onListKey = (e: KeyboardEvent<HTMLUListElement>) => {
    const n = shown.length;
    const move = (i: number) => {
      e.preventDefault();
      if (n > 0) setActive(Math.max(0, Math.min(n - 1, i)));
    };
    switch (e.key) {
      case 'ArrowDown':
        move(active + 1);
        break;
      case 'ArrowUp':
        move(active <= 0 ? 0 : active - 1);
        break;
      case 'Home':
        move(0);
        break;
      case 'End':
        move(n - 1);
        break;
      case 'PageDown':
        move(active + 10);
        break;
      case 'PageUp':
        move(active - 10);
        break;
      case 'Enter':
        e.preventDefault();
        if (current) activate(current);
        break;
      case 'Backspace':
      case 'ArrowLeft':
        e.preventDefault();
        up();
        break;
      case 'ArrowRight':
        if (current?.kind === 'dir') {
          e.preventDefault();
          activate(current);
        }
        break;
      default:
        // type-ahead: the next entry starting with the letter
        if (e.key.length === 1 && !e.ctrlKey && !e.metaKey && !e.altKey && n > 0) {
          const k = e.key.toLowerCase();
          for (let d = 1; d <= n; d++) {
            const i = (Math.max(active, -1) + d) % n;
            if (shown[i]!.name.toLowerCase().startsWith(k)) {
              e.preventDefault();
              setActive(i);
              break;
            }
          }
        }
    }
  };

  const folders = shown.filter((e) => e.kind === 'dir').length;
  const files = shown.length - folders;
  const what = mode === 'file' ? 'a file' : mode === 'folder' ? 'a folder' : 'a file or a folder';

  return (
    <Dialog
      title={title}
      onClose={onClose}
      testId="file-picker"
      footer={
        <>
          <span className="fp-chosen muted small" title={current?.path ?? listing?.path}>
            {current ? current.path : listing && mode !== 'file' ? `${listing.path} (this folder)` : `Choose ${what}.`}
          </span>
          <button type="button" className="button" onClick={onClose}>
            Cancel
          </button>
          <button type="button" className="button button-primary" onClick={select} disabled={selectDisabled}>
            {selectLabel}
          </button>
        </>
      }
    >
      <div className="file-picker">
        <form
          className="fp-pathbar"
          onSubmit={(e) => {
            e.preventDefault();
            void open(pathText.trim() || undefined);
          }}
        >
          <button
            type="button"
            className="button"
            onClick={up}
            disabled={!listing?.parent || loading}
            aria-label="Up to the parent folder"
            title="Up to the parent folder (Backspace)"
          >
            ↑ Up
          </button>
          {!listing?.roots && (
            <button
              type="button"
              className="button"
              onClick={() => void open(undefined)}
              disabled={loading}
              title="Your home folder"
            >
              Home
            </button>
          )}
          <label className="visually-hidden" htmlFor={ids.path}>
            Folder path
          </label>
          <input
            id={ids.path}
            className="fp-path mono"
            value={pathText}
            spellCheck={false}
            autoComplete="off"
            onChange={(e) => setPathText(e.target.value)}
            placeholder="/path/to/folder"
          />
          <button type="submit" className="button" disabled={loading}>
            Go
          </button>
        </form>
        {listing?.roots && (
          <div className="fp-roots" role="group" aria-label="Folders the studio may open">
            {listing.roots.map((r) => (
              <button
                key={r.path}
                type="button"
                className="button"
                title={r.path}
                aria-pressed={listing.path === r.path}
                disabled={loading}
                onClick={() => void open(r.path, { focusList: true })}
              >
                {rootName(r)}
              </button>
            ))}
            <span className="muted small">Other folders: add them in Settings → Allowed folders.</span>
          </div>
        )}
        <div className="fp-filters">
          <label className="visually-hidden" htmlFor={ids.filter}>
            Filter by name
          </label>
          <input
            id={ids.filter}
            type="search"
            placeholder="Filter by name…"
            value={filter}
            onChange={(e) => {
              setFilter(e.target.value);
              setActive(-1);
            }}
            onKeyDown={(e) => {
              if (e.key === 'ArrowDown') {
                e.preventDefault();
                setActive(0);
                listRef.current?.focus();
              }
            }}
          />
          {hasExt && (
            <label className="check">
              <input type="checkbox" checked={onlyExt} onChange={(e) => setOnlyExt(e.target.checked)} />
              Only {extensions!.map((x) => (x.startsWith('.') ? x : `.${x}`)).join(', ')}
            </label>
          )}
          <label className="check">
            <input type="checkbox" checked={showHidden} onChange={(e) => setShowHidden(e.target.checked)} />
            Hidden files
          </label>
        </div>
        {error !== null && <ErrorNote error={error} />}
        <ul
          ref={listRef}
          id={ids.list}
          className="fp-list"
          role="listbox"
          tabIndex={0}
          aria-label={listing ? `Contents of ${listing.path}` : 'Folder contents'}
          aria-activedescendant={current ? `${ids.list}-${active}` : undefined}
          aria-describedby={ids.status}
          aria-busy={loading}
          onKeyDown={onListKey}
          onFocus={() => {
            if (active < 0 && shown.length > 0) setActive(0);
          }}
        >
          {shown.map((e, i) => (
            <li
              key={e.path}
              id={`${ids.list}-${i}`}
              role="option"
              aria-selected={i === active}
              className={`fp-item${i === active ? ' fp-item-active' : ''}${e.kind === 'dir' ? ' fp-item-dir' : ''}`}
              data-kind={e.kind}
              data-name={e.name}
              onClick={() => setActive(i)}
              onDoubleClick={() => activate(e)}
            >
              {e.kind === 'dir' ? <FolderGlyph /> : <FileGlyph />}
              <span className="fp-name">{e.name}</span>
              <span className="fp-size muted">{e.kind === 'file' && e.size !== undefined ? bytes(e.size) : ''}</span>
            </li>
          ))}
          {listing && shown.length === 0 && (
            <li className="fp-empty muted" role="presentation">
              {filter
                ? `Nothing here matches “${filter}”.`
                : hasExt && onlyExt
                  ? `No folders or ${extensions!.map((x) => (x.startsWith('.') ? x : `.${x}`)).join(', ')} files here.`
                  : 'This folder is empty.'}
            </li>
          )}
        </ul>
        <p className="muted small fp-status" id={ids.status} aria-live="polite">
          {loading
            ? 'Loading…'
            : listing
              ? `${folders} folder${folders === 1 ? '' : 's'}, ${files} file${files === 1 ? '' : 's'}. Arrows move, Enter opens a folder${mode !== 'folder' ? ' or picks a file' : ''}, Backspace goes up.`
              : ''}
        </p>
      </div>
    </Dialog>
  );
}
