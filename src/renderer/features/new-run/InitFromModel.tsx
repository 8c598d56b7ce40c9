/**
 * For init_from = weights or checkpoint: the models of the workspace to start from (imported GPT-2 weights, and
 * checkpoints), so that fine-tuning GPT-2 needs no path typed. It fills init_path with a workspace-relative path,
 * which the run config takes in the workspace.
 */
import { useId } from 'react';
import type { ModelEntry } from '../../../shared/models';
import { modelOptionText } from '../../components/ModelPicker';
import { useInvoke } from '../../useInvoke';
import { getAt, setAt, type Config } from './config-form';

/** The init_path of a model, relative to the workspace: models/<id>, or runs/<id>/checkpoints/step_NNNNNN. */
export function initPathOf(m: ModelEntry): string | null {
  if ('modelId' in m.target) return `models/${m.target.modelId}`;
  if ('runId' in m.target && m.step !== undefined)
    return `runs/${m.target.runId}/checkpoints/step_${String(m.step).padStart(6, '0')}`;
  return null;
}

export function InitFromModel({ config, onChange }: { config: Config; onChange: (c: Config) => void }) {
  const id = useId();
  const [models] = useInvoke('models-list');
  const from = getAt(config, 'init_from');
  if (from !== 'weights' && from !== 'checkpoint') return null;
  // weights: imported models and the weights of a checkpoint; checkpoint: checkpoints only (weights, optimizer and step)
  const offered =
    models.status === 'ok' ? models.data.filter((m) => (from === 'checkpoint' ? m.kind === 'checkpoint' : true)) : [];
  const current = getAt(config, 'init_path');
  const chosen = offered.find((m) => initPathOf(m) === current);
  return (
    <div className="field field-wide">
      <label htmlFor={id}>
        {from === 'checkpoint'
          ? 'Continue from a checkpoint of this workspace'
          : 'Start from a model of this workspace'}
      </label>
      <select
        id={id}
        value={chosen ? chosen.key : ''}
        disabled={models.status !== 'ok'}
        onChange={(e) => {
          const m = offered.find((x) => x.key === e.target.value);
          const p = m ? initPathOf(m) : null;
          if (p) onChange(setAt(config, 'init_path', p));
        }}
      >
        <option value="">
          {models.status === 'loading'
            ? 'Loading…'
            : offered.length
              ? 'Choose one, or type a path above…'
              : 'None yet: import GPT-2 weights in Settings'}
        </option>
        {offered.map((m) => (
          <option key={m.key} value={m.key}>
            {modelOptionText(m)}
          </option>
        ))}
      </select>
      <p className="field-hint">
        {from === 'checkpoint'
          ? 'The run continues with the checkpoint’s weights, optimizer state and data position.'
          : 'Fine-tuning: the run starts from these weights with a fresh optimizer and trains their shape, which the plan shows.'}
      </p>
    </div>
  );
}
