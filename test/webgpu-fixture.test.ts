/**
 * native-webgpu against the PyTorch fixture (test/support/fixture-suite.ts), on whatever adapter Dawn finds here
 * (lavapipe in CI).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it, vi } from 'vitest';
import { main } from '../src/cli/main';
import { webgpuEngine } from '../src/node/webgpu/engine';
import { webgpuSkip } from './support/webgpu';
import { fixturePresent, fixtureSuite } from './support/fixture-suite';
import { hasFixture, sharedPath } from './shared';

// lavapipe compiles each kernel on its first dispatch: over a minute for some with a cold shader cache
vi.setConfig({ testTimeout: 300_000, hookTimeout: 300_000 });

const skip = await webgpuSkip();
fixtureSuite('native-webgpu engine against the PyTorch fixture (gpt2-tiny)', () => webgpuEngine(), skip);

const hellaswagPresent = fixturePresent && hasFixture('data/hellaswag_val_1000.jsonl');

describe.skipIf(skip !== undefined || !hellaswagPresent)('native-webgpu HellaSwag against the fixture', () => {
  // 12 of the fixture's 40 examples: lavapipe scores about one a second
  it("reproduces the first 12 examples' losses (1e-3) and predictions through the CLI", async () => {
    const expected = JSON.parse(readFileSync(sharedPath('fixtures/gpt2-tiny/expected.json'), 'utf8')).hellaswag as {
      examples: {
        ind: number;
        label: number;
        sum_loss: number[];
        avg_loss: number[];
        pred: number;
        pred_norm: number;
      }[];
      acc: number;
      acc_norm: number;
    };
    let out = '';
    const code = await main(
      [
        'hellaswag',
        '--engine',
        'native-webgpu',
        '--weights',
        sharedPath('fixtures/gpt2-tiny'),
        '--data',
        sharedPath('data/hellaswag_val_1000.jsonl'),
        '--limit',
        '12',
        '--json',
      ],
      { out: (s) => (out += s), err: () => {} },
    );
    expect(code).toBe(0);
    const r = JSON.parse(out);
    expect(r.examples).toHaveLength(12);
    r.examples.forEach((g: (typeof expected.examples)[number], i: number) => {
      const e = expected.examples[i]!;
      expect([g.ind, g.label, g.pred, g.pred_norm]).toEqual([e.ind, e.label, e.pred, e.pred_norm]);
      for (let k = 0; k < 4; k++) {
        expect(Math.abs(g.sum_loss[k]! - e.sum_loss[k]!)).toBeLessThan(1e-3);
        expect(Math.abs(g.avg_loss[k]! - e.avg_loss[k]!)).toBeLessThan(1e-3);
      }
    });
    const correct = expected.examples.slice(0, 12).filter((e) => e.pred_norm === e.label).length;
    expect(r.summary.accNorm).toBeCloseTo(correct / 12, 10);
  }, 300_000);
});
