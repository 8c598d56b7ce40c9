/** The per-checkpoint dialogs of the Checkpoints page: Sample, Export, Resume from here, Delete. */
import { useEffect, useId, useState } from 'react';
import { StudioError } from '../../../shared/errors';
import { DEFAULT_SAMPLING_SETTINGS } from '../../../shared/models';
import type { HandlerResult } from '../../../shared/contract';
import { ErrorNote } from '../../components/ErrorNote';
import { FilePicker } from '../../components/FilePicker';
import { FormDialog } from '../../components/FormDialog';
import { bytes, fixed } from '../../format';
import { href, navigate } from '../../router';
import { useClient } from '../../useInvoke';
import { endReasonText } from '../chat/end-reason';
import { branchBlocked, deleteBlocked, deleteConsequences, type CheckpointEntry } from './checkpoints-view';

/** new tokens per sample, in the Sample dialog and the gallery alike */
export const DEFAULT_MAX_TOKENS = '48';

/** One checkpoint, as dialogs name it. */
export function CheckpointName({ c }: { c: CheckpointEntry }) {
  return (
    <span className="ckpt-name">
      step <strong>{c.step}</strong> of <strong>{c.runName}</strong>
    </span>
  );
}

/** Integer input parsing: the value, or null when it is not a whole number in [min, max]. */
export function parseIntIn(text: string, min: number, max: number): number | null {
  if (!/^\s*\d+\s*$/.test(text)) return null;
  const n = Number(text);
  return Number.isSafeInteger(n) && n >= min && n <= max ? n : null;
}

/** Prompt, seed and max tokens: the sampling inputs shared by the sample dialog and the gallery. */
export function SampleInputs({
  prompt,
  seed,
  maxTokens,
  onPrompt,
  onSeed,
  onMaxTokens,
  disabled,
}: {
  prompt: string;
  seed: string;
  maxTokens: string;
  onPrompt: (v: string) => void;
  onSeed: (v: string) => void;
  onMaxTokens: (v: string) => void;
  disabled?: boolean;
}) {
  const ids = { prompt: useId(), seed: useId(), max: useId() };
  const seedBad = parseIntIn(seed, 0, 4_294_967_295) === null;
  const maxBad = parseIntIn(maxTokens, 1, 1024) === null;
  return (
    <div className="ckpt-sample-inputs">
      <div className="field field-wide">
        <label htmlFor={ids.prompt}>Prompt</label>
        <textarea
          id={ids.prompt}
          rows={3}
          value={prompt}
          maxLength={100_000}
          onChange={(e) => onPrompt(e.target.value)}
          disabled={disabled}
        />
      </div>
      <div className="field">
        <label htmlFor={ids.seed}>Seed</label>
        <input
          id={ids.seed}
          inputMode="numeric"
          value={seed}
          onChange={(e) => onSeed(e.target.value)}
          aria-invalid={seedBad}
          aria-describedby={`${ids.seed}-e`}
          disabled={disabled}
        />
        <p className="field-error" id={`${ids.seed}-e`}>
          {seedBad ? 'A whole number from 0 to 4294967295' : ''}
        </p>
      </div>
      <div className="field">
        <label htmlFor={ids.max}>Max tokens</label>
        <input
          id={ids.max}
          inputMode="numeric"
          value={maxTokens}
          onChange={(e) => onMaxTokens(e.target.value)}
          aria-invalid={maxBad}
          aria-describedby={`${ids.max}-e`}
          disabled={disabled}
        />
        <p className="field-error" id={`${ids.max}-e`}>
          {maxBad ? 'A whole number from 1 to 1024' : ''}
        </p>
      </div>
    </div>
  );
}

type SampleResult = HandlerResult<'generate-sample'>[number];

/** A generated text: the prompt (muted) and what the model wrote. */
export function SampleText({ prompt, result }: { prompt: string; result: SampleResult }) {
  if (result.error) return <ErrorNote error={StudioError.fromPlain(result.error)} />;
  return (
    <div className="ckpt-sample-text" data-testid="sample-text">
      <span className="ckpt-sample-prompt">{prompt}</span>
      {result.text}
      {result.tokens === 0 && <span className="muted"> (the model ended the text at once)</span>}
    </div>
  );
}

