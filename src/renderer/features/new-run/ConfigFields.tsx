/**
 * The form sections of the New run page: each field of a section of the run config (config-form.ts) with its
 * hint and its errors, the dataset and engine choices of this workspace, and the model shape presets.
 */
import { useId, useState, type ReactNode } from 'react';
import type { HandlerResult } from '../../../shared/contract';
import { MODEL_PRESETS as MODEL_SHAPES } from '../../../shared/model-presets';
import { compact } from '../../format';
import {
  DEFAULTS,
  fieldId,
  getAt,
  parseNumberText,
  setAt,
  textOf,
  type Config,
  type FieldDef,
  type SectionDef,
} from './config-form';
import { InitFromModel } from './InitFromModel';

type Dataset = HandlerResult<'datasets-list'>[number];

export function FormSection({
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
  const visible = section.fields.filter(
    (f) =>
      f.path !== 'init_path' ||
      (config.init_from !== undefined && config.init_from !== 'scratch') ||
      errors.has('init_path'),
  );
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
    control = (
      <input
        id={id}
        type="checkbox"
        checked={checked}
        onChange={(e) => set(e.target.checked)}
        aria-invalid={invalid || undefined}
        aria-describedby={describedBy}
      />
    );
  } else if (def.kind === 'select') {
    let options: (readonly [string, string])[] = [...(def.options ?? [])];
    let selected = value === undefined ? textOf(dflt) : textOf(value);
    if (def.path === 'dataset') {
      options = datasets.map((d) => [d.id, `${d.id} — ${compact(d.tokens.train)} train tokens`] as const);
      if (selected && !datasets.some((d) => d.id === selected))
        options.unshift([selected, `${selected} (not in this workspace)`]);
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
    <div
      className={`field${def.wide ? ' field-wide' : ''}${def.kind === 'bool' ? ' field-bool' : ''}${invalid ? ' field-invalid' : ''}`}
      data-field={def.path}
    >
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
