import { useEffect, useId, useMemo, useRef, useState, type ReactNode } from 'react';
import type { HandlerResult } from '../../../shared/contract';
import { ErrorCode, StudioError } from '../../../shared/errors';
import { MODEL_PRESETS as MODEL_SHAPES } from '../../../shared/model-presets';
import { checkRunConfig, totalSteps, type FieldError, type RunConfig } from '../../../shared/run-config';
import { ErrorNote } from '../../components/ErrorNote';
import { compact } from '../../format';
import { navigate } from '../../router';
import { parseTags } from '../../run-info';
import { useClient, useInvoke } from '../../useInvoke';
import { useStudioEvent } from '../../useEvent';
import { InitFromModel } from './InitFromModel';
import { DEFAULTS, errorsByField, fieldId, getAt, parseNumberText, SECTIONS, setAt, textOf, type Config, type FieldDef, type SectionDef } from './config-form';
import { LrPreview } from './LrPreview';
import { PlannerPanel } from './PlannerPanel';
import { useCalibration, useRunTimings, useTrainedShape } from './useThroughputs';
import { planShape } from '../../../shared/planner';

type Preset = HandlerResult<'presets-list'>[number];
type Dataset = HandlerResult<'datasets-list'>[number];

const FALLBACK: Config = { model: { preset: 'nano' }, dataset: 'builtin', total_batch_size: 1024, batch_size: 8, seq_len: 128, max_steps: 300, warmup_steps: 20 };

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
    setConfigState({ ...config, dataset: ready[0].id });
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
  const calibration = useCalibration(planned, planned && !trained.loading ? (trained.value?.shape ?? planShape(planned)) : undefined);

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
      const run = await client.invoke('runs-create', { config, preset: presetName, tags: parseTags(tags), notes: notes || undefined, ...(force ? { force: true } : {}) });
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

  const readyDatasets = datasets.status === 'ok' ? datasets.data.filter((d) => d.kind === 'tokens' && d.status === 'ready') : [];
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
        <PresetPicker presets={presets.data} selected={presetName} onPick={(p) => replaceConfig(structuredClone(p.config), p.name, true)} />
      )}

      <div className="new-run-grid">
        <div className="stack new-run-main">
          <div className="toolbar">
            <div className="segmented" role="radiogroup" aria-label="Edit as">
              <button type="button" role="radio" aria-checked={view === 'form'} className="segmented-item" onClick={() => setView('form')}>
                Form
              </button>
              <button type="button" role="radio" aria-checked={view === 'json'} className="segmented-item" onClick={() => setView('json')}>
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
                  s.id === 'schedule' && local?.ok ? <LrPreview config={local.config} steps={steps} /> : s.id === 'run' ? <TagsNotes tags={tags} setTags={setTags} notes={notes} setNotes={setNotes} /> : null
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
            <button type="button" className="button button-danger button-block" disabled={submitting} onClick={() => void submit(true)}>
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

