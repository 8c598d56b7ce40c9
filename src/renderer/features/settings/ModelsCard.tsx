/**
 * Imported GPT-2 weights: import, list, remove. An imported model appears in every model picker (chat, evals,
 * token loss, the sample gallery).
 */
import { useState } from 'react';
import type { ModelEntry } from '../../../shared/models';
import { ErrorNote } from '../../components/ErrorNote';
import { FormDialog } from '../../components/FormDialog';
import { ImportModelDialog } from '../../components/ImportModelDialog';
import { bytes, compact, dateTime } from '../../format';
import { pageHref } from '../../router';
import { useClient, useInvoke } from '../../useInvoke';

export function ModelsCard() {
  const client = useClient();
  const [models, reload] = useInvoke('models-list');
  const [importing, setImporting] = useState(false);
  const [removing, setRemoving] = useState<ModelEntry | null>(null);
  const [error, setError] = useState<unknown>(null);
  const imported = models.status === 'ok' ? models.data.filter((m) => m.kind === 'imported') : [];

  const remove = async (m: ModelEntry) => {
    setError(null);
    try {
      if ('modelId' in m.target) await client.invoke('models-remove', { id: m.target.modelId });
      setRemoving(null);
      reload();
    } catch (e) {
      setError(e);
    }
  };

  return (
    <section className="card" aria-labelledby="models-title">
      <header className="card-header">
        <h2 id="models-title">Imported weights</h2>
        <button type="button" className="button button-primary" onClick={() => setImporting(true)}>
          Import GPT-2 weights…
        </button>
      </header>
      <p className="muted small">
        GPT-2 weights in the Hugging Face layout (a <code>model.safetensors</code>, or a folder with it and{' '}
        <code>config.json</code>, such as openai-community/gpt2 saved by transformers). They are checked, copied into
        the workspace, and offered wherever a model is chosen.
      </p>
      {models.status === 'error' && <ErrorNote error={models.error} onRetry={reload} />}
      {error != null && <ErrorNote error={error} />}
      {models.status === 'ok' && imported.length === 0 && <p className="muted">No imported weights yet.</p>}
      {imported.length > 0 && (
        <table className="table" aria-labelledby="models-title">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Parameters</th>
              <th scope="col">Shape</th>
              <th scope="col">Size</th>
              <th scope="col">Imported</th>
              <th scope="col">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {imported.map((m) => (
              <tr key={m.key} data-model={m.key}>
                <th scope="row">{m.label.replace(/ \(imported\)$/, '')}</th>
                <td>{compact(m.params)}</td>
                <td>
                  {m.nLayer} layers · {m.nHead} heads · {m.nEmbd} wide · context {m.blockSize}
                </td>
                <td>{bytes(m.sizeBytes)}</td>
                <td>{dateTime(m.createdAt)}</td>
                <td className="row-actions">
                  <a className="button" href={pageHref('chat', { model: m.key })}>
                    Chat
                  </a>
                  <a className="button" href={pageHref('evals', { model: m.key })}>
                    Evaluate
                  </a>
                  <button
                    type="button"
                    className="button"
                    onClick={() => setRemoving(m)}
                    aria-label={`Remove ${m.label}`}
                  >
                    Remove
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {importing && (
        <ImportModelDialog
          onClose={() => setImporting(false)}
          onImported={() => {
            reload();
          }}
        />
      )}
      {removing && (
        <FormDialog
          title="Remove imported weights?"
          tone="danger"
          onClose={() => setRemoving(null)}
          submitLabel="Remove"
          submitClassName="button button-danger"
          onSubmit={() => remove(removing)}
        >
          <p>
            {removing.label} ({bytes(removing.sizeBytes)}) will be deleted from the workspace. The file it was imported
            from is not touched. Evaluations of it are kept.
          </p>
        </FormDialog>
      )}
    </section>
  );
}
