import { ErrorNote } from '../../components/ErrorNote';
import { useClient, useInvoke } from '../../useInvoke';

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
        {info.status === 'loading' && <p className="muted" aria-busy="true">Loading…</p>}
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
        {engines.status === 'loading' && <p className="muted" aria-busy="true">Checking the engines of this machine…</p>}
        {engines.status === 'error' && <ErrorNote error={engines.error} onRetry={reloadEngines} />}
        {engines.status === 'ok' && (
          <table className="table" aria-labelledby="engines-title">
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
                    <span className={`pill ${e.available ? 'pill-ok' : 'pill-off'}`}>{e.available ? 'Available' : 'Unavailable'}</span>
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
    </div>
  );
}