/** `initialPrompt`: see startingPrompt (the gallery starts from the same). */
export function SampleDialog({
  c,
  initialPrompt,
  onClose,
}: {
  c: CheckpointEntry;
  initialPrompt: string;
  onClose: () => void;
}) {
  const client = useClient();
  const [prompt, setPrompt] = useState(initialPrompt);
  const [seed, setSeed] = useState(String(DEFAULT_SAMPLING_SETTINGS.seed));
  const [maxTokens, setMaxTokens] = useState(DEFAULT_MAX_TOKENS);
  const [result, setResult] = useState<{ prompt: string; r: SampleResult } | null>(null);
  const s = parseIntIn(seed, 0, 4_294_967_295);
  const m = parseIntIn(maxTokens, 1, 1024);

  return (
    <FormDialog
      title="Sample from a checkpoint"
      onClose={onClose}
      testId="sample-dialog"
      cancelLabel="Close"
      submitLabel={result ? 'Generate again' : 'Generate'}
      busyLabel="Generating…"
      canSubmit={s !== null && m !== null}
      onSubmit={async () => {
        if (s === null || m === null) return;
        const [r] = await client.invoke('generate-sample', {
          targets: [{ runId: c.runId, step: c.step }],
          prompt,
          seed: s,
          maxTokens: m,
        });
        setResult({ prompt, r: r! });
      }}
      retry
      intro={
        <p className="muted">
          <CheckpointName c={c} />. The same prompt and seed give the same text, so checkpoints can be compared.
        </p>
      }
      formClassName=""
      fields={(busy) => (
        <SampleInputs
          prompt={prompt}
          seed={seed}
          maxTokens={maxTokens}
          onPrompt={setPrompt}
          onSeed={setSeed}
          onMaxTokens={setMaxTokens}
          disabled={busy}
        />
      )}
      after={(busy) =>
        result &&
        !busy && (
          <section aria-label="Sample" className="ckpt-sample-out">
            <SampleText prompt={result.prompt} result={result.r} />
            {!result.r.error && (
              <p className="muted small">
                {result.r.tokens} tokens · {result.r.tokensPerSec.toFixed(1)} tokens/s
                {result.r.reason && (
                  <span data-testid="sample-reason"> · {endReasonText(result.r.reason, result.r.contextTokens)}</span>
                )}{' '}
                · temperature {DEFAULT_SAMPLING_SETTINGS.temperature}, top-k {DEFAULT_SAMPLING_SETTINGS.topK}
              </p>
            )}
          </section>
        )
      }
    >
      {(busy) =>
        busy && (
          <div className="ckpt-busy" role="status" aria-live="polite">
            <span className="ckpt-spinner" aria-hidden="true" />
            Loading the checkpoint and generating up to {m} tokens…
          </div>
        )
      }
    </FormDialog>
  );
}

/** A folder name from a run name: letters, digits, "-", "_" and "." only. */
export function folderName(s: string): string {
  return (
    s
      .replace(/[^A-Za-z0-9._-]+/g, '-')
      .replace(/^[-.]+|[-.]+$/g, '')
      .slice(0, 60) || 'checkpoint'
  );
}

/** The folder that holds a path ("/a/b" -> "/a"), or "" for a bare name. */
export function parentOf(p: string): string {
  const t = p.replace(/[\\/]+$/, '');
  const i = Math.max(t.lastIndexOf('/'), t.lastIndexOf('\\'));
  return i < 0 ? '' : i === 0 ? t.slice(0, 1) : t.slice(0, i);
}

