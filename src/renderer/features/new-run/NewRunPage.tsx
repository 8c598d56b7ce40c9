import { useEffect, useId, useMemo, useRef, useState } from 'react';
import type { HandlerResult } from '../../../shared/contract';
import { ErrorCode, StudioError } from '../../../shared/errors';
import { checkRunConfig, totalSteps, type FieldError, type RunConfig } from '../../../shared/run-config';
import { ErrorNote } from '../../components/ErrorNote';
import { navigate } from '../../router';
import { parseTags } from '../../run-info';
import { useClient, useInvoke } from '../../useInvoke';
import { useStudioEvent } from '../../useEvent';
import { FormSection } from './ConfigFields';
import { errorsByField, SECTIONS, type Config } from './config-form';
import { LrPreview } from './LrPreview';
import { PlannerPanel } from './PlannerPanel';
import { useCalibration, useRunTimings, useTrainedShape } from './useThroughputs';
import { planShape } from '../../../shared/planner';

type Preset = HandlerResult<'presets-list'>[number];

const FALLBACK: Config = {
  model: { preset: 'nano' },
  dataset: 'builtin',
  total_batch_size: 1024,
  batch_size: 8,
  seq_len: 128,
  max_steps: 300,
  warmup_steps: 20,
};

export function NewRunPage({ from }: { from?: string }) {
  const client = useClient();
  const [presets] = useInvoke('presets-list');
  const [datasets, reloadDatasets] = useInvoke('datasets-list');
  const [engines] = useInvoke('engines-list');
  const runTimings = useRunTimings();

  const [config, setConfigState] = useState<Config | null>(null);
  const [presetName, setPresetName] = useState<string | undefined>();
  /** bumps when the config is replaced as a whole (preset, clone, JSON), so that the fields drop their drafts */
  const [generation, setGeneration] = useState(0);
  const [view, setView] = useState<'form' | 'json'>('form');
  const [tags, setTags] = useState('');
  const [notes, setNotes] = useState('');
  const [serverErrors, setServerErrors] = useState<FieldError[]>([]);
  const [checking, setChecking] = useState(false);
  const [submitting, setSubmitting] = useState(false);
  const [submitError, setSubmitError] = useState<unknown>(null);
  const [loadError, setLoadError] = useState<unknown>(null);

  /** the dataset is a preset's choice (not a copied run's or the user's): it may give way to a ready one */
  const [datasetFromPreset, setDatasetFromPreset] = useState(false);
  const replaceConfig = (c: Config, preset: string | undefined, fromPreset = false) => {
    setConfigState(c);
    setPresetName(preset);
    setDatasetFromPreset(fromPreset);
    setGeneration((g) => g + 1);
  };

  // A preset names a dataset (nano: the builtin stories). When the workspace does not have it but has other
  // datasets ready, the form starts on the first of them rather than on an error.
  useEffect(() => {
    if (!datasetFromPreset || !config || datasets.status !== 'ok') return;
    setDatasetFromPreset(false);
    // a dataset that is listed (ready, or still being prepared) stays
    if (config.sft === true || datasets.data.some((d) => d.id === config.dataset)) return;
    const ready = datasets.data.filter((d) => d.kind === 'tokens' && d.status === 'ready');
    if (ready.length === 0) return;
    setConfigState({ ...config, dataset: ready[0]!.id });
    setGeneration((g) => g + 1);
  }, [datasetFromPreset, config, datasets]);

  // The starting config: the run given by ?from=, else the nano preset (or the first one).
  const started = useRef(false);
  useEffect(() => {
    if (started.current) return;
    if (from) {
      started.current = true;
      client.invoke('runs-get', { id: from }).then(
        (run) => {
          const c: Config = { ...run.config, name: `${run.name} (copy)` };
          replaceConfig(c, run.preset ?? undefined);
        },
        (e) => {
          setLoadError(e);
          replaceConfig(structuredClone(FALLBACK), undefined);
        },
      );
      return;
    }
    if (presets.status === 'loading') return;
    started.current = true;
    const list = presets.status === 'ok' ? presets.data : [];
    const p = list.find((x) => x.name === 'nano') ?? list[0];
    if (p) replaceConfig(structuredClone(p.config), p.name, true);
    else replaceConfig(structuredClone(FALLBACK), undefined, true);
  }, [client, from, presets]);

  const setConfig = (c: Config) => {
    // a dataset the user chose is theirs: the preset's fallback no longer applies
    if (c.dataset !== config?.dataset) setDatasetFromPreset(false);
    setConfigState(c);
  };

  const local = useMemo(() => (config ? checkRunConfig(config) : null), [config]);
  const lastValid = useRef<RunConfig | null>(null);
  if (local?.ok) lastValid.current = local.config;
  // the plan: the shape the run trains (its init weights' when it has some), and a calibration of its step
  const planned = local?.ok ? local.config : lastValid.current;
  const trained = useTrainedShape(planned);
  const calibration = useCalibration(
    planned,
    planned && !trained.loading ? (trained.value?.shape ?? planShape(planned)) : undefined,
  );

  // Workspace checks (an unknown dataset, a missing weights file) from the service, once the local ones pass.
  const configJson = useMemo(() => JSON.stringify(config), [config]);
  const seq = useRef(0);
  useEffect(() => {
    if (!config || !local?.ok) {
      setServerErrors([]);
      setChecking(false);
      return;
    }
    const mine = ++seq.current;
    setChecking(true);
    const t = window.setTimeout(() => {
      client.invoke('config-validate', { config }).then(
        (errs) => {
          if (mine !== seq.current) return;
          setServerErrors(errs);
          setChecking(false);
        },
        () => {
          if (mine === seq.current) setChecking(false);
        },
      );
    }, 250);
    return () => window.clearTimeout(t);
    // configJson stands for config by value
  }, [client, configJson]);

  // a dataset finished preparing: list them again (and check the config again)
  useStudioEvent('dataset-status', (p) => {
    if (p.status !== 'running') {
      reloadDatasets();
      if (config) setConfigState({ ...config });
    }
  });

  const errors = local && !local.ok ? local.errors : serverErrors;
  const byField = useMemo(() => errorsByField(errors), [errors]);

  const submit = async (force = false) => {
    if (!config || !local?.ok) return;
    setSubmitting(true);
    setSubmitError(null);
    try {
      const run = await client.invoke('runs-create', {
        config,
        preset: presetName,
        tags: parseTags(tags),
        notes: notes || undefined,
        ...(force ? { force: true } : {}),
      });
      navigate({ page: 'run', runId: run.id });
    } catch (e) {
      setSubmitError(e);
      setSubmitting(false);
      if (e instanceof StudioError && e.code === ErrorCode.BAD_CONFIG) {
        client.invoke('config-validate', { config }).then(setServerErrors, () => undefined);
      }
    }
  };

  if (!config) {
    if (presets.status === 'error') return <ErrorNote error={presets.error} />;
    return (
      <p className="muted" aria-busy="true">
        Loading the presets…
      </p>
    );
  }

  const readyDatasets =
    datasets.status === 'ok' ? datasets.data.filter((d) => d.kind === 'tokens' && d.status === 'ready') : [];
  const datasetId = typeof config.dataset === 'string' ? config.dataset : '';
  const dataset = readyDatasets.find((d) => d.id === datasetId);
  const engineInfo = engines.status === 'ok' ? engines.data : [];
  const valid = local?.ok === true && serverErrors.length === 0;
  const other = byField.get('');
  const steps = local?.ok ? totalSteps(local.config) : 0;

  return (
    <form
      className="new-run"
      noValidate
      onSubmit={(e) => {
        e.preventDefault();
        void submit();
      }}
    >
      {loadError !== null && <ErrorNote error={loadError} />}
      {presets.status === 'error' && <ErrorNote error={presets.error} />}
      {presets.status === 'ok' && presets.data.length > 0 && (
        <PresetPicker
          presets={presets.data}
          selected={presetName}
          onPick={(p) => replaceConfig(structuredClone(p.config), p.name, true)}
        />
      )}

      <div className="new-run-grid">
        <div className="stack new-run-main">
          <div className="toolbar">
            <div className="segmented" role="radiogroup" aria-label="Edit as">
              <button
                type="button"
                role="radio"
                aria-checked={view === 'form'}
                className="segmented-item"
                onClick={() => setView('form')}
              >
                Form
              </button>
              <button
                type="button"
                role="radio"
                aria-checked={view === 'json'}
                className="segmented-item"
                onClick={() => setView('json')}
              >
                JSON
              </button>
            </div>
            <span className="spacer" />
            <span className="muted small" aria-live="polite" data-testid="validation-state">
              {local && !local.ok
                ? `${local.errors.length} problem${local.errors.length === 1 ? '' : 's'}`
                : checking
                  ? 'Checking with the workspace…'
                  : serverErrors.length
                    ? `${serverErrors.length} problem${serverErrors.length === 1 ? '' : 's'} in the workspace`
                    : 'Valid'}
            </span>
          </div>

          {other && (
            <div className="error-note" role="alert" data-testid="config-errors">
              <strong>The config has problems outside the form&apos;s fields:</strong>
              <ul>
                {other.map((m) => (
                  <li key={m}>{m}</li>
                ))}
              </ul>
            </div>
          )}

          {view === 'json' ? (
            <JsonEditor config={config} onChange={setConfig} errors={errors} />
          ) : (
            SECTIONS.map((s) => (
              <FormSection
                key={s.id}
                section={s}
                config={config}
                generation={generation}
                onChange={setConfig}
                errors={byField}
                datasets={readyDatasets}
                datasetsLoading={datasets.status === 'loading'}
                engines={engineInfo}
                extra={
                  s.id === 'schedule' && local?.ok ? (
                    <LrPreview config={local.config} steps={steps} />
                  ) : s.id === 'run' ? (
                    <TagsNotes tags={tags} setTags={setTags} notes={notes} setNotes={setNotes} />
                  ) : null
                }
              />
            ))
          )}
        </div>

        <PlannerPanel
          config={planned}
          stale={!local?.ok}
          runTimings={runTimings}
          trained={trained}
          calibration={calibration}
          datasetTokens={dataset?.tokens.train}
        >
          {submitError !== null && <ErrorNote error={submitError} />}
          {submitError instanceof StudioError && submitError.code === ErrorCode.OUT_OF_MEMORY && (
            // the plan's memory estimate errs high; the user may know better
            <button
              type="button"
              className="button button-danger button-block"
              disabled={submitting}
              onClick={() => void submit(true)}
            >
              Create anyway
            </button>
          )}
          <button type="submit" className="button button-primary button-block" disabled={!local?.ok || submitting}>
            {submitting ? 'Creating…' : 'Create and start'}
          </button>
          <p className="muted small submit-note">
            {valid ? 'The run starts as soon as it is created.' : 'Fix the fields marked in red to create the run.'}
          </p>
        </PlannerPanel>
      </div>
    </form>
  );
}

