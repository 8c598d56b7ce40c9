/**
 * Preset times are measured, not guessed: a preset that states how long it takes holds the timing it was
 * measured with on its reference machine (`reference` in its JSON, see resources/presets/README.md), names that
 * machine where it states the time, and states what the planner computes from that timing (within 15%). A
 * preset without a reference states no time at all.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { estimateRunTime, type StepTiming } from '../src/shared/estimate';
import { paramCount, planShape } from '../src/shared/planner';
import { checkRunConfig } from '../src/shared/run-config';
import { repoRoot } from './shared';

const dir = path.join(repoRoot, 'resources', 'presets');

interface PresetFile {
  title: string;
  description: string;
  reference?: { machine: string; details: string; timing: StepTiming };
  config: unknown;
}

/** A duration as the descriptions write it ("about 1 h 45 min", "about 1 min 10 s", "about 40 s"), in seconds. */
function statedSeconds(text: string): number | null {
  const m = /\babout ((?:\d+(?:\.\d+)? h)?\s*(?:\d+ min)?\s*(?:\d+ s)?)(?=\W)/i.exec(text);
  if (!m || !m[1]!.trim()) return null;
  let s = 0;
  for (const [, n, unit] of m[1]!.matchAll(/(\d+(?:\.\d+)?) (h|min|s)\b/g))
    s += Number(n) * (unit === 'h' ? 3600 : unit === 'min' ? 60 : 1);
  return s;
}

/** Words that claim a duration, with or without a number. */
const TIME_CLAIM =
  /\b\d+(?:\.\d+)?\s*(?:s|sec|seconds?|min|minutes?|h|hrs?|hours?|days?)\b|\b(?:an? (?:few )?(?:minutes?|hours?|days?)|minutes|hours)\b/i;

const presets = fs
  .readdirSync(dir)
  .filter((f) => f.endsWith('.json'))
  .map((f) => ({
    name: path.basename(f, '.json'),
    file: JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as PresetFile,
  }));

describe('preset times', () => {
  it('reads the durations the descriptions write', () => {
    expect(statedSeconds('About 1 min 10 s on a 2-core x86 CPU')).toBe(70);
    expect(statedSeconds('About 1 h 45 min on a 2-core x86 CPU')).toBe(6300);
    expect(statedSeconds('about 40 s.')).toBe(40);
    expect(statedSeconds('takes about an hour')).toBeNull();
    expect(TIME_CLAIM.test('Micro (CPU, about an hour)')).toBe(true);
    expect(TIME_CLAIM.test('Nano (CPU, a few minutes)')).toBe(true);
    expect(TIME_CLAIM.test('HellaSwag every 250 steps, 19,073 steps of 524,288 tokens')).toBe(false);
  });

  it.each(presets)(
    "$name: a stated time is the planner's for its reference machine, and names that machine",
    ({ name, file }) => {
      const text = `${file.title} ${file.description}`;
      if (!file.reference) {
        expect(
          TIME_CLAIM.test(text),
          `${name} states a time (${JSON.stringify(text)}) but has no measured reference`,
        ).toBe(false);
        return;
      }
      // the title stays short: the time and its machine go in the description, together
      expect(TIME_CLAIM.test(file.title), `${name}: ${file.title}`).toBe(false);
      const r = checkRunConfig(file.config);
      expect(r.ok, name).toBe(true);
      if (!r.ok) return;
      const c = r.config;
      const t = file.reference.timing;
      // the timing is of this preset's micro-batch
      expect([t.batchSize, t.seqLen], name).toEqual([c.batch_size, c.seq_len]);
      expect(t.microStepMs).toBeGreaterThan(0);
      const planned = estimateRunTime(c, t, { params: paramCount(planShape(c)) }).seconds;
      const stated = statedSeconds(file.description);
      expect(stated, `${name}: no "about ..." time in ${JSON.stringify(file.description)}`).not.toBeNull();
      expect(
        Math.abs(stated! - planned) / planned,
        `${name}: states ${stated} s, the planner gives ${planned.toFixed(0)} s`,
      ).toBeLessThan(0.15);
      expect(file.description, name).toContain(`on ${file.reference.machine}`);
      expect(file.reference.details.length).toBeGreaterThan(20);
    },
  );
});
