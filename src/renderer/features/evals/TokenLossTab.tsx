/**
 * The token-loss view: a pasted text scored by a model (tokens-score), each token drawn with a colour for its loss
 * (how surprised the model was by it), the value on hover and on focus, the mean loss and perplexity, and the ten
 * most surprising tokens.
 */
import { useId, useMemo, useRef, useState, type KeyboardEvent } from 'react';
import type { ModelEntry } from '../../../shared/models';
import { ErrorNote } from '../../components/ErrorNote';
import { ModelPicker } from '../../components/ModelPicker';
import { fixed, int } from '../../format';
import { usePersistentState } from '../../usePersistentState';
import { useClient } from '../../useInvoke';
import {
  LOSS_CLASSES,
  lossClass,
  lossClassLabels,
  mostSurprising,
  scoredTokens,
  showPiece,
  type ScoredToken,
  type TokenScores,
} from './evals-info';

const SAMPLE = 'The quick brown fox jumps over the lazy dog. It was the best of times, it was the worst of times.';

export function TokenLossTab({
  modelKey,
  model,
  onModel,
}: {
  modelKey: string | undefined;
  model: ModelEntry | undefined;
  onModel: (m: ModelEntry | undefined) => void;
}) {
  const client = useClient();
  const [text, setText] = usePersistentState('evals.tokenLossText', '');
  const [result, setResult] = useState<{ r: TokenScores; model: string } | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const textId = useId();
  const pickerId = useId();

  const score = async () => {
    if (!model || text.trim() === '') return;
    setError(null);
    setBusy(true);
    try {
      const r = await client.invoke('tokens-score', { target: model.target, text });
      setResult({ r, model: model.label });
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  const why = !model ? 'Choose a model first.' : text.trim() === '' ? 'Type or paste a text first.' : null;

  return (
    <div className="stack">
      <section className="card" aria-labelledby="tl-title">
        <div className="card-header">
          <h2 id="tl-title">Token loss</h2>
        </div>
        <p className="muted small">
          How surprised the model is by each token of a text: the cross-entropy (in nats) of the token given everything
          before it. A text longer than the model&apos;s context is cut there.
        </p>
        <form
          className="tl-form"
          onSubmit={(e) => {
            e.preventDefault();
            void score();
          }}
        >
          <ModelPicker id={pickerId} value={modelKey} onChange={onModel} />
          <div className="field field-wide">
            <label htmlFor={textId}>Text</label>
            <textarea
              id={textId}
              rows={6}
              value={text}
              placeholder={SAMPLE}
              aria-describedby={`${textId}-hint`}
              onChange={(e) => setText(e.target.value)}
              onKeyDown={(e) => {
                if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
                  e.preventDefault();
                  void score();
                }
              }}
            />
            <span id={`${textId}-hint`} className="field-hint">
              Ctrl+Enter scores.
              {model
                ? ` The first ${int(model.blockSize + 1)} tokens are scored (the model's context is ${int(model.blockSize)}).`
                : ''}{' '}
              {text === '' && (
                <button type="button" className="evals-link-button" onClick={() => setText(SAMPLE)}>
                  Use a sample sentence
                </button>
              )}
            </span>
          </div>
          <div className="hs-run-actions">
            <button type="submit" className="button button-primary" disabled={why !== null || busy}>
              {busy ? 'Scoring…' : 'Score'}
            </button>
            {why && <span className="muted small">{why}</span>}
          </div>
        </form>
        {error != null && <ErrorNote error={error} />}
      </section>
      {result && <TokenView key={result.r.tokens.join(',') + result.model} r={result.r} modelLabel={result.model} />}
    </div>
  );
}

function tokenText(t: ScoredToken): string {
  return t.loss === null
    ? `token ${t.pos + 1} ${showPiece(t.piece)}: the first token, not predicted`
    : `token ${t.pos + 1} ${showPiece(t.piece)}: loss ${fixed(t.loss, 3)} nats, probability ${probability(t.loss)}`;
}

function probability(loss: number): string {
  const p = Math.exp(-loss);
  return p >= 0.01 ? `${(p * 100).toFixed(1)}%` : p.toExponential(1);
}

function TokenView({ r, modelLabel }: { r: TokenScores; modelLabel: string }) {
  const tokens = useMemo(() => scoredTokens(r), [r]);
  const top = useMemo(() => mostSurprising(tokens, 10), [tokens]);
  const [active, setActive] = useState(1);
  const refs = useRef<Array<HTMLSpanElement | null>>([]);
  const focused = tokens[active];
  const ppl = Math.exp(r.meanLoss);

  const move = (to: number) => {
    const i = Math.max(0, Math.min(tokens.length - 1, to));
    setActive(i);
    refs.current[i]?.focus();
  };

  const onKeyDown = (e: KeyboardEvent<HTMLDivElement>) => {
    const keys: Record<string, number> = {
      ArrowRight: active + 1,
      ArrowDown: active + 1,
      ArrowLeft: active - 1,
      ArrowUp: active - 1,
      Home: 0,
      End: tokens.length - 1,
    };
    if (e.key in keys) {
      e.preventDefault();
      move(keys[e.key]!);
    }
  };

  return (
    <section className="card" aria-labelledby="tl-result-title" data-testid="token-loss-result">
      <div className="card-header">
        <h2 id="tl-result-title">Scored by {modelLabel}</h2>
      </div>
      <div className="stat-strip">
        <div className="stat">
          <span className="stat-label">Mean loss</span>
          <span className="stat-value" data-testid="mean-loss">
            {fixed(r.meanLoss, 4)} <span className="muted">nats</span>
          </span>
        </div>
        <div className="stat">
          <span className="stat-label">Perplexity</span>
          <span className="stat-value" data-testid="perplexity">
            {ppl >= 1000 ? int(ppl) : fixed(ppl, 2)}
          </span>
        </div>
        <div className="stat">
          <span className="stat-label">Tokens scored</span>
          <span className="stat-value">
            {int(r.losses.length)} <span className="muted">of {int(r.tokens.length)}</span>
          </span>
        </div>
      </div>
      {r.truncated && (
        <p className="tl-truncated small" role="note" data-testid="token-loss-truncated">
          The text has {int(r.totalTokens)} tokens; the model&apos;s context is {int(r.contextLength)}, so only the
          first {int(r.tokens.length)} were scored.
        </p>
      )}

      <div className="tl-legend" aria-label="Loss colour scale (nats)">
        <span className="muted small">Loss (nats):</span>
        {lossClassLabels().map((l, i) => (
          <span key={l} className="tl-legend-item small">
            <span className={`tl-swatch tl-c${i}`} aria-hidden="true" />
            {l}
          </span>
        ))}
        <span className="tl-legend-item small">
          <span className="tl-swatch tl-first" aria-hidden="true" />
          not predicted
        </span>
      </div>

      <div
        className="tl-tokens"
        role="group"
        aria-label="Tokens coloured by loss: arrow keys move between tokens"
        aria-describedby="tl-readout"
        onKeyDown={onKeyDown}
        data-testid="token-view"
      >
        {tokens.map((t) => {
          const cls = t.loss === null ? 'tl-first' : `tl-c${lossClass(t.loss)}`;
          const label = tokenText(t);
          const parts = t.piece.split('\n');
          return (
            <span
              key={t.pos}
              ref={(el) => {
                refs.current[t.pos] = el;
              }}
              className={`tl-token ${cls}${t.pos === active ? ' is-active' : ''}`}
              tabIndex={t.pos === active ? 0 : -1}
              title={label}
              aria-label={label}
              role="img"
              data-loss={t.loss ?? ''}
              onFocus={() => setActive(t.pos)}
              onMouseEnter={() => setActive(t.pos)}
            >
              {parts.map((p, i) => (
                <span key={i}>
                  {i > 0 && (
                    <>
                      <span className="tl-nl" aria-hidden="true">
                        ↵
                      </span>
                      <br />
                    </>
                  )}
                  {p}
                </span>
              ))}
            </span>
          );
        })}
      </div>
      <p id="tl-readout" className="tl-readout small" aria-live="polite" data-testid="token-readout">
        {focused ? tokenText(focused) : ''}
      </p>

      <h3 className="tl-top-title">The 10 most surprising tokens</h3>
      <table className="table table-dense tl-top" aria-label="Most surprising tokens">
        <thead>
          <tr>
            <th scope="col" className="num">
              #
            </th>
            <th scope="col">Token</th>
            <th scope="col" className="num">
              Position
            </th>
            <th scope="col" className="num">
              Loss (nats)
            </th>
            <th scope="col" className="num">
              Probability
            </th>
          </tr>
        </thead>
        <tbody>
          {top.map((t, i) => (
            <tr key={t.pos}>
              <td className="num">{i + 1}</td>
              <th scope="row">
                <button
                  type="button"
                  className="evals-link-button tl-piece"
                  onClick={() => move(t.pos)}
                  aria-label={`Show token ${t.pos + 1} ${showPiece(t.piece)} in the text`}
                >
                  <span className={`tl-swatch tl-c${lossClass(t.loss)}`} aria-hidden="true" />
                  {showPiece(t.piece)}
                </button>
              </th>
              <td className="num">{t.pos + 1}</td>
              <td className="num">{fixed(t.loss, 3)}</td>
              <td className="num">{probability(t.loss)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <p className="muted small">
        Colour classes: {LOSS_CLASSES.length + 1}, from under {LOSS_CLASSES[0]} nat (the model expected the token) to{' '}
        {LOSS_CLASSES[LOSS_CLASSES.length - 1]} nats and more (a uniform guess over GPT-2&apos;s 50,257 tokens is 10.8).
      </p>
    </section>
  );
}
