import { Dialog } from '../../components/Dialog';
import { ErrorNote } from '../../components/ErrorNote';
import { Icon } from '../../components/Icon';
import { bytes, dateTime, fullDateTime, int } from '../../format';
import { useClient, useRequest } from '../../useInvoke';
import type { DatasetSummary } from './request';
import { TokenPreview } from './TokenPreview';

export function DatasetTable({
  datasets,
  running,
  onPreview,
  onResume,
  onDelete,
}: {
  datasets: DatasetSummary[];
  running: Set<string>;
  onPreview: (d: DatasetSummary) => void;
  onResume: (d: DatasetSummary) => void;
  onDelete: (d: DatasetSummary) => void;
}) {
  return (
    <div className="table-wrap card card-flush">
      <table className="table table-dense ds-table" aria-label="Datasets">
        <thead>
          <tr>
            <th scope="col">Dataset</th>
            <th scope="col">Source</th>
            <th scope="col">Status</th>
            <th scope="col" className="num">
              Train tokens
            </th>
            <th scope="col" className="num">
              Val tokens
            </th>
            <th scope="col" className="num">
              Shards
            </th>
            <th scope="col" className="num">
              Size
            </th>
            <th scope="col">Created</th>
            <th scope="col">
              <span className="visually-hidden">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {datasets.map((d) => {
            const busy = running.has(d.id);
            const raw = d.kind === 'raw';
            return (
              <tr key={`${d.id}-${d.status}`} data-dataset={d.id} data-status={d.status}>
                <th scope="row" className="ds-name-cell">
                  <span className="ds-title">{d.title}</span>
                  <span className="ds-sub">
                    <code>{d.id}</code>
                    {d.kind === 'sft' && <span className="tag">SFT</span>}
                    {raw && d.examples !== undefined && <span className="muted small">{int(d.examples)} examples</span>}
                  </span>
                  {d.notes.length > 0 && (
                    <span className="ds-notes-snippet muted small" title={d.notes.join('\n')}>
                      {d.notes[0]}
                    </span>
                  )}
                </th>
                <td>{d.source}</td>
                <td>
                  <span
                    className={`pill ${busy ? 'status-running' : d.status === 'ready' ? 'pill-ok' : 'status-interrupted'}`}
                    data-testid="dataset-status"
                  >
                    {busy ? 'Preparing' : d.status === 'ready' ? 'Ready' : 'Partial'}
                  </span>
                </td>
                <td className="num" data-testid="train-tokens">
                  {raw ? '—' : int(d.tokens.train)}
                </td>
                <td className="num" data-testid="val-tokens">
                  {raw ? '—' : int(d.tokens.val)}
                </td>
                <td className="num">{raw ? '—' : int(d.shards)}</td>
                <td className="num" title={`${int(d.bytes)} bytes`}>
                  {bytes(d.bytes)}
                </td>
                <td className="nowrap" title={d.created ? fullDateTime(Date.parse(d.created)) : undefined}>
                  {d.created ? dateTime(Date.parse(d.created)) : <span className="muted">—</span>}
                </td>
                <td className="row-actions">
                  {d.status === 'ready' && (
                    <button
                      type="button"
                      className="button ds-row-button"
                      onClick={() => onPreview(d)}
                      aria-label={`Preview ${d.id}`}
                    >
                      Preview
                    </button>
                  )}
                  {d.status === 'partial' && (
                    <button
                      type="button"
                      className="button ds-row-button"
                      onClick={() => onResume(d)}
                      disabled={busy || !d.request}
                      aria-label={`Resume ${d.id}`}
                      title={
                        busy
                          ? 'It is being prepared now'
                          : d.request
                            ? 'Continue the preparation where it stopped'
                            : 'Its request is not known: start the same preparation again from the form'
                      }
                    >
                      Resume
                    </button>
                  )}
                  <button
                    type="button"
                    className="icon-button icon-button-danger"
                    onClick={() => onDelete(d)}
                    disabled={busy}
                    aria-label={`Delete ${d.id}`}
                    title={busy ? 'Pause or cancel the preparation first' : 'Delete the dataset and its files'}
                  >
                    <Icon name="trash" size={16} />
                  </button>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

export function PreviewDialog({ dataset, onClose }: { dataset: DatasetSummary; onClose: () => void }) {
  const client = useClient();
  const { state } = useRequest(() => client.invoke('datasets-preview', { id: dataset.id }), [client, dataset.id]);
  const p = state.data;
  return (
    <Dialog
      title={`Preview of ${dataset.id}`}
      onClose={onClose}
      testId="dataset-preview"
      footer={
        <button type="button" className="button" onClick={onClose} autoFocus>
          Close
        </button>
      }
    >
      <div className="ds-preview">
        {state.status === 'loading' && (
          <p className="muted" aria-busy="true">
            Decoding…
          </p>
        )}
        {state.status === 'error' && <ErrorNote error={state.error} />}
        {p && (
          <>
            <p className="muted small">
              {p.split === 'raw'
                ? 'The first lines of the file, as it is.'
                : `The first ${int(p.tokens)} tokens of the ${p.split} shard, decoded (${int(p.text.length)} characters). <|endoftext|> marks where a document starts.`}
              {p.ids && p.pieces && ' Alternating bands mark the tokens.'}
            </p>
            {p.ids && p.pieces ? (
              <TokenPreview ids={p.ids} pieces={p.pieces} />
            ) : (
              <pre className="ds-preview-text" data-testid="preview-text" tabIndex={0}>
                {p.text}
              </pre>
            )}
          </>
        )}
      </div>
    </Dialog>
  );
}
