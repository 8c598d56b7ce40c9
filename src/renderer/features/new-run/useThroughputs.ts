import { useEffect, useState } from 'react';
import { planShape, shapeKey, type ThroughputSource } from '../../../shared/planner';
import { checkRunConfig } from '../../../shared/run-config';
import { useClient } from '../../useInvoke';

/**
 * The measured throughput of this machine per model shape: the latest tok/s of the newest finished (done) run of
 * each shape. Keyed by shapeKey.
 */
export function useThroughputs(): Record<string, ThroughputSource> {
  const client = useClient();
  const [map, setMap] = useState<Record<string, ThroughputSource>>({});
  useEffect(() => {
    let live = true;
    (async () => {
      const done = await client.invoke('runs-list', { status: 'done', limit: 200 });
      const seen = new Set<string>();
      done.sort((a, b) => (b.endedAt ?? 0) - (a.endedAt ?? 0));
      for (const run of done) {
        const r = checkRunConfig(run.config);
        if (!r.ok) continue;
        const key = shapeKey(planShape(r.config));
        if (seen.has(key)) continue;
        const m = await client.invoke('runs-metrics', { id: run.id, names: ['train/tok_per_sec'], sinceStep: Math.max(-1, run.stepsDone - 3) });
        const vals = (m['train/tok_per_sec']?.values ?? []).filter((v): v is number => v !== null && Number.isFinite(v) && v > 0);
        if (!vals.length) continue;
        seen.add(key);
        const src: ThroughputSource = { tokensPerSec: vals[vals.length - 1], runId: run.id, runName: run.name };
        if (live) setMap((x) => ({ ...x, [key]: src }));
      }
    })().catch(() => undefined);
    return () => {
      live = false;
    };
  }, [client]);
  return map;
}
