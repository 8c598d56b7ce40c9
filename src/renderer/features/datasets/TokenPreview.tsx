/**
 * A dataset preview drawn token by token: alternating bands show where each token starts and ends, and the token
 * under the pointer (or moved to with the arrow keys) shows its id and text in the line below.
 */
import { useMemo, useState, type KeyboardEvent, type MouseEvent } from 'react';
import { int } from '../../format';

interface Band {
  /** index of the band's first token in the preview */
  first: number;
  ids: number[];
  text: string;
}

/**
 * Tokens as bands: a token that adds no text of its own (the first bytes of a character that the next token
 * completes) shares the band of the token that completes it, so every band can be seen and pointed at.
 */
export function tokenBands(ids: readonly number[], pieces: readonly string[]): Band[] {
  const bands: Band[] = [];
  let pending: number[] = [];
  let first = 0;
  for (let i = 0; i < ids.length; i++) {
    if (pending.length === 0) first = i;
    pending.push(ids[i]!);
    const piece = pieces[i] ?? '';
    if (piece !== '' || i === ids.length - 1) {
      bands.push({ first, ids: pending, text: piece });
      pending = [];
    }
  }
  return bands;
}

/** A token's text with its invisible characters named, in quotes. */
const shown = (text: string): string => `“${text.replace(/\n/g, '↵').replace(/\t/g, '⇥').replace(/ /g, '␣')}”`;

function describe(b: Band): string {
  const at =
    b.ids.length === 1 ? `token ${int(b.first + 1)}` : `tokens ${int(b.first + 1)}–${int(b.first + b.ids.length)}`;
  const ids = b.ids.length === 1 ? `id ${b.ids[0]}` : `ids ${b.ids.join(' + ')}`;
  return `${at}: ${ids} ${shown(b.text)}`;
}

export function TokenPreview({ ids, pieces }: { ids: readonly number[]; pieces: readonly string[] }) {
  const bands = useMemo(() => tokenBands(ids, pieces), [ids, pieces]);
  const [active, setActive] = useState<number | null>(null);
  const current = active === null ? undefined : bands[active];

  const bandAt = (target: EventTarget): number | null => {
    const el = target instanceof Element ? target.closest<HTMLElement>('[data-band]') : null;
    return el ? Number(el.dataset.band) : null;
  };
  const onKeyDown = (e: KeyboardEvent) => {
    const step = e.key === 'ArrowRight' ? 1 : e.key === 'ArrowLeft' ? -1 : 0;
    if (step === 0 || bands.length === 0) return;
    e.preventDefault();
    const next = active === null ? 0 : Math.max(0, Math.min(bands.length - 1, active + step));
    setActive(next);
    document.getElementById(`ds-band-${next}`)?.scrollIntoView({ block: 'nearest' });
  };

  return (
    <>
      <pre
        className="ds-preview-text ds-tokens"
        data-testid="preview-text"
        tabIndex={0}
        aria-label="The preview, token by token: the left and right arrow keys move between tokens"
        aria-describedby="ds-token-readout"
        onMouseOver={(e: MouseEvent) => {
          const b = bandAt(e.target);
          if (b !== null) setActive(b);
        }}
        onKeyDown={onKeyDown}
      >
        {bands.map((b, i) => (
          <span
            key={b.first}
            id={`ds-band-${i}`}
            className={`ds-tok ds-tok-${i % 2}${i === active ? ' is-active' : ''}`}
            data-band={i}
            data-token-id={b.ids.join(' ')}
            title={describe(b)}
          >
            {b.text}
          </span>
        ))}
      </pre>
      <p id="ds-token-readout" className="ds-token-readout small" aria-live="polite" data-testid="token-readout">
        {current ? (
          describe(current)
        ) : (
          <span className="muted">Point at a token (or focus the text and use the arrow keys) to see its id.</span>
        )}
      </p>
    </>
  );
}
