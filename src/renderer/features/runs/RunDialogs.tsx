import { useId, useState } from 'react';
import { FormDialog } from '../../components/FormDialog';
import { parseTags, type Run } from '../../run-info';
import { useClient } from '../../useInvoke';

export function EditRunDialog({ run, onClose, onSaved }: { run: Run; onClose: () => void; onSaved: (r: Run) => void }) {
  const client = useClient();
  const [name, setName] = useState(run.name);
  const [tags, setTags] = useState(run.tags.join(', '));
  const [notes, setNotes] = useState(run.notes);
  const ids = { name: useId(), tags: useId(), notes: useId() };
  const parsed = parseTags(tags);

  return (
    <FormDialog
      title="Edit run"
      onClose={onClose}
      testId="edit-run-dialog"
      submitLabel="Save"
      busyLabel="Saving…"
      canSubmit={parsed.length <= 20}
      onSubmit={async () =>
        onSaved(await client.invoke('runs-update', { id: run.id, name: name.trim() || run.name, tags: parsed, notes }))
      }
      fields={
        <>
          <div className="field">
            <label htmlFor={ids.name}>Name</label>
            <input id={ids.name} value={name} maxLength={200} onChange={(e) => setName(e.target.value)} />
          </div>
          <div className="field">
            <label htmlFor={ids.tags}>Tags</label>
            <input
              id={ids.tags}
              value={tags}
              placeholder="baseline, lr-sweep"
              onChange={(e) => setTags(e.target.value)}
              aria-describedby={`${ids.tags}-hint`}
            />
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
            <textarea
              id={ids.notes}
              value={notes}
              rows={5}
              maxLength={10_000}
              onChange={(e) => setNotes(e.target.value)}
            />
          </div>
        </>
      }
    />
  );
}

export function DeleteRunDialog({
  run,
  onClose,
  onDeleted,
}: {
  run: Run;
  onClose: () => void;
  onDeleted: (id: string) => void;
}) {
  const client = useClient();
  return (
    <FormDialog
      title={`Delete “${run.name}”?`}
      onClose={onClose}
      tone="danger"
      testId="delete-run-dialog"
      submitLabel="Delete run and files"
      busyLabel="Deleting…"
      onSubmit={async () => {
        await client.invoke('runs-delete', { id: run.id });
        onDeleted(run.id);
      }}
    >
      <p>
        This removes the run <code>{run.id}</code> from the workspace with its metrics, logs and samples, and deletes
        its folder <code>runs/{run.id}/</code>
        {run.lastCheckpointStep !== null ? ', checkpoints included' : ''}. It cannot be undone.
      </p>
    </FormDialog>
  );
}
