/**
 * The sample gallery: one prompt and seed across 2-10 checkpoints, the texts side by side (a column per
 * checkpoint, with its step and val loss). Each checkpoint is one generate-sample call, so the columns fill in
 * as they finish and the progress is real; Stop ends it after the current one.
 */
import { useRef, useState } from 'react';
import { StudioError } from '../../../shared/errors';
import { DEFAULT_SAMPLING_SETTINGS } from '../../../shared/models';
import type { HandlerResult } from '../../../shared/contract';
import { ErrorNote } from '../../components/ErrorNote';
import { useClient } from '../../useInvoke';
import { endReasonText } from '../chat/end-reason';
import { DEFAULT_MAX_TOKENS, parseIntIn, SampleInputs, SampleText } from './CheckpointDialogs';
import { ckptKey, GALLERY_MAX, GALLERY_MIN, valLossText, type CheckpointEntry } from './checkpoints-view';

type SampleResult = HandlerResult<'generate-sample'>[number];

/** `initialPrompt`: see startingPrompt (the Sample dialog starts from the same). */
export function SampleGallery({
  chosen,
  initialPrompt,
  onClose,
  onUnselect,
}: {
  chosen: readonly CheckpointEntry[];
  initialPrompt: string;
  onClose: () => void;
  onUnselect: (key: string) => void;
}) {
  const client = useClient();
  const [prompt, setPrompt] = useState(initialPrompt);
  const [seed, setSeed] = useState(String(DEFAULT_SAMPLING_SETTINGS.seed));
  const [maxTokens, setMaxTokens] = useState(DEFAULT_MAX_TOKENS);
  const [results, setResults] = useState<Record<string, SampleResult>>({});
  const [usedPrompt, setUsedPrompt] = useState('');
  const [running, setRunning] = useState<{ done: number; total: number; current: string } | null>(null);
  const [error, setError] = useState<unknown>(null);
  const stop = useRef(false);
  const s = parseIntIn(seed, 0, 4_294_967_295);
  const m = parseIntIn(maxTokens, 1, 1024);
  const countOk = chosen.length >= GALLERY_MIN && chosen.length <= GALLERY_MAX;

  const generate = async () => {
    if (s === null || m === null || !countOk) return;
    stop.current = false;
    setError(null);
    setResults({});
    setUsedPrompt(prompt);
    const list = [...chosen];
    for (let i = 0; i < list.length; i++) {
      if (stop.current) break;
      const c = list[i]!;
      setRunning({ done: i, total: list.length, current: `step ${c.step} of ${c.runName}` });
      try {
        const [r] = await client.invoke('generate-sample', {
          targets: [{ runId: c.runId, step: c.step }],
          prompt,
          seed: s,
          maxTokens: m,
        });
        setResults((x) => ({ ...x, [ckptKey(c)]: r! }));
      } catch (e) {
        setError(e);
        break;
      }
    }
    setRunning(null);
  };

  const busy = running !== null;
  return (
    <section className="card ckpt-gallery" aria-labelledby="ckpt-gallery-title" data-testid="sample-gallery">
      <div className="card-header">
        <h2 id="ckpt-gallery-title">Sample gallery</h2>
        <button type="button" className="button" onClick={onClose} disabled={busy}>
          Close gallery
        </button>
      </div>
      <p className="muted small">
        The same prompt and seed for each checkpoint (temperature {DEFAULT_SAMPLING_SETTINGS.temperature}, top-k{' '}
        {DEFAULT_SAMPLING_SETTINGS.topK}): what changes is what the model learned. Choose {GALLERY_MIN} to {GALLERY_MAX}{' '}
        checkpoints with the boxes in the table.
      </p>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void generate();
        }}
      >
        <SampleInputs
          prompt={prompt}
          seed={seed}
          maxTokens={maxTokens}
          onPrompt={setPrompt}
          onSeed={setSeed}
          onMaxTokens={setMaxTokens}
          disabled={busy}
        />
        <div className="toolbar ckpt-gallery-actions">
          {busy ? (
            <button
              type="button"
              className="button"
              onClick={() => {
                stop.current = true;
              }}
            >
              Stop after this one
            </button>
          ) : (
            <button type="submit" className="button button-primary" disabled={!countOk || s === null || m === null}>
              Generate {chosen.length} samples
            </button>
          )}
          {!countOk && (
            <span className="muted small" role="status">
              {chosen.length < GALLERY_MIN
                ? `Choose at least ${GALLERY_MIN} checkpoints (${chosen.length} chosen).`
                : `At most ${GALLERY_MAX} checkpoints (${chosen.length} chosen).`}
            </span>
          )}
          {running && (
            <span className="ckpt-gallery-progress" role="status" aria-live="polite">
              <span className="ckpt-spinner" aria-hidden="true" />
              {running.done} of {running.total} done · generating with {running.current}…
              <span className="progress ckpt-progress-inline" aria-hidden="true">
                <span style={{ width: `${((running.done / running.total) * 100).toFixed(0)}%` }} />
              </span>
            </span>
          )}
        </div>
      </form>
      {error !== null && <ErrorNote error={error} onRetry={generate} />}
      <div className="ckpt-gallery-cols" role="list" aria-label="Samples by checkpoint">
        {chosen.map((c) => {
          const r = results[ckptKey(c)];
          return (
            <article
              key={ckptKey(c)}
              className="ckpt-gallery-col"
              role="listitem"
              data-key={ckptKey(c)}
              aria-label={`Step ${c.step} of ${c.runName}`}
            >
              <header className="ckpt-gallery-head">
                <div>
                  <strong>step {c.step}</strong> <span className="muted small">{c.runName}</span>
                </div>
                <div className="muted small" title={valLossText(c).title}>
                  val loss {valLossText(c).text}
                </div>
                <button
                  type="button"
                  className="icon-button ckpt-gallery-remove"
                  onClick={() => onUnselect(ckptKey(c))}
                  disabled={busy}
                  aria-label={`Remove step ${c.step} of ${c.runName} from the gallery`}
                  title="Remove from the gallery"
                >
                  ×
                </button>
              </header>
              {r ? (
                r.error ? (
                  <ErrorNote error={StudioError.fromPlain(r.error)} />
                ) : (
                  <>
                    <SampleText prompt={usedPrompt} result={r} />
                    {r.reason && (
                      <p className="muted small" data-testid="sample-reason">
                        {r.tokens} tokens · {endReasonText(r.reason, r.contextTokens)}
                      </p>
                    )}
                  </>
                )
              ) : (
                <p className="muted small ckpt-gallery-wait">{busy ? 'Waiting…' : 'Not generated yet.'}</p>
              )}
            </article>
          );
        })}
      </div>
    </section>
  );
}
