/**
 * Allowed folders: besides the workspace, the folders that this window (or a browser on `gpt2-studio serve`) may
 * read and write — datasets to prepare, weights to import, export destinations, the file picker's roots. And whether
 * downloads may reach loopback and private addresses (a mirror on the local network). The command line is not
 * limited by either.
 */
import { useId, useState, type FormEvent } from 'react';
import type { HandlerResult } from '../../../shared/contract';
import { ErrorNote } from '../../components/ErrorNote';
import { useClient, useInvoke } from '../../useInvoke';

type Settings = HandlerResult<'settings-get'>;

export function AllowedFoldersCard({ workspace }: { workspace?: string }) {
  const client = useClient();
  const [settings, reload] = useInvoke('settings-get');
  const [adding, setAdding] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const inputId = useId();
  const privateId = useId();
  const folders = settings.status === 'ok' ? settings.data.allowedFolders : [];

  async function save(patch: { allowedFolders?: string[]; allowPrivateUrls?: boolean }, done: (s: Settings) => string) {
    setError(null);
    setSaved(null);
    setBusy(true);
    try {
      const next = await client.invoke('settings-set', patch);
      setSaved(done(next));
      reload();
      return true;
    } catch (e) {
      setError(e);
      return false;
    } finally {
      setBusy(false);
    }
  }

  async function add(e: FormEvent) {
    e.preventDefault();
    const path = adding.trim();
    if (!path) return;
    const ok = await save(
      { allowedFolders: [...folders, path] },
      (s) => `Allowed ${s.allowedFolders[s.allowedFolders.length - 1] ?? path}.`,
    );
    if (ok) setAdding('');
  }

  return (
    <section className="card" aria-labelledby="allowed-title" data-testid="allowed-folders">
      <header className="card-header">
        <h2 id="allowed-title">Allowed folders</h2>
      </header>
      <p className="muted small">
        The studio reads and writes files for this window only in the workspace and in these folders: text to prepare as
        a dataset, weights to import, folders to export checkpoints to. The file picker offers them as its starting
        points. A folder is kept at its real location (a symlink is followed). The command line is not limited.
      </p>
      {settings.status === 'error' && <ErrorNote error={settings.error} onRetry={reload} />}
      <ul
        aria-label="Allowed folders"
        style={{
          listStyle: 'none',
          margin: '8px 0',
          padding: 0,
          display: 'flex',
          flexDirection: 'column',
          gap: 6,
          overflowWrap: 'anywhere',
        }}
      >
        {workspace && (
          <li>
            <code>{workspace}</code> <span className="muted small">the workspace, always allowed</span>
          </li>
        )}
        {folders.map((f) => (
          <li key={f} data-folder={f}>
            <code>{f}</code>{' '}
            <button
              type="button"
              className="button"
              disabled={busy}
              aria-label={`Remove ${f}`}
              onClick={() => void save({ allowedFolders: folders.filter((x) => x !== f) }, () => `Removed ${f}.`)}
            >
              Remove
            </button>
          </li>
        ))}
        {settings.status === 'ok' && folders.length === 0 && <li className="muted">No other folders yet.</li>}
      </ul>
      <form className="form-grid" onSubmit={(e) => void add(e)}>
        <div className="field field-wide" style={{ maxWidth: 720 }}>
          <label htmlFor={inputId}>Folder to allow</label>
          <div style={{ display: 'flex', gap: 8 }}>
            <input
              id={inputId}
              className="mono"
              data-testid="allowed-folder-input"
              value={adding}
              spellCheck={false}
              autoComplete="off"
              placeholder="/data/corpora"
              onChange={(e) => setAdding(e.target.value)}
              style={{ flex: 1 }}
            />
            <button type="submit" className="button" disabled={busy || adding.trim() === ''}>
              Add folder
            </button>
          </div>
          <span className="field-hint">
            An absolute path (or ~/…) of a folder that exists; not / nor a system folder such as /etc.
          </span>
        </div>
      </form>
      <div style={{ height: 12 }} />
      <label className="check" htmlFor={privateId}>
        <input
          id={privateId}
          type="checkbox"
          data-testid="allow-private-urls"
          checked={settings.status === 'ok' && settings.data.allowPrivateUrls}
          disabled={busy || settings.status !== 'ok'}
          onChange={(e) =>
            void save({ allowPrivateUrls: e.target.checked }, (s) =>
              s.allowPrivateUrls ? 'Private and loopback URLs are allowed.' : 'Private and loopback URLs are refused.',
            )
          }
        />
        Allow private and loopback URLs
      </label>
      <p className="muted small">
        Off by default: downloads then refuse addresses such as 127.0.0.1, 10.x, 192.168.x and 169.254.x, so that a
        browser cannot make the server read its own network. Turn it on to download from a mirror on your local network.
      </p>
      {error != null && <ErrorNote error={error} />}
      {saved && (
        <p className="field-hint" role="status">
          {saved}
        </p>
      )}
    </section>
  );
}