function PresetPicker({ presets, selected, onPick }: { presets: Preset[]; selected?: string; onPick: (p: Preset) => void }) {
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

function TagsNotes({ tags, setTags, notes, setNotes }: { tags: string; setTags: (v: string) => void; notes: string; setNotes: (v: string) => void }) {
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

function FormSection({
  section,
  config,
  generation,
  onChange,
  errors,
  datasets,
  datasetsLoading,
  engines,
  extra,
}: {
  section: SectionDef;
  config: Config;
  generation: number;
  onChange: (c: Config) => void;
  errors: Map<string, string[]>;
  datasets: Dataset[];
  datasetsLoading: boolean;
  engines: HandlerResult<'engines-list'>;
  extra?: ReactNode;
}) {
  const titleId = useId();
  const visible = section.fields.filter((f) => f.path !== 'init_path' || (config.init_from !== undefined && config.init_from !== 'scratch') || errors.has('init_path'));
  const hasErrors = visible.some((f) => errors.has(f.path));
  const body = (
    <>
      {section.summary && <p className="muted small section-summary">{section.summary}</p>}
      <div className="form-grid">
        {visible.map((f) => (
          <Field
            key={`${f.path}:${generation}`}
            def={f}
            config={config}
            onChange={onChange}
            errors={errors.get(f.path)}
            datasets={datasets}
            datasetsLoading={datasetsLoading}
            engines={engines}
          />
        ))}
        {visible.some((f) => f.path === 'init_path') && <InitFromModel config={config} onChange={onChange} />}
      </div>
      {extra}
    </>
  );
  if (section.folded) {
    return (
      <details className="card card-tight form-section" open={hasErrors || undefined} data-section={section.id}>
        <summary>
          <h2 id={titleId}>{section.title}</h2>
        </summary>
        {body}
      </details>
    );
  }
  return (
    <section className="card card-tight form-section" aria-labelledby={titleId} data-section={section.id}>
      <h2 id={titleId}>{section.title}</h2>
      {body}
    </section>
  );
}

function Field({
  def,
  config,
  onChange,
  errors,
  datasets,
  datasetsLoading,
  engines,
}: {
  def: FieldDef;
  config: Config;
  onChange: (c: Config) => void;
  errors?: string[];
  datasets: Dataset[];
  datasetsLoading: boolean;
  engines: HandlerResult<'engines-list'>;
}) {
  const id = fieldId(def.path);
  const value = getAt(config, def.path);
  const [draft, setDraft] = useState<string | null>(null);
  const errId = `${id}-error`;
  const hintId = `${id}-hint`;
  const invalid = !!errors?.length;
  const describedBy = [invalid ? errId : '', def.hint ? hintId : ''].filter(Boolean).join(' ') || undefined;
  const set = (v: unknown) => onChange(setAt(config, def.path, v));
  const dflt = getAt(DEFAULTS, def.path);
  const modelPreset = getAt(config, 'model.preset');

  let control: ReactNode;
  if (def.kind === 'bool') {
    const checked = value === undefined ? dflt === true : value === true;
    control = <input id={id} type="checkbox" checked={checked} onChange={(e) => set(e.target.checked)} aria-invalid={invalid || undefined} aria-describedby={describedBy} />;
  } else if (def.kind === 'select') {
    let options: (readonly [string, string])[] = [...(def.options ?? [])];
    let selected = value === undefined ? textOf(dflt) : textOf(value);
    if (def.path === 'dataset') {
      options = datasets.map((d) => [d.id, `${d.id} — ${compact(d.tokens.train)} train tokens`] as const);
      if (selected && !datasets.some((d) => d.id === selected)) options.unshift([selected, `${selected} (not in this workspace)`]);
      if (!selected) options.unshift(['', datasetsLoading ? 'Loading…' : 'Choose a dataset']);
    } else if (def.path === 'engine') {
      options = options.map(([v, l]) => {
        const e = engines.find((x) => x.name === v);
        return [v, e && !e.available ? `${l} (unavailable)` : l] as const;
      });
    } else if (def.path === 'model.preset') {
      selected = typeof value === 'string' ? value : '';
    }
    control = (
      <select
        id={id}
        value={selected}
        aria-invalid={invalid || undefined}
        aria-describedby={describedBy}
        onChange={(e) => {
          const v = e.target.value;
          if (def.path === 'model.preset') onChange(pickModelPreset(config, v));
          else set(v === '' ? undefined : v);
        }}
      >
        {options.map(([v, l]) => (
          <option key={v} value={v}>
            {l}
          </option>
        ))}
      </select>
    );
  } else {
    const isNum = def.kind === 'int' || def.kind === 'number';
    const text = draft ?? textOf(value);
    let placeholder = dflt !== undefined ? `${textOf(dflt)} (default)` : '';
    if (def.path.startsWith('model.') && typeof modelPreset === 'string') {
      const fromPreset = presetShapeValue(modelPreset, def.path);
      if (fromPreset !== undefined) placeholder = `${fromPreset} (${modelPreset})`;
    }
    const common = {
      id,
      value: text,
      placeholder,
      'aria-invalid': invalid || undefined,
      'aria-describedby': describedBy,
    };
    control =
      def.kind === 'textarea' ? (
        <textarea {...common} rows={3} onChange={(e) => set(e.target.value === '' ? undefined : e.target.value)} />
      ) : (
        <input
          {...common}
          type="text"
          inputMode={isNum ? (def.kind === 'int' ? 'numeric' : 'decimal') : undefined}
          spellCheck={isNum ? false : undefined}
          className={isNum ? 'mono' : undefined}
          onChange={(e) => {
            const t = e.target.value;
            if (isNum) {
              setDraft(t);
              set(parseNumberText(t));
            } else set(t === '' ? undefined : t);
          }}
          onBlur={() => setDraft(null)}
        />
      );
  }

  return (
    <div className={`field${def.wide ? ' field-wide' : ''}${def.kind === 'bool' ? ' field-bool' : ''}${invalid ? ' field-invalid' : ''}`} data-field={def.path}>
      <label htmlFor={id} title={`${def.label} (${def.path})`}>
        {def.label} <code className="field-key">{def.path}</code>
      </label>
      {control}
      {def.hint && (
        <p className="field-hint" id={hintId}>
          {def.hint}
        </p>
      )}
      {invalid && (
        <p className="field-error" id={errId} data-testid={`error-${def.path}`}>
          {errors!.join(' · ')}
        </p>
      )}
    </div>
  );
}

const SHAPE_KEYS: Record<string, 'nLayer' | 'nHead' | 'nEmbd' | 'blockSize'> = {
  'model.n_layer': 'nLayer',
  'model.n_head': 'nHead',
  'model.n_embd': 'nEmbd',
  'model.block_size': 'blockSize',
};

function presetShapeValue(preset: string, path: string): number | undefined {
  const k = SHAPE_KEYS[path];
  const shapes = MODEL_SHAPES as Record<string, Record<string, number> | undefined>;
  return k ? shapes[preset]?.[k] : undefined;
}

/**
 * Choosing a shape preset clears the explicit shape fields (the preset gives them); choosing "custom" writes the
 * current preset's shape into them, so that the model stays what it was until a field changes.
 */
function pickModelPreset(config: Config, preset: string): Config {
  let c = config;
  const current = getAt(config, 'model.preset');
  if (preset === '') {
    if (typeof current === 'string') {
      for (const path of Object.keys(SHAPE_KEYS)) {
        if (getAt(c, path) === undefined) c = setAt(c, path, presetShapeValue(current, path));
      }
    }
    return setAt(c, 'model.preset', undefined);
  }
  for (const path of Object.keys(SHAPE_KEYS)) c = setAt(c, path, undefined);
  return setAt(c, 'model.preset', preset);
}

function JsonEditor({ config, onChange, errors }: { config: Config; onChange: (c: Config) => void; errors: readonly FieldError[] }) {
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
