import { useEffect, useId, useState, type FormEvent } from 'react';
import { ErrorNote } from '../../components/ErrorNote';
import { useClient, useInvoke } from '../../useInvoke';
import { AllowedFoldersCard } from './AllowedFoldersCard';
import { ModelsCard } from './ModelsCard';
import { NotificationsCard } from './NotificationsCard';

/** The Hugging Face endpoint (a mirror works) and token that dataset downloads use. */
function HubSettings() {
  const client = useClient();
  const [settings, reload] = useInvoke('settings-get');
  const [endpoint, setEndpoint] = useState('');
  const [token, setToken] = useState('');
  const [message, setMessage] = useState<{ ok: boolean; text: string } | null>(null);
  const eid = useId();
  const tid = useId();
  useEffect(() => {
    if (settings.status === 'ok') setEndpoint(settings.data.hfEndpoint ?? '');
  }, [settings]);

  async function save(e: FormEvent, clearToken = false) {
    e.preventDefault();
    setMessage(null);
    try {
      const next = await client.invoke('settings-set', {
        hfEndpoint: endpoint.trim() === '' ? null : endpoint.trim(),
        ...(clearToken ? { hfToken: null } : token !== '' ? { hfToken: token } : {}),
      });
      setToken('');
      setMessage({ ok: true, text: `Saved. Token ${next.hfTokenSet ? 'set' : 'not set'}.` });
      reload();
    } catch (err) {
      setMessage({ ok: false, text: err instanceof Error ? err.message : String(err) });
    }
  }

  return (
    <section className="card" aria-labelledby="hub-title">
      <header className="card-header">
        <h2 id="hub-title">Hugging Face</h2>
      </header>
      <p className="muted small">
        Where FineWeb-edu is downloaded from. Leave the endpoint empty for HF_ENDPOINT or https://huggingface.co; a
        mirror such as https://hf-mirror.com works. The token is kept in the workspace, readable only by you, and never
        shown again.
      </p>
      {settings.status === 'error' && <ErrorNote error={settings.error} onRetry={reload} />}
      <form className="form-grid form-grid-2" onSubmit={(e) => void save(e)}>
        <div className="field">
          <label htmlFor={eid}>Endpoint</label>
          <input
            id={eid}
            data-testid="hf-endpoint"
            value={endpoint}
            placeholder="https://huggingface.co"
            onChange={(e) => setEndpoint(e.target.value)}
          />
        </div>
        <div className="field">
          <label htmlFor={tid}>
            Token {settings.status === 'ok' && settings.data.hfTokenSet ? '(set)' : '(not set)'}
          </label>
          <input
            id={tid}
            data-testid="hf-token"
            type="password"
            autoComplete="off"
            value={token}
            placeholder="hf_…"
            onChange={(e) => setToken(e.target.value)}
          />
        </div>
        <div className="field field-wide" style={{ flexDirection: 'row', gap: 8 }}>
          <button type="submit" className="button">
            Save
          </button>
          {settings.status === 'ok' && settings.data.hfTokenSet && (
            <button type="button" className="button" onClick={(e) => void save(e, true)}>
              Forget the token
            </button>
          )}
        </div>
        {message && (
          <p className={message.ok ? 'field-hint' : 'field-error'} role="status">
            {message.text}
          </p>
        )}
      </form>
    </section>
  );
}

export function SettingsPage() {
  const client = useClient();
  const [info, reloadInfo] = useInvoke('app-info');
  const [engines, reloadEngines] = useInvoke('engines-list');

  return (
    <div className="stack">
      <section className="card" aria-labelledby="workspace-title">
        <header className="card-header">
          <h2 id="workspace-title">Workspace</h2>
        </header>
        {info.status === 'loading' && (
          <p className="muted" aria-busy="true">
            Loading…
          </p>
        )}
        {info.status === 'error' && <ErrorNote error={info.error} onRetry={reloadInfo} />}
        {info.status === 'ok' && (
          <dl className="facts">
            <dt>Folder</dt>
            <dd>
              <code data-testid="workspace-path">{info.data.home}</code>
              <span className="muted small">datasets, runs, checkpoints and downloads live here</span>
            </dd>
            <dt>Version</dt>
            <dd>GPT-2 Studio {info.data.version}</dd>
            <dt>Runtime</dt>
            <dd>
              Node {info.data.node}
              {info.data.electron ? `, Electron ${info.data.electron}` : ''} on {info.data.platform} ({info.data.arch})
            </dd>
            <dt>Connected</dt>
            <dd>{client.transport === 'ipc' ? 'Desktop app (IPC)' : `Browser, served from ${window.location.host}`}</dd>
          </dl>
        )}
      </section>

      <section className="card" aria-labelledby="engines-title">
        <header className="card-header">
          <h2 id="engines-title">Engines</h2>
          <button type="button" className="button" onClick={reloadEngines} disabled={engines.status === 'loading'}>
            Check again
          </button>
        </header>
        <p className="muted small">
          The engine that trains, evaluates and samples. The default is the fastest available one.
        </p>
        {engines.status === 'loading' && (
          <p className="muted" aria-busy="true">
            Checking the engines of this machine…
          </p>
        )}
        {engines.status === 'error' && <ErrorNote error={engines.error} onRetry={reloadEngines} />}
        {engines.status === 'ok' && (
          <table className="table engines-table" aria-labelledby="engines-title">
            <colgroup>
              <col className="engines-name" />
              <col className="engines-status" />
              <col className="engines-detail" />
              <col />
            </colgroup>
            <thead>
              <tr>
                <th scope="col">Engine</th>
                <th scope="col">Status</th>
                <th scope="col">Detail</th>
                <th scope="col">Notes</th>
              </tr>
            </thead>
            <tbody>
              {engines.data.map((e) => (
                <tr key={e.name} data-engine={e.name}>
                  <th scope="row">
                    <code>{e.name}</code>
                  </th>
                  <td>
                    <span className={`pill ${e.available ? 'pill-ok' : 'pill-off'}`}>
                      {e.available ? 'Available' : 'Unavailable'}
                    </span>
                  </td>
                  <td>{e.detail || <span className="muted">—</span>}</td>
                  <td>
                    {e.notes.length === 0 ? (
                      <span className="muted">—</span>
                    ) : (
                      <ul className="notes">
                        {e.notes.map((n, i) => (
                          <li key={i}>{n}</li>
                        ))}
                      </ul>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>

      <NotificationsCard />

      <ModelsCard />

      <AllowedFoldersCard workspace={info.status === 'ok' ? info.data.home : undefined} />

      <HubSettings />
    </div>
  );
}