export function ExportDialog({
  c,
  home,
  onClose,
}: {
  c: CheckpointEntry;
  home: string | undefined;
  onClose: () => void;
}) {
  const client = useClient();
  const sep = home?.includes('\\') && !home.includes('/') ? '\\' : '/';
  const leaf = `${folderName(c.runName)}-step${c.step}`;
  const suggested = home ? `${home.replace(/[\\/]+$/, '')}${sep}exports${sep}${leaf}` : '';
  const [picking, setPicking] = useState(false);
  const [dest, setDest] = useState(suggested);
  const [touched, setTouched] = useState(false);
  const [overwrite, setOverwrite] = useState(false);
  const [done, setDone] = useState<HandlerResult<'checkpoints-export'> | null>(null);
  const ids = { dest: useId(), over: useId() };
  // the suggestion arrives with app-info; keep what the user typed
  useEffect(() => {
    if (!touched && suggested) setDest(suggested);
  }, [suggested, touched]);

  return (
    <FormDialog
      title="Export to Hugging Face safetensors"
      onClose={onClose}
      testId="export-dialog"
      submitLabel="Export"
      busyLabel="Exporting…"
      canSubmit={dest.trim() !== ''}
      onSubmit={async () =>
        setDone(
          await client.invoke('checkpoints-export', { runId: c.runId, step: c.step, dest: dest.trim(), overwrite }),
        )
      }
      footer={
        done && (
          <button type="button" className="button button-primary" onClick={onClose} autoFocus>
            Done
          </button>
        )
      }
      intro={
        <p>
          Writes the weights of <CheckpointName c={c} /> ({bytes(c.sizeBytes)} with the optimizer state) as{' '}
          <code>model.safetensors</code> and <code>config.json</code>, with GPT-2&apos;s tokenizer files (
          <code>vocab.json</code>, <code>merges.txt</code>, <code>tokenizer.json</code>) and{' '}
          <code>generation_config.json</code>: a folder that <code>AutoTokenizer</code> and{' '}
          <code>AutoModelForCausalLM.from_pretrained</code> load.
        </p>
      }
      fields={
        done
          ? undefined
          : (busy) => (
              <>
                <div className="field">
                  <label htmlFor={ids.dest}>Destination folder</label>
                  <div className="ckpt-path-row">
                    <input
                      id={ids.dest}
                      value={dest}
                      spellCheck={false}
                      placeholder="/path/to/exported-model"
                      onChange={(e) => {
                        setTouched(true);
                        setDest(e.target.value);
                      }}
                      disabled={busy}
                      aria-describedby={`${ids.dest}-hint`}
                    />
                    <button type="button" className="button" onClick={() => setPicking(true)} disabled={busy}>
                      Browse…
                    </button>
                  </div>
                  <p className="field-hint" id={`${ids.dest}-hint`}>
                    On the machine that runs the studio: a new or empty folder (a relative path is taken from the
                    studio&apos;s working folder). Browse picks the folder to create <code>{leaf}</code> in.
                  </p>
                </div>
                <div className="field field-bool">
                  <label htmlFor={ids.over}>
                    Overwrite the model, config and tokenizer files in a folder that is not empty (other files are kept)
                  </label>
                  <input
                    id={ids.over}
                    type="checkbox"
                    checked={overwrite}
                    onChange={(e) => setOverwrite(e.target.checked)}
                    disabled={busy}
                  />
                </div>
              </>
            )
      }
    >
      {(busy) => (
        <>
          {done && (
            <div className="ckpt-done" role="status">
              <strong>Exported.</strong>
              <dl className="facts">
                <dt>Folder</dt>
                <dd>
                  <code data-testid="export-dir">{done.dir}</code>
                </dd>
                <dt>Weights</dt>
                <dd>
                  <code>{done.modelFile}</code>
                </dd>
                <dt>Config</dt>
                <dd>
                  <code>{done.configFile}</code>
                </dd>
              </dl>
            </div>
          )}
          {picking && (
            <FilePicker
              title="Choose where to export"
              mode="folder"
              initialPath={parentOf(dest.trim()) || home}
              onClose={() => setPicking(false)}
              onPick={(p) => {
                const s2 = p.includes('\\') && !p.includes('/') ? '\\' : '/';
                setTouched(true);
                setDest(`${p.replace(/[\\/]+$/, '')}${s2}${leaf}`);
                setPicking(false);
              }}
            />
          )}
          {busy && (
            <div className="ckpt-busy" role="status" aria-live="polite">
              <span className="ckpt-spinner" aria-hidden="true" />
              Writing the folder…
            </div>
          )}
        </>
      )}
    </FormDialog>
  );
}