function PresetPicker({
  presets,
  selected,
  onPick,
}: {
  presets: Preset[];
  selected?: string;
  onPick: (p: Preset) => void;
}) {
  return (
    <fieldset className="presets">
      <legend className="visually-hidden">Preset</legend>
      {presets.map((p) => (
        <label key={p.name} className={`preset${selected === p.name ? ' preset-selected' : ''}`} data-preset={p.name}>
          <input
            type="radio"
            name="preset"
            className="visually-hidden"
            checked={selected === p.name}
            onChange={() => onPick(p)}
            // picking the selected preset again restores its values (a radio that is already checked fires no change)
            onClick={() => {
              if (selected === p.name) onPick(p);
            }}
          />
          <span className="preset-title">{p.title}</span>
          <span className="preset-desc muted small">{p.description}</span>
        </label>
      ))}
    </fieldset>
  );
}

function TagsNotes({
  tags,
  setTags,
  notes,
  setNotes,
}: {
  tags: string;
  setTags: (v: string) => void;
  notes: string;
  setNotes: (v: string) => void;
}) {
  const tid = useId();
  const nid = useId();
  return (
    <div className="form-grid form-grid-2 tags-notes">
      <div className="field">
        <label htmlFor={tid}>Tags</label>
        <input id={tid} value={tags} placeholder="baseline, lr-sweep" onChange={(e) => setTags(e.target.value)} />
      </div>
      <div className="field">
        <label htmlFor={nid}>Notes</label>
        <input id={nid} value={notes} placeholder="what this run is for" onChange={(e) => setNotes(e.target.value)} />
      </div>
    </div>
  );
}

