import { useEffect, useId, useMemo, useRef, useState } from 'react';
import type { HandlerResult } from '../../../shared/contract';
import { ErrorCode, StudioError, type PlainError } from '../../../shared/errors';
import { checkRunConfig, totalSteps, type FieldError, type RunConfig } from '../../../shared/run-config';
import { ErrorNote } from '../../components/ErrorNote';
import { FormDialog } from '../../components/FormDialog';
import { bytes, duration, int, si } from '../../format';
import { navigate } from '../../router';
import { parseTags } from '../../run-info';
import { useClient, useInvoke } from '../../useInvoke';
import { useStudioEvent } from '../../useEvent';
import { FormSection } from './ConfigFields';
import { errorsByField, SECTIONS, type Config } from './config-form';
import { LrPreview } from './LrPreview';
import { PlannerPanel } from './PlannerPanel';
import { PrepareBuiltin } from './PrepareBuiltin';
import { useCalibration, useRunTimings, useTrainedShape } from './useThroughputs';
import { planShape, type RunPlan } from '../../../shared/planner';
import {
  FASTEST_CPU_FLOPS,
  FASTEST_GPU_FLOPS,
  longRun,
  planOf,
  runDuration,
  trainsOnGpu,
  type RunDuration,
} from './launch-check';

type Preset = HandlerResult<'presets-list'>[number];

/** What the confirmation before creating the run says: a long run, or one the service finds too big for memory. */
type Confirm =
  | {
      kind: 'long';
      duration: RunDuration;
      plan: RunPlan;
      onGpu: boolean;
      /** the service's memory refusal of this config, asked before the dialog opens: both reasons in one dialog */
      memory: PlainError | null;
    }
  | { kind: 'memory'; error: PlainError };

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
  /** the JSON view's text does not parse: the config is the last one that did */
  const [jsonSyntax, setJsonSyntax] = useState<string | null>(null);
  /** bumps to check the config with the workspace again when the workspace changed (a dataset became ready) */
  const [recheck, setRecheck] = useState(0);
  const [confirm, setConfirm] = useState<Confirm | null>(null);

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
  }, [client, configJson, recheck]);

  // a dataset finished preparing: list them again (and check the config again)
  useStudioEvent('dataset-status', (p) => {
    if (p.status !== 'running') {
      reloadDatasets();
      setRecheck((n) => n + 1);
    }
  });

  const readyDatasets =
    datasets.status === 'ok' ? datasets.data.filter((d) => d.kind === 'tokens' && d.status === 'ready') : [];
  // no dataset to train on at all: the offer to prepare one stands for the dataset field's error
  const noDataset = datasets.status === 'ok' && readyDatasets.length === 0 && config?.sft !== true;
  const workspaceErrors = useMemo(
    () => (noDataset ? serverErrors.filter((e) => e.field !== 'dataset') : serverErrors),
    [noDataset, serverErrors],
  );
  const errors = local && !local.ok ? local.errors : workspaceErrors;
  const byField = useMemo(() => errorsByField(errors), [errors]);

  const engineInfo = engines.status === 'ok' ? engines.data : [];
  const plan = planned ? planOf(planned, trained, calibration, runTimings) : null;
  const onGpu = planned ? trainsOnGpu(planned.engine, engineInfo) : false;
  const runTime = plan && planned ? runDuration(plan, planned, { estimateMs: calibration.estimateMs, onGpu }) : null;
  const canCreate = local?.ok === true && jsonSyntax === null && !noDataset && !submitting;

  /** Creates and starts the run; a run the service finds too big for this machine's memory asks first. */
  const create = async (force: boolean) => {
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
      setConfirm(null);
      navigate({ page: 'run', runId: run.id });
    } catch (e) {
      setSubmitting(false);
      if (!force && e instanceof StudioError && e.code === ErrorCode.OUT_OF_MEMORY) {
        // the plan's memory estimate errs high: the user may know better
        setConfirm({ kind: 'memory', error: e });
        return;
      }
      setConfirm(null);
      setSubmitError(e);
      if (e instanceof StudioError && e.code === ErrorCode.BAD_CONFIG) {
        client.invoke('config-validate', { config }).then(setServerErrors, () => undefined);
      }
    }
  };

  /** The Create and start button: a run that takes long is started only once confirmed. */
  const requestStart = async () => {
    if (!canCreate || !plan || !config) return;
    const long = runTime ? longRun(runTime) : null;
    if (!long) return create(false);
    // a long run that also does not fit says both in one dialog; if the memory cannot be asked, create asks later
    const memory = await client.invoke('runs-check-memory', { config }).catch(() => null);
    setConfirm({ kind: 'long', duration: long, plan, onGpu, memory });
  };

  if (!config) {
    if (presets.status === 'error') return <ErrorNote error={presets.error} />;
    return (
      <p className="muted" aria-busy="true">
        Loading the presets…
      </p>
    );
  }

  const datasetId = typeof config.dataset === 'string' ? config.dataset : '';
  const dataset = readyDatasets.find((d) => d.id === datasetId);
  const other = byField.get('');
  const steps = local?.ok ? totalSteps(local.config) : 0;
  const problems = (n: number, where = '') => `${n} problem${n === 1 ? '' : 's'}${where}`;
  const validation =
    view === 'json' && jsonSyntax !== null
      ? 'The JSON does not parse'
      : local && !local.ok
        ? problems(local.errors.length)
        : checking
          ? 'Checking with the workspace…'
          : workspaceErrors.length
            ? problems(workspaceErrors.length, ' in the workspace')
            : noDataset
              ? 'No dataset yet'
              : 'Valid';

  return (
    // Enter in a field never starts a run: the form has no submit button, and a submit does nothing
    <form className="new-run" noValidate onSubmit={(e) => e.preventDefault()}>
      {loadError !== null && <ErrorNote error={loadError} />}
      {noDataset && (
        <PrepareBuiltin
          onReady={(id) => {
            // a config on a dataset this workspace does not have (a preset's) trains on the new one
            if (config.sft !== true && !readyDatasets.some((d) => d.id === datasetId)) {
              setConfig({ ...config, dataset: id });
              setGeneration((g) => g + 1);
            }
          }}
        />
      )}
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
                onClick={() => {
                  setView('form');
                  // the form shows the last config the JSON gave
                  setJsonSyntax(null);
                }}
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
            <JsonEditor config={config} onChange={setConfig} onSyntax={setJsonSyntax} errors={errors} />
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
        />
      </div>

      <div className="new-run-actions" data-testid="new-run-actions">
        <div className="new-run-actions-status">
          <span
            className={`small new-run-validation${validation === 'Valid' ? '' : checking ? ' muted' : ' new-run-validation-bad'}`}
            aria-live="polite"
            data-testid="validation-state"
          >
            {validation}
          </span>
          {plan && runTime && (
            <span className="muted small" data-testid="action-estimate">
              {int(plan.steps)} steps ·{' '}
              {runTime.basis === 'measured'
                ? `≈ ${duration(runTime.seconds)}`
                : runTime.basis === 'engine'
                  ? `≈ ${duration(runTime.seconds)} (estimated)`
                  : longRun(runTime)
                    ? `≥ ${duration(runTime.seconds)} (not measured)`
                    : 'time not measured yet'}{' '}
              · memory ≈ {bytes(plan.memory.total)}
            </span>
          )}
        </div>
        {submitError !== null && <ErrorNote error={submitError} />}
        <button
          type="button"
          className="button button-primary new-run-start"
          disabled={!canCreate}
          onClick={() => void requestStart()}
          title={canCreate ? 'The run starts as soon as it is created' : 'Fix the problems to create the run'}
        >
          {submitting ? 'Creating…' : 'Create and start'}
        </button>
      </div>

      {confirm && (
        <ConfirmStart
          confirm={confirm}
          onClose={() => setConfirm(null)}
          onConfirm={() => create(confirm.kind === 'memory' || confirm.memory !== null)}
        />
      )}
    </form>
  );
}

