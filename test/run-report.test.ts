import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli/main';
import { openStore } from '../src/node/store';
import { Studio } from '../src/node/studio';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'gpt2-report-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A run as a short training would leave it: 20 steps of metrics, a val loss, two samples and a log. */
function seed(home: string): string {
  const store = openStore(home);
  try {
    const run = store.createRun({
      name: 'report <test>',
      config: { dataset: 'builtin', max_steps: 20 },
      preset: 'nano',
    });
    const t0 = Date.now() - 60_000;
    for (let s = 0; s < 20; s++)
      store.recordStep(run.id, {
        step: s,
        metrics: {
          'train/loss': 11 - s / 4,
          'train/lr': 6e-4,
          'train/norm': s === 3 ? Number.NaN : 1 + 1 / (s + 1),
          'train/tok_per_sec': 4000,
          'train/dt_ms': 250,
        },
        wallTime: t0 + s * 250,
        tokensSeen: (s + 1) * 1024,
      });
    store.addSample(run.id, { step: 10, idx: 0, prompt: 'Hi', text: 'Hi <there>' });
    store.addSample(run.id, { step: 10, idx: 1, prompt: 'Hi', text: 'Hi & bye' });
    for (let i = 0; i < 1205; i++) store.addLog(run.id, 'info', `line ${i}`, t0 + i);
    return run.id;
  } finally {
    store.close();
  }
}

describe('runs-report and gpt2-studio report', () => {
  const home = path.join(tmp, 'home');
  const id = seed(home);

  it('answers the report of a run, with its whole log read a page at a time', async () => {
    const studio = new Studio({ home });
    try {
      const { html, fileName } = await studio.invoke('runs-report', { id });
      expect(fileName).toBe('report-test-report.html');
      expect(html).toContain('<h1>report &#60;test&#62;</h1>');
      expect(html).toContain('1,205 lines');
      expect(html).toContain('line 1204');
      expect((html.match(/<svg class="chart-svg"/g) ?? []).length).toBe(4);
      expect(html).toContain('<mark>Hi</mark> &#60;there&#62;');
      await expect(studio.invoke('runs-report', { id: 'run-20990101-000000-ffff' })).rejects.toThrow(/No run/);
    } finally {
      studio.close();
    }
  });

  it('writes the report to --out, or into a folder under its own name', async () => {
    const io = { out: (s: string) => void (out += s), err: (s: string) => void (err += s) };
    let out = '';
    let err = '';
    const file = path.join(tmp, 'r.html');
    expect(await main(['report', id, '--out', file, '--home', home], io)).toBe(0);
    expect(readFileSync(file, 'utf8')).toMatch(/^<!doctype html>/);
    expect(out).toContain(file);
    expect(await main(['report', id, '--out', tmp, '--home', home], io)).toBe(0);
    expect(readFileSync(path.join(tmp, 'report-test-report.html'), 'utf8')).toContain('</html>');
    expect(await main(['report', '--home', home], io)).toBe(2);
    expect(err).toContain('report needs a run id');
  });
});
