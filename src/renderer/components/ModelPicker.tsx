/**
 * The one way to choose a model, on every page that needs one: imported GPT-2 weights and every checkpoint, from
 * models-list, with "Import GPT-2 weights…" next to it (the imported model is chosen at once).
 */
import { useEffect, useId, useRef, useState } from 'react';
import type { ModelEntry } from '../../shared/models';
import { compact, fixed } from '../format';
import { useStudioEvent } from '../useEvent';
import { useInvoke } from '../useInvoke';
import { ErrorNote } from './ErrorNote';
import { ImportModelDialog } from './ImportModelDialog';

/** What a model is beside its label: its size, its val loss where known, and whether it is a chat model. */
export function modelDetailText(m: ModelEntry): string {
  const parts = [`${compact(m.params)} params`];
  if (m.valLoss != null) parts.push(`val ${fixed(m.valLoss, 3)}`);
  if (m.sft) parts.push('chat (SFT)');
  return parts.join(' · ');
}

/** What a picker's option says: the label, its size, and its val loss where known. */
export function modelOptionText(m: ModelEntry): string {
  return `${m.label} · ${modelDetailText(m)}`;
}

export function ModelPicker({
  value,
  onChange,
  label = 'Model',
  id,
  filter,
  compact: narrow = false,
}: {
  /** the chosen model's key (ModelEntry.key) */
  value: string | undefined;
  onChange: (m: ModelEntry | undefined) => void;
  label?: string;
  id?: string;
  filter?: (m: ModelEntry) => boolean;
  /**
   * For a narrow column: the options say only the model's label, and the chosen model's size and val loss show
   * below the select, so that no text is cut.
   */
  compact?: boolean;
}) {
  const [state, reload] = useInvoke('models-list');
  const [importing, setImporting] = useState(false);
  const autoId = useId();
  const selectId = id ?? autoId;
  const models = state.status === 'ok' ? state.data.filter((m) => !filter || filter(m)) : [];
  const imported = models.filter((m) => m.kind === 'imported');
  const checkpoints = models.filter((m) => m.kind === 'checkpoint');
  const missing = value !== undefined && value !== '' && state.status === 'ok' && !models.some((m) => m.key === value);
  const chosen = value ? models.find((m) => m.key === value) : undefined;
  const optionText = narrow ? (m: ModelEntry) => m.label : modelOptionText;

  // a key that came from elsewhere (the URL): hand the parent its entry once the list has it
  const announced = useRef<string | undefined>(undefined);
  const onChangeRef = useRef(onChange);
  onChangeRef.current = onChange;
  useEffect(() => {
    if (state.status !== 'ok' || !value || announced.current === value) return;
    const m = state.data.find((x) => x.key === value);
    if (m) {
      announced.current = value;
      onChangeRef.current(m);
    }
  }, [state, value]);

  useStudioEvent('run-checkpoint', () => reload());
  useStudioEvent('run-deleted', () => reload());

  return (
    <div className="field model-picker">
      <label htmlFor={selectId}>{label}</label>
      <div className="model-picker-row">
        <select
          id={selectId}
          value={missing ? '' : (value ?? '')}
          disabled={state.status === 'loading'}
          onChange={(e) => {
            const m = models.find((x) => x.key === e.target.value);
            announced.current = m?.key;
            onChange(m);
          }}
          data-testid="model-picker"
          title={chosen ? modelOptionText(chosen) : undefined}
        >
          <option value="">
            {state.status === 'loading' ? 'Loading models…' : models.length ? 'Choose a model…' : 'No models yet'}
          </option>
          {imported.length > 0 && (
            <optgroup label="Imported weights">
              {imported.map((m) => (
                <option key={m.key} value={m.key} title={modelOptionText(m)}>
                  {optionText(m)}
                </option>
              ))}
            </optgroup>
          )}
          {checkpoints.length > 0 && (
            <optgroup label="Checkpoints">
              {checkpoints.map((m) => (
                <option key={m.key} value={m.key} title={modelOptionText(m)}>
                  {optionText(m)}
                </option>
              ))}
            </optgroup>
          )}
        </select>
        <button type="button" className="button" onClick={() => setImporting(true)}>
          Import GPT-2 weights…
        </button>
      </div>
      {narrow && chosen && (
        <p className="field-hint model-picker-detail" data-testid="model-picker-detail">
          {modelDetailText(chosen)}
        </p>
      )}
      {missing && (
        <p className="field-error" role="status">
          The model “{value}” is not in this workspace (deleted, or pruned by keep_last). Choose another one.
        </p>
      )}
      {state.status === 'error' && <ErrorNote error={state.error} onRetry={reload} />}
      {importing && (
        <ImportModelDialog
          onClose={() => setImporting(false)}
          onImported={(m) => {
            setImporting(false);
            announced.current = m.key;
            reload();
            onChange(m);
          }}
        />
      )}
    </div>
  );
}