/** The confirmation before a long run, or one the service judges too big for this machine's memory. */
function ConfirmStart({
  confirm,
  onClose,
  onConfirm,
}: {
  confirm: Confirm;
  onClose: () => void;
  onConfirm: () => Promise<void>;
}) {
  if (confirm.kind === 'memory') {
    return (
      <FormDialog
        title="Start a run that may not fit in memory?"
        tone="danger"
        testId="confirm-start"
        onClose={onClose}
        onSubmit={onConfirm}
        submitLabel="Create anyway"
        busyLabel="Creating…"
      >
        <p data-testid="confirm-reason">{confirm.error.message}</p>
        <p className="muted small">
          The plan counts every buffer in fp32, so it errs high; a run that does not fit stops with an error, or slows
          the machine down while it swaps. {confirm.error.hint}
        </p>
      </FormDialog>
    );
  }
  const { duration: d, plan, onGpu, memory } = confirm;
  const rate = onGpu ? FASTEST_GPU_FLOPS : FASTEST_CPU_FLOPS;
  return (
    <FormDialog
      title={memory ? 'Start a long run that may not fit in memory?' : 'Start a long run?'}
      tone={memory ? 'danger' : undefined}
      testId="confirm-start"
      onClose={onClose}
      onSubmit={onConfirm}
      submitLabel={memory ? 'Create anyway' : 'Create and start'}
      busyLabel="Creating…"
    >
      <p data-testid="confirm-reason" data-seconds={Math.round(d.seconds)}>
        {d.basis === 'measured' ? (
          <>
            The plan puts this run at <strong>about {duration(d.seconds)}</strong> on this machine, from a timing of the
            same model shape and micro-batch.
          </>
        ) : d.basis === 'engine' ? (
          <>
            The plan puts this run&apos;s steps at <strong>about {duration(d.seconds)}</strong>: this engine&apos;s
            speed, measured on another model shape, scaled to this one&apos;s compute.
          </>
        ) : (
          <>
            This run&apos;s speed on this machine is not measured yet, but its {si(plan.totalFlops, 'FLOP')} of compute
            take <strong>at least {duration(d.seconds)}</strong>, even at {si(rate, 'FLOP/s')} (the fastest{' '}
            {onGpu ? 'GPU' : 'CPU'} training speed to expect).
          </>
        )}
      </p>
      <p className="muted small">
        {int(plan.steps)} steps of {int(plan.tokensPerStep)} tokens ({si(plan.totalTokens, 'tokens')}); memory ≈{' '}
        {bytes(plan.memory.total)}. It keeps this machine busy until it ends or you stop it; a run can be stopped and
        resumed from its last checkpoint.
      </p>
      {memory && (
        <>
          <p data-testid="confirm-memory">{memory.message}</p>
          <p className="muted small">
            The plan counts every buffer in fp32, so it errs high; a run that does not fit stops with an error, or slows
            the machine down while it swaps. {memory.hint}
          </p>
        </>
      )}
    </FormDialog>
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
  onSyntax,
  errors,
}: {
  config: Config;
  onChange: (c: Config) => void;
  /** the text's parse error, or null when it parses (the page's counter and button follow it) */
  onSyntax: (message: string | null) => void;
  errors: readonly FieldError[];
}) {
  const [text, setText] = useState(() => JSON.stringify(config, null, 2));
  const [syntax, setSyntaxState] = useState<string | null>(null);
  const setSyntax = (m: string | null) => {
    setSyntaxState(m);
    onSyntax(m);
  };
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
