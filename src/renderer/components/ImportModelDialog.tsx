/**
 * Import GPT-2 weights: a model.safetensors file, or a folder with model.safetensors and config.json (as
 * transformers saves them). The service checks every tensor before it copies anything into the workspace.
 */
import { useId, useState } from 'react';
import type { ModelEntry } from '../../shared/models';
import { bytes, compact } from '../format';
import { useClient } from '../useInvoke';
import { FilePicker } from './FilePicker';
import { FormDialog } from './FormDialog';

export function ImportModelDialog({
  onClose,
  onImported,
}: {
  onClose: () => void;
  onImported: (m: ModelEntry) => void;
}) {
  const client = useClient();
  const [source, setSource] = useState('');
  const [name, setName] = useState('');
  const [done, setDone] = useState<ModelEntry | null>(null);
  const [browsing, setBrowsing] = useState(false);
  const ids = { path: useId(), name: useId() };

  return (
    <FormDialog
      title="Import GPT-2 weights"
      onClose={onClose}
      testId="import-model-dialog"
      cancelLabel={done ? 'Close' : 'Cancel'}
      submitLabel={done ? 'Imported' : 'Import'}
      busyLabel="Checking and copying…"
      canSubmit={source.trim() !== '' && done === null}
      onSubmit={async () => {
        const m = await client.invoke('models-import', { path: source.trim(), name: name.trim() || undefined });
        setDone(m);
        onImported(m);
      }}
      fields={(busy) => (
        <>
          <div className="field">
            <label htmlFor={ids.path}>File or folder</label>
            <div className="model-picker-row">
              <input
                id={ids.path}
                value={source}
                placeholder="/path/to/gpt2/model.safetensors"
                spellCheck={false}
                onChange={(e) => {
                  setSource(e.target.value);
                  setDone(null);
                }}
                aria-describedby={`${ids.path}-hint`}
                autoFocus
              />
              <button type="button" className="button" onClick={() => setBrowsing(true)}>
                Browse…
              </button>
            </div>
            <p className="field-hint" id={`${ids.path}-hint`}>
              A <code>.safetensors</code> file of GPT-2 weights with HF names, or a folder holding{' '}
              <code>model.safetensors</code> and its <code>config.json</code> (what <code>save_pretrained</code>{' '}
              writes). Pickled <code>.bin</code> files are not read.
            </p>
          </div>
          <div className="field">
            <label htmlFor={ids.name}>Name</label>
            <input
              id={ids.name}
              value={name}
              maxLength={60}
              placeholder="gpt2"
              onChange={(e) => {
                setName(e.target.value);
                setDone(null);
              }}
            />
          </div>
          {busy && <progress aria-label="Importing" />}
          {done && (
            <p role="status" className="muted">
              Imported {done.label}: {compact(done.params)} parameters, {done.nLayer} layers, context {done.blockSize},{' '}
              {bytes(done.sizeBytes)}.
            </p>
          )}
        </>
      )}
    >
      {browsing && (
        <FilePicker
          title="Choose GPT-2 weights"
          mode="either"
          extensions={['.safetensors']}
          initialPath={source.trim() || undefined}
          onPick={(p) => {
            setSource(p);
            setDone(null);
            setBrowsing(false);
          }}
          onClose={() => setBrowsing(false)}
        />
      )}
    </FormDialog>
  );
}
