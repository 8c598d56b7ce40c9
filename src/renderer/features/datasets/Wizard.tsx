import { useEffect, useId, useMemo, useRef, useState, type ReactNode } from 'react';
import { ErrorNote } from '../../components/ErrorNote';
import { FilePicker } from '../../components/FilePicker';
import { bytes, duration, int } from '../../format';
import { useClient, useInvoke } from '../../useInvoke';
import {
  buildRequest,
  datasetIdOf,
  EMPTY_FORM,
  formFor,
  originsOf,
  type DatasetEstimate,
  type DatasetSummary,
  type FieldErrors,
  type FormState,
  type Origin,
  type PrepareRequest,
  type SourceInfo,
} from './request';

/** What each source's local file may be, for the picker. */
const PICK: Record<string, { mode: 'file' | 'folder' | 'either'; extensions?: string[]; what: string }> = {
  tinyshakespeare: { mode: 'file', extensions: ['txt'], what: 'Tiny Shakespeare’s input.txt' },
  'fineweb-edu-10bt': { mode: 'either', extensions: ['parquet'], what: 'a parquet file, or a folder of them' },
  hellaswag: { mode: 'file', extensions: ['jsonl'], what: 'hellaswag_val.jsonl' },
  local: {
    mode: 'either',
    extensions: ['txt', 'md', 'jsonl', 'parquet', 'bin', 'npy'],
    what: 'a .txt, .jsonl or .parquet file, or a folder of them',
  },
};

const ORIGIN_LABEL: Record<Origin, string> = { default: 'Download', file: 'From this machine', url: 'From a URL' };

function Field({
  id,
  label,
  hint,
  error,
  wide,
  children,
}: {
  id: string;
  label: string;
  hint?: ReactNode;
  error?: string;
  wide?: boolean;
  children: ReactNode;
}) {
  return (
    <div className={`field${wide ? ' field-wide' : ''}${error ? ' field-invalid' : ''}`}>
      <label htmlFor={id}>{label}</label>
      {children}
      {error ? (
        <p className="field-error" id={`${id}-error`}>
          {error}
        </p>
      ) : hint ? (
        <p className="field-hint" id={`${id}-hint`}>
          {hint}
        </p>
      ) : null}
    </div>
  );
}

/** The estimate of the current request, asked for a moment after the form stops changing (the latest wins). */
function useEstimate(req: PrepareRequest | null): {
  estimate: DatasetEstimate | null;
  error: unknown;
  loading: boolean;
} {
  const client = useClient();
  const [state, setState] = useState<{ estimate: DatasetEstimate | null; error: unknown; loading: boolean }>({
    estimate: null,
    error: null,
    loading: false,
  });
  const key = req ? JSON.stringify({ ...req, hfToken: undefined }) : '';
  const seq = useRef(0);
  useEffect(() => {
    const my = ++seq.current;
    if (!key) {
      setState({ estimate: null, error: null, loading: false });
      return;
    }
    setState((s) => ({ ...s, loading: true }));
    const t = window.setTimeout(() => {
      client.invoke('datasets-estimate', JSON.parse(key) as PrepareRequest).then(
        (estimate) => my === seq.current && setState({ estimate, error: null, loading: false }),
        (error: unknown) => my === seq.current && setState({ estimate: null, error, loading: false }),
      );
    }, 250);
    return () => window.clearTimeout(t);
  }, [client, key]);
  return state;
}