export function BranchDialog({
  c,
  plannedSteps,
  onClose,
}: {
  c: CheckpointEntry;
  plannedSteps: number | undefined;
  onClose: () => void;
}) {
  const client = useClient();
  const [name, setName] = useState(`${c.runName} from step ${c.step}`);
  const [start, setStart] = useState(true);
  const ids = { name: useId(), start: useId() };
  const blocked = branchBlocked(c, plannedSteps);

  return (
    <FormDialog
      title="Resume from here in a new run?"
      onClose={onClose}
      testId="branch-dialog"
      submitLabel={start ? 'Create and start' : 'Create run'}
      busyLabel="Creating…"
      canSubmit={blocked === null}
      onSubmit={async () => {
        const r = await client.invoke('checkpoints-branch', {
          runId: c.runId,
          step: c.step,
          name: name.trim() || undefined,
          start,
        });
        onClose();
        navigate({ page: 'run', runId: r.id });
      }}
      intro={
        <>
          <p>
            A new run is created with the config of <a href={href({ page: 'run', runId: c.runId })}>{c.runName}</a>. It
            continues from <CheckpointName c={c} /> with that checkpoint&apos;s weights, optimizer state and data
            position
            {plannedSteps !== undefined ? `, up to step ${plannedSteps}` : ''}. Its curves start with the
            original&apos;s metrics before step {c.step}.
          </p>
          <p>
            <strong>The original run and its checkpoints stay as they are.</strong> The checkpoint is shared by hard
            links, so it takes no extra disk space where the disk allows them.
          </p>
          {blocked && <p className="ckpt-warn">{blocked}</p>}
        </>
      }
      fields={(busy) => (
        <>
          <div className="field">
            <label htmlFor={ids.name}>Name of the new run</label>
            <input
              id={ids.name}
              value={name}
              maxLength={200}
              onChange={(e) => setName(e.target.value)}
              disabled={busy}
            />
          </div>
          <div className="field field-bool">
            <label htmlFor={ids.start}>Start training now</label>
            <input
              id={ids.start}
              type="checkbox"
              checked={start}
              onChange={(e) => setStart(e.target.checked)}
              disabled={busy}
            />
          </div>
        </>
      )}
    />
  );
}

export function DeleteDialog({
  c,
  all,
  onClose,
  onDeleted,
}: {
  c: CheckpointEntry;
  all: readonly CheckpointEntry[];
  onClose: () => void;
  onDeleted: (message: string) => void;
}) {
  const client = useClient();
  const blocked = deleteBlocked(c);
  return (
    <FormDialog
      title={`Delete checkpoint step ${c.step}?`}
      onClose={onClose}
      tone="danger"
      testId="delete-checkpoint-dialog"
      submitLabel="Delete checkpoint"
      busyLabel="Deleting…"
      canSubmit={blocked === null}
      onSubmit={async () => {
        const res = await client.invoke('checkpoints-delete', { runId: c.runId, step: c.step });
        const note = 'note' in res && typeof res.note === 'string' ? ` ${res.note}` : '';
        onDeleted(`Deleted checkpoint step ${c.step} of “${c.runName}”.${note}`);
      }}
    >
      <p>
        This deletes the folder{' '}
        <code>
          runs/{c.runId}/checkpoints/step_{String(c.step).padStart(6, '0')}/
        </code>{' '}
        ({bytes(c.sizeBytes)}) of <strong>{c.runName}</strong>
        {c.valLoss !== null ? `, val loss ${fixed(c.valLoss, 4)}` : ''}. The run&apos;s metrics and samples are kept. It
        cannot be undone.
      </p>
      {blocked ? (
        <p className="ckpt-warn">{blocked}</p>
      ) : (
        deleteConsequences(c, all).map((t) => (
          <p key={t} className={t.startsWith('This is the') ? 'ckpt-warn' : 'muted'}>
            {t}
          </p>
        ))
      )}
    </FormDialog>
  );
}
