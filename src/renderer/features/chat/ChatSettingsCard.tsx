/**
 * The right-hand card of the Chat page: the model (with which template it follows), the sampling settings and the
 * system message of the conversation.
 */
import { useId } from 'react';
import type { ModelEntry } from '../../../shared/models';
import { ErrorNote } from '../../components/ErrorNote';
import { ModelPicker } from '../../components/ModelPicker';
import { int } from '../../format';
import { DEFAULT_FORM, FIELD_LABEL, SAMPLING_FIELDS, type SamplingField, type SettingsForm } from './settings-form';

export type SaveState = { status: 'idle' | 'pending' | 'saving' | 'saved' } | { status: 'error'; error: unknown };

function hintOf(field: SamplingField, model: ModelEntry | undefined): string {
  switch (field) {
    case 'temperature':
      return '0 = greedy; higher = more varied.';
    case 'topK':
      return 'The k likeliest tokens; 0 = off.';
    case 'topP':
      return 'Nucleus sampling; 1 = off.';
    case 'maxTokens':
      return model ? `Per answer; at most the context, ${int(model.blockSize)}.` : 'Per answer.';
    case 'seed':
      return 'Same seed, settings and conversation: same answer.';
  }
}

/** The longer explanation, as a tooltip of the field. */
const HELP: Record<SamplingField, string> = {
  temperature:
    'Divides the logits: 0 always picks the likeliest token, 1 samples the model as it is, higher flattens it.',
  topK: 'Sample only among the k likeliest tokens (build-nanogpt samples with 50). 0 turns it off.',
  topP: 'Sample only among the likeliest tokens whose probabilities add up to p. 1 turns it off.',
  maxTokens:
    'An answer ends at <|endoftext|>, when the model starts a new “User:” turn, after this many tokens, or when the model’s context is full: the conversation and the answer share it. At most the context.',
  seed: 'The random seed of sampling: the same seed, settings and conversation give the same answer.',
};

export function ChatSettingsCard({
  modelKey,
  model,
  onModel,
  form,
  errors,
  onForm,
  system,
  onSystem,
  saveState,
  draft,
}: {
  modelKey: string | undefined;
  model: ModelEntry | undefined;
  onModel: (m: ModelEntry | undefined) => void;
  form: SettingsForm;
  errors: Partial<Record<SamplingField, string>>;
  onForm: (f: SettingsForm) => void;
  system: string;
  onSystem: (s: string) => void;
  saveState: SaveState;
  /** no conversation yet: the settings apply to the one the first message creates */
  draft: boolean;
}) {
  const base = useId();
  const isDefault = SAMPLING_FIELDS.every((k) => form[k].trim() === DEFAULT_FORM[k]);
  return (
    <aside className="card chat-settings" aria-labelledby={`${base}-h`}>
      <div className="card-header">
        <h2 id={`${base}-h`}>Model and sampling</h2>
        <span className="muted small" role="status" data-testid="settings-save-state">
          {draft
            ? 'for the new conversation'
            : saveState.status === 'pending' || saveState.status === 'saving'
              ? 'Saving…'
              : saveState.status === 'saved'
                ? 'Saved'
                : ''}
        </span>
      </div>
      <ModelPicker value={modelKey} onChange={onModel} id={`${base}-model`} compact />
      {model && (
        <p className={`chat-template-note${model.sft ? ' chat-template-sft' : ''}`} data-testid="template-note">
          {model.sft ? (
            <>
              <strong>Chat model (SFT).</strong> Fine-tuned on the chat template (User: … Assistant: …), so it answers
              in turn and stops.
            </>
          ) : (
            <>
              <strong>Base model.</strong> Not fine-tuned for chat: it continues the same chat template as plain text,
              so answers may wander or run to the token limit. Fine-tune it (SFT) for a chat model.
            </>
          )}
        </p>
      )}
      <div className="chat-sampling">
        {SAMPLING_FIELDS.map((k) => {
          const id = `${base}-${k}`;
          return (
            <div key={k} className={`field${errors[k] ? ' field-invalid' : ''}`} data-setting={k}>
              <label htmlFor={id} title={HELP[k]}>
                {FIELD_LABEL[k]}
              </label>
              <input
                id={id}
                inputMode={k === 'temperature' || k === 'topP' ? 'decimal' : 'numeric'}
                value={form[k]}
                aria-invalid={errors[k] ? true : undefined}
                aria-describedby={`${id}-d`}
                onChange={(e) => onForm({ ...form, [k]: e.target.value })}
              />
              {errors[k] ? (
                <p className="field-error" id={`${id}-d`}>
                  {errors[k]}
                </p>
              ) : (
                <p className="field-hint" id={`${id}-d`}>
                  {hintOf(k, model)}
                </p>
              )}
            </div>
          );
        })}
      </div>
      <div className="field chat-system">
        <label htmlFor={`${base}-system`}>System message (optional)</label>
        <textarea
          id={`${base}-system`}
          rows={3}
          maxLength={10_000}
          value={system}
          placeholder="e.g. You are a helpful assistant."
          aria-describedby={`${base}-system-d`}
          onChange={(e) => onSystem(e.target.value)}
        />
        <p className="field-hint" id={`${base}-system-d`}>
          Put before the conversation as a “System:” turn.
        </p>
      </div>
      <div className="toolbar">
        <button type="button" className="button" disabled={isDefault} onClick={() => onForm(DEFAULT_FORM)}>
          Reset to defaults
        </button>
      </div>
      {saveState.status === 'error' && <ErrorNote error={saveState.error} />}
    </aside>
  );
}