export function Wizard({
  sources,
  datasets,
  running,
  onStart,
}: {
  sources: SourceInfo[];
  datasets: DatasetSummary[];
  /** dataset ids being prepared now */
  running: Set<string>;
  onStart: (req: PrepareRequest, datasetId: string) => Promise<void>;
}) {
  const [settings] = useInvoke('settings-get');
  const [form, setForm] = useState<FormState>(() => {
    const first = sources.find((s) => s.id === 'tinyshakespeare') ?? sources[0];
    return first ? formFor(first, EMPTY_FORM) : EMPTY_FORM;
  });
  const [touched, setTouched] = useState(false);
  const [picking, setPicking] = useState(false);
  const [starting, setStarting] = useState(false);
  const [startError, setStartError] = useState<unknown>(null);
  const endpointSeeded = useRef(false);
  const uid = useId();
  const id = (k: string) => `${uid}-${k}`;

  useEffect(() => {
    if (endpointSeeded.current || settings.status !== 'ok') return;
    endpointSeeded.current = true;
    if (settings.data.hfEndpoint)
      setForm((f) => (f.endpoint === '' ? { ...f, endpoint: settings.data.hfEndpoint ?? '' } : f));
  }, [settings]);

  const src = sources.find((s) => s.id === form.source) ?? null;
  const built = useMemo(() => (src ? buildRequest(src, form) : null), [src, form]);
  const errors: FieldErrors = built?.errors ?? {};
  const valid = !!built && Object.keys(errors).length === 0;
  const { estimate, error: estimateError, loading: estimating } = useEstimate(valid ? built.req : null);
  const datasetId = src && built ? datasetIdOf(src, built.req) : '';
  const existing = datasets.find((d) => d.id === datasetId);
  const isRunning = running.has(datasetId);
  const blockedByExisting = existing?.status === 'ready' && !form.overwrite;
  const has = (k: keyof PrepareRequest) => !!src?.options.includes(k as SourceInfo['options'][number]);
  const set = <K extends keyof FormState>(k: K, v: FormState[K]) => setForm((f) => ({ ...f, [k]: v }));
  const shownError = (k: keyof FormState): string | undefined =>
    touched || form[k] !== EMPTY_FORM[k] ? errors[k] : undefined;
  const origins = src ? originsOf(src) : [];
  const pick = src ? PICK[src.id] : undefined;
  const downloads = !!src && src.network && form.origin !== 'file';

  const submit = async () => {
    setTouched(true);
    if (!src || !built || !valid || isRunning || blockedByExisting) return;
    setStarting(true);
    setStartError(null);
    try {
      await onStart(built.req, datasetId);
      setForm((f) => ({ ...f, hfToken: '' }));
    } catch (e) {
      setStartError(e);
    } finally {
      setStarting(false);
    }
  };

  const described = (k: string, err?: string) => (err ? `${id(k)}-error` : `${id(k)}-hint`);

  return (
    <section className="card ds-wizard" aria-labelledby={id('title')}>
      <header className="card-header">
        <h2 id={id('title')}>Prepare a dataset</h2>
      </header>
      <p className="muted small">
        Downloads (or reads) the text and tokenizes it with GPT-2’s BPE into llm.c shards in the workspace; shard 0 is
        val. Every step can be paused and resumed.
      </p>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void submit();
        }}
        noValidate
      >
        <fieldset className="ds-sources">
          <legend className="ds-legend">Source</legend>
          {sources.map((s) => (
            <label
              key={s.id}
              className={`preset ds-source${s.id === form.source ? ' preset-selected' : ''}`}
              data-source={s.id}
            >
              <span className="ds-source-top">
                <input
                  type="radio"
                  name={id('source')}
                  value={s.id}
                  checked={s.id === form.source}
                  onChange={() => setForm((f) => formFor(s, f))}
                />
                <span className="preset-title">{s.title}</span>
              </span>
              <span className="preset-desc muted small">{s.description}</span>
              <span className="ds-source-foot">
                <span className={`tag ds-net${s.network ? '' : ' ds-offline'}`}>
                  {s.network ? 'downloads' : 'no network'}
                </span>
                <span className="muted small">{s.kind === 'raw' ? 'kept as is' : 'GPT-2 tokens'}</span>
              </span>
            </label>
          ))}
        </fieldset>

        {src && (
          <div className="ds-wizard-grid">
            <div className="ds-options">
              {origins.length > 1 && (
                <fieldset className="ds-origin">
                  <legend className="ds-legend">Input</legend>
                  <div className="segmented ds-segmented">
                    {origins.map((o) => (
                      <label
                        key={o}
                        className={`segmented-item ds-origin-item${form.origin === o ? ' ds-origin-on' : ''}`}
                      >
                        <input
                          className="visually-hidden"
                          type="radio"
                          name={id('origin')}
                          value={o}
                          checked={form.origin === o}
                          onChange={() => set('origin', o)}
                        />
                        {o === 'default' && src.id === 'fineweb-edu-10bt' ? 'Hugging Face Hub' : ORIGIN_LABEL[o]}
                      </label>
                    ))}
                  </div>
                </fieldset>
              )}

              <div className="form-grid ds-fields">
                {form.origin === 'default' && src.defaultUrl && (
                  <p className="field field-wide muted small ds-from">
                    From <code>{src.defaultUrl}</code>
                  </p>
                )}
                {form.origin === 'file' && has('file') && (
                  <Field
                    id={id('file')}
                    label="File or folder"
                    wide
                    error={shownError('file')}
                    hint={pick ? `Choose ${pick.what}.` : undefined}
                  >
                    <div className="ds-file-row">
                      <input
                        id={id('file')}
                        className="mono"
                        value={form.file}
                        placeholder="/path/to/corpus.txt"
                        spellCheck={false}
                        aria-invalid={shownError('file') ? true : undefined}
                        aria-describedby={described('file', shownError('file'))}
                        onChange={(e) => set('file', e.target.value)}
                      />
                      <button type="button" className="button" onClick={() => setPicking(true)}>
                        Browse…
                      </button>
                    </div>
                  </Field>
                )}
                {form.origin === 'url' && has('url') && (
                  <Field
                    id={id('url')}
                    label="URL"
                    wide
                    error={shownError('url')}
                    hint={src.defaultUrl ? 'Instead of the default; one file.' : 'One file to download.'}
                  >
                    <input
                      id={id('url')}
                      className="mono"
                      type="url"
                      value={form.url}
                      placeholder={src.defaultUrl ?? 'https://example.com/corpus.txt'}
                      spellCheck={false}
                      aria-invalid={shownError('url') ? true : undefined}
                      aria-describedby={described('url', shownError('url'))}
                      onChange={(e) => set('url', e.target.value)}
                    />
                  </Field>
                )}

                {src.id === 'fineweb-edu-10bt' && (
                  <fieldset className="field field-wide ds-limit">
                    <legend className="ds-legend">Limit</legend>
                    <div className="ds-limit-row">
                      <label className="check">
                        <input
                          type="radio"
                          name={id('limit')}
                          checked={form.limit === 'files'}
                          onChange={() => set('limit', 'files')}
                        />
                        At most
                      </label>
                      <input
                        className="ds-num"
                        aria-label="Parquet files"
                        value={form.maxFiles}
                        disabled={form.limit !== 'files'}
                        aria-invalid={form.limit === 'files' && errors.maxFiles ? true : undefined}
                        onChange={(e) => set('maxFiles', e.target.value)}
                      />
                      <span className="muted small">parquet files (about 2 GB and 714M tokens each)</span>
                    </div>
                    <div className="ds-limit-row">
                      <label className="check">
                        <input
                          type="radio"
                          name={id('limit')}
                          checked={form.limit === 'tokens'}
                          onChange={() => set('limit', 'tokens')}
                        />
                        Stop after
                      </label>
                      <input
                        className="ds-num"
                        aria-label="Tokens"
                        value={form.maxTokens}
                        placeholder="100M"
                        disabled={form.limit !== 'tokens'}
                        aria-invalid={form.limit === 'tokens' && errors.maxTokens ? true : undefined}
                        onChange={(e) => set('maxTokens', e.target.value)}
                      />
                      <span className="muted small">tokens (10% of them are val)</span>
                    </div>
                    <div className="ds-limit-row">
                      <label className="check">
                        <input
                          type="radio"
                          name={id('limit')}
                          checked={form.limit === 'none'}
                          onChange={() => set('limit', 'none')}
                        />
                        Everything (about 10B tokens, 28 GB)
                      </label>
                    </div>
                    {(form.limit === 'files'
                      ? errors.maxFiles
                      : form.limit === 'tokens'
                        ? errors.maxTokens
                        : undefined) && (
                      <p className="field-error">{form.limit === 'files' ? errors.maxFiles : errors.maxTokens}</p>
                    )}
                  </fieldset>
                )}

                {has('sizeMb') && (
                  <Field id={id('sizeMb')} label="Size (MB of text)" error={errors.sizeMb} hint="Default 4 MB.">
                    <input
                      id={id('sizeMb')}
                      inputMode="decimal"
                      value={form.sizeMb}
                      placeholder="4"
                      aria-invalid={errors.sizeMb ? true : undefined}
                      onChange={(e) => set('sizeMb', e.target.value)}
                    />
                  </Field>
                )}

                {has('name') && (
                  <Field
                    id={id('name')}
                    label="Dataset name"
                    error={errors.name}
                    hint={`Its folder under datasets/ (default: ${src.id === 'local' ? 'the file’s name' : src.defaultName}).`}
                  >
                    <input
                      id={id('name')}
                      value={form.name}
                      placeholder={datasetId || src.defaultName}
                      spellCheck={false}
                      aria-invalid={errors.name ? true : undefined}
                      onChange={(e) => set('name', e.target.value)}
                    />
                  </Field>
                )}

                {has('endpoint') && form.origin === 'default' && (
                  <>
                    <Field
                      id={id('endpoint')}
                      label="Hugging Face endpoint"
                      error={errors.endpoint}
                      hint="A mirror works, e.g. https://hf-mirror.com. Default: Settings, else HF_ENDPOINT, else huggingface.co."
                    >
                      <input
                        id={id('endpoint')}
                        className="mono"
                        value={form.endpoint}
                        placeholder="https://huggingface.co"
                        spellCheck={false}
                        onChange={(e) => set('endpoint', e.target.value)}
                      />
                    </Field>
                    <Field
                      id={id('hfToken')}
                      label="Hugging Face token"
                      hint={
                        settings.status === 'ok' && settings.data.hfTokenSet
                          ? 'A token is set in Settings; leave this empty to use it.'
                          : 'Optional (sample-10BT is public). Used for this preparation only, never stored; set one in Settings to keep it.'
                      }
                    >
                      <input
                        id={id('hfToken')}
                        type="password"
                        autoComplete="off"
                        value={form.hfToken}
                        placeholder={
                          settings.status === 'ok' && settings.data.hfTokenSet ? '•••••• (from Settings)' : 'hf_…'
                        }
                        onChange={(e) => set('hfToken', e.target.value)}
                      />
                    </Field>
                  </>
                )}
              </div>

              <details className="ds-advanced">
                <summary>Advanced</summary>
                <div className="form-grid ds-fields">
                  {has('maxTokens') && src.id !== 'fineweb-edu-10bt' && (
                    <Field
                      id={id('maxTokens')}
                      label="Stop after (tokens)"
                      error={errors.maxTokens}
                      hint="Default: all of it."
                    >
                      <input
                        id={id('maxTokens')}
                        value={form.maxTokens}
                        placeholder="all"
                        onChange={(e) => set('maxTokens', e.target.value)}
                        aria-invalid={errors.maxTokens ? true : undefined}
                      />
                    </Field>
                  )}
                  {has('shardSize') && (
                    <Field
                      id={id('shardSize')}
                      label="Shard size (tokens)"
                      error={errors.shardSize}
                      hint="Default 100M, as build-nanogpt."
                    >
                      <input
                        id={id('shardSize')}
                        value={form.shardSize}
                        placeholder="100M"
                        onChange={(e) => set('shardSize', e.target.value)}
                        aria-invalid={errors.shardSize ? true : undefined}
                      />
                    </Field>
                  )}
                  {has('valTokens') && (
                    <Field
                      id={id('valTokens')}
                      label="Val tokens"
                      error={errors.valTokens}
                      hint="Default: about 10%, at most one shard."
                    >
                      <input
                        id={id('valTokens')}
                        value={form.valTokens}
                        placeholder="auto"
                        onChange={(e) => set('valTokens', e.target.value)}
                        aria-invalid={errors.valTokens ? true : undefined}
                      />
                    </Field>
                  )}
                  {has('seed') && (
                    <Field id={id('seed')} label="Seed" error={errors.seed} hint="Default 1337.">
                      <input
                        id={id('seed')}
                        value={form.seed}
                        placeholder="1337"
                        onChange={(e) => set('seed', e.target.value)}
                        aria-invalid={errors.seed ? true : undefined}
                      />
                    </Field>
                  )}
                  {has('workers') && (
                    <Field
                      id={id('workers')}
                      label="Tokenizer workers"
                      error={errors.workers}
                      hint="Default: cores − 1."
                    >
                      <input
                        id={id('workers')}
                        value={form.workers}
                        placeholder="auto"
                        onChange={(e) => set('workers', e.target.value)}
                        aria-invalid={errors.workers ? true : undefined}
                      />
                    </Field>
                  )}
                  {has('keepDownloads') && downloads && (
                    <div className="field field-bool">
                      <label htmlFor={id('keep')}>Keep the downloaded files</label>
                      <input
                        id={id('keep')}
                        type="checkbox"
                        checked={form.keepDownloads}
                        onChange={(e) => set('keepDownloads', e.target.checked)}
                      />
                    </div>
                  )}
                  {has('overwrite') && (
                    <div className="field field-bool">
                      <label htmlFor={id('overwrite')}>Replace an existing dataset</label>
                      <input
                        id={id('overwrite')}
                        type="checkbox"
                        checked={form.overwrite}
                        onChange={(e) => set('overwrite', e.target.checked)}
                      />
                    </div>
                  )}
                </div>
              </details>
            </div>

            <aside
              className="ds-estimate"
              aria-labelledby={id('est')}
              data-testid="dataset-estimate"
              aria-busy={estimating}
            >
              <h3 id={id('est')}>Estimate</h3>
              {!valid && <p className="muted small">Complete the form to see the sizes and the time.</p>}
              {valid && estimateError !== null && <ErrorNote error={estimateError} />}
              {valid && estimate && (
                <>
                  <dl className="plan ds-plan">
                    <dt>Download</dt>
                    <dd data-testid="estimate-download">
                      {estimate.downloadBytes === null
                        ? 'unknown'
                        : estimate.downloadBytes === 0
                          ? 'none'
                          : `≈ ${bytes(estimate.downloadBytes)}`}
                    </dd>
                    <dt>Tokens</dt>
                    <dd data-testid="estimate-tokens">
                      {estimate.tokens === null
                        ? 'unknown'
                        : estimate.tokens === 0
                          ? 'none (kept as is)'
                          : `≈ ${int(estimate.tokens)}`}
                    </dd>
                    <dt>On disk</dt>
                    <dd>{estimate.diskBytes === null ? 'unknown' : `≈ ${bytes(estimate.diskBytes)}`}</dd>
                    <dt>Tokenizing</dt>
                    <dd>
                      {estimate.seconds === null
                        ? 'unknown'
                        : estimate.seconds < 1
                          ? '< 1 s'
                          : `≈ ${duration(estimate.seconds)}`}
                      {downloads && <span className="muted">+ the download</span>}
                    </dd>
                  </dl>
                  <ul className="notes small ds-notes">
                    {estimate.notes.map((n, i) => (
                      <li key={i}>{n}</li>
                    ))}
                  </ul>
                </>
              )}
              <div className="planner-foot">
                {isRunning ? (
                  <p className="field-hint">“{datasetId}” is being prepared now (below).</p>
                ) : blockedByExisting ? (
                  <p className="field-error">
                    “{datasetId}” already exists. Give another name, or tick “Replace an existing dataset” under
                    Advanced.
                  </p>
                ) : existing?.status === 'partial' ? (
                  <p className="field-hint">“{datasetId}” was interrupted: this continues it where it stopped.</p>
                ) : datasetId ? (
                  <p className="field-hint">
                    Into <code>datasets/{datasetId}/</code>
                  </p>
                ) : null}
                <button
                  type="submit"
                  className="button button-primary button-block"
                  disabled={starting || isRunning || blockedByExisting}
                  data-testid="dataset-start"
                >
                  {starting
                    ? 'Starting…'
                    : existing?.status === 'partial'
                      ? 'Resume preparation'
                      : downloads
                        ? 'Download and prepare'
                        : 'Prepare'}
                </button>
                {touched && !valid && <p className="field-error">Fix the fields marked above.</p>}
                {startError !== null && <ErrorNote error={startError} />}
              </div>
            </aside>
          </div>
        )}
      </form>
      {picking && pick && (
        <FilePicker
          title={`Choose ${pick.what}`}
          mode={pick.mode}
          extensions={pick.extensions}
          initialPath={form.file.trim() || undefined}
          onClose={() => setPicking(false)}
          onPick={(p) => {
            setForm((f) => ({ ...f, file: p }));
            setPicking(false);
          }}
        />
      )}
    </section>
  );
}
