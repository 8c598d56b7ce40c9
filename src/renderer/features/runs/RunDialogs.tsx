import { useId, useState } from 'react';
import { Dialog } from '../../components/Dialog';
import { ErrorNote } from '../../components/ErrorNote';
import { parseTags, type Run } from '../../run-info';
import { useClient } from '../../useInvoke';

export function EditRunDialog({ run, onClose, onSaved }: { run: Run; onClose: () => void; onSaved: (r: Run) => void }) {
  const client = useClient();
  const [name, setName] = useState(run.name);
  const [tags, setTags] = useState(run.tags.join(', '));
  const [notes, setNotes] = useState(run.notes);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const ids = { name: useId(), tags: useId(), notes: useId(), form: useId() };
  const parsed = parseTags(tags);

  const save = async () => {
    setBusy(true);
    setError(null);
    try {
      const r = await client.invoke('runs-update', { id: run.id, name: name.trim() || run.name, tags: parsed, notes });
      onSaved(r);
    } catch (e) {
      setError(e);
      setBusy(false);
    }
  };

  return (
    <Dialog
      title="Edit run"
      onClose={onClose}
      testId="edit-run-dialog"
      footer={
        <>
          <button type="button" className="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" form={ids.form} className="button button-primary" disabled={busy || parsed.length > 20}>
            {busy ? 'Saving…' : 'Save'}
          </button>
        </>
      }
    >
      <form
        id={ids.form}
        className="form-grid"
        onSubmit={(e) => {
          e.preventDefault();
          void save();
        }}
      >
        <div className="field">
          <label htmlFor={ids.name}>Name</label>
          <input id={ids.name} value={name} maxLength={200} onChange={(e) => setName(e.target.value)} />
        </div>
        <div className="field">
          <label htmlFor={ids.tags}>Tags</label>
          <input id={ids.tags} value={tags} placeholder="baseline, lr-sweep" onChange={(e) => setTags(e.target.value)} aria-describedby={`${ids.tags}-hint`} />
          <p className="field-hint" id={`${ids.tags}-hint`}>
            Separated by commas; at most 20.{' '}
            {parsed.map((t) => (
              <span key={t} className="tag">
                {t}
              </span>
            ))}
          </p>
        </div>
        <div className="field">
          <label htmlFor={ids.notes}>Notes</label>
          <textarea id={ids.notes} value={notes} rows={5} maxLength={10_000} onChange={(e) => setNotes(e.target.value)} />
        </div>
      </form>
      {error !== null && <ErrorNote error={error} />}
    </Dialog>
  );
}

export function DeleteRunDialog({ run, onClose, onDeleted }: { run: Run; onClose: () => void; onDeleted: (id: string) => void }) {
  const client = useClient();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const remove = async () => {
    setBusy(true);
    setError(null);
    try {
      await client.invoke('runs-delete', { id: run.id });
      onDeleted(run.id);
    } catch (e) {
      setError(e);
      setBusy(false);
    }
  };
  return (
    <Dialog
      title={`Delete “${run.name}”?`}
      onClose={onClose}
      tone="danger"
      testId="delete-run-dialog"
      footer={
        <>
          <button type="button" className="button" onClick={onClose} autoFocus>
            Cancel
          </button>
          <button type="button" className="button button-danger-solid" onClick={remove} disabled={busy}>
            {busy ? 'Deleting…' : 'Delete run and files'}
          </button>
        </>
      }
    >
      <p>
        This removes the run <code>{run.id}</code> from the workspace with its metrics, logs and samples, and deletes its folder{' '}
        <code>runs/{run.id}/</code>
        {run.lastCheckpointStep !== null ? ', checkpoints included' : ''}. It cannot be undone.
      </p>
      {error !== null && <ErrorNote error={error} />}
    </Dialog>
  );
}