function JsonEditor({
  config,
  onChange,
  errors,
}: {
  config: Config;
  onChange: (c: Config) => void;
  errors: readonly FieldError[];
}) {
  const [text, setText] = useState(() => JSON.stringify(config, null, 2));
  const [syntax, setSyntax] = useState<string | null>(null);
  const id = useId();
  return (
    <section className="card card-tight json-editor" aria-labelledby={`${id}-title`}>
      <header className="card-header">
        <h2 id={`${id}-title`}>Run config (JSON)</h2>
        <span className="muted small">The same config as the form; fields left out take their defaults.</span>
      </header>
      <textarea
        id={id}
        aria-labelledby={`${id}-title`}
        className="code-block json-text"
        spellCheck={false}
        value={text}
        rows={Math.min(40, Math.max(14, text.split('\n').length + 1))}
        aria-invalid={syntax !== null || errors.length > 0 || undefined}
        aria-describedby={`${id}-errors`}
        onChange={(e) => {
          const t = e.target.value;
          setText(t);
          try {
            const v: unknown = JSON.parse(t);
            if (typeof v !== 'object' || v === null || Array.isArray(v)) {
              setSyntax('The config must be a JSON object: { ... }');
              return;
            }
            setSyntax(null);
            onChange(v as Config);
          } catch (err) {
            setSyntax(err instanceof Error ? err.message : String(err));
          }
        }}
      />
      <div id={`${id}-errors`} data-testid="json-errors">
        {syntax && <p className="field-error">JSON: {syntax}</p>}
        {!syntax && errors.length > 0 && (
          <ul className="field-error error-list">
            {errors.map((e, i) => (
              <li key={i}>
                <code>{e.field}</code>: {e.message}
              </li>
            ))}
          </ul>
        )}
      </div>
    </section>
  );
}
