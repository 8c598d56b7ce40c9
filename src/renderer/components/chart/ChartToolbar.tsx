import { useId } from 'react';
import type { XKind } from './series';

/** The options of a set of charts: smoothing, the x axis (step, tokens, wall time), log y and outlier clipping. */
export function ChartToolbar(p: {
  smoothing: number;
  setSmoothing: (v: number) => void;
  logY: boolean;
  setLogY: (v: boolean) => void;
  xKind: XKind;
  setXKind: (v: XKind) => void;
  clip: boolean;
  setClip: (v: boolean) => void;
}) {
  const sid = useId();
  return (
    <div className="toolbar chart-toolbar">
      <label className="slider" htmlFor={sid}>
        <span>Smoothing</span>
        <input
          id={sid}
          type="range"
          min={0}
          max={0.99}
          step={0.01}
          value={p.smoothing}
          onChange={(e) => p.setSmoothing(Number(e.target.value))}
          aria-valuetext={p.smoothing.toFixed(2)}
        />
        <output className="mono">{p.smoothing.toFixed(2)}</output>
      </label>
      <div className="segmented" role="radiogroup" aria-label="X axis">
        {(
          [
            ['step', 'Step'],
            ['tokens', 'Tokens'],
            ['wall', 'Wall time'],
          ] as const
        ).map(([k, label]) => (
          <button
            key={k}
            type="button"
            role="radio"
            aria-checked={p.xKind === k}
            className="segmented-item"
            onClick={() => p.setXKind(k)}
          >
            {label}
          </button>
        ))}
      </div>
      <label className="check">
        <input type="checkbox" checked={p.logY} onChange={(e) => p.setLogY(e.target.checked)} />
        Log y
      </label>
      <label className="check" title="Scale the y axis to the 5th–95th percentile, as TensorBoard's 'ignore outliers'">
        <input type="checkbox" checked={p.clip} onChange={(e) => p.setClip(e.target.checked)} />
        Clip outliers
      </label>
    </div>
  );
}
