import { describe, expect, it } from 'vitest';
import type { LogEntry, MetricSeries, Run, Sample } from '../../shared/records';
import { escapeHtml, niceTicks, reportCharts, runReport, smooth, svgChart, thin, type ReportInput } from './report';

const EVIL = `<script>alert("x")</script> & 'quotes'`;

function series(n: number, f: (s: number) => number, every = 1): MetricSeries {
  const out: MetricSeries = { steps: [], values: [], wallTimes: [], tokensSeen: [] };
  for (let s = 0; s < n; s += every) {
    out.steps.push(s);
    out.values.push(f(s));
    out.wallTimes.push(1_700_000_000_000 + s * 100);
    out.tokensSeen.push((s + 1) * 1024);
  }
  return out;
}

function input(over: Partial<Run> = {}, hellaswag = true): ReportInput {
  const run: Run = {
    id: 'run-20250102-130405-ab12',
    name: `nano ${EVIL}`,
    status: 'done',
    preset: 'nano',
    config: { model: { preset: 'nano' }, dataset: 'builtin', max_steps: 60, note: '</pre><b>x</b>' },
    engine: 'native-cpu',
    createdAt: 1_700_000_000_000,
    startedAt: 1_700_000_001_000,
    endedAt: 1_700_000_061_000,
    stepsDone: 60,
    tokensSeen: 61_440,
    bestValLoss: 6.1234,
    lastCheckpointStep: 60,
    error: null,
    tags: ['a<b'],
    notes: 'notes <i>here</i>',
    pid: null,
    attempts: [],
    nodes: [],
    ...over,
  };
  const metrics: Record<string, MetricSeries> = {
    'train/loss': series(60, (s) => 4 + 7 * Math.exp(-s / 10)),
    'train/lr': series(60, (s) => 6e-4 * Math.min(1, (s + 1) / 5)),
    'train/norm': series(60, (s) => 1 + Math.exp(-s / 20)),
    'train/tok_per_sec': series(60, (s) => 4000 + 10 * s),
    'train/dt_ms': series(60, () => 250),
    'val/loss': series(60, (s) => 4.2 + 7 * Math.exp(-s / 10), 10),
  };
  if (hellaswag) metrics['hellaswag/acc_norm'] = series(60, (s) => 0.25 + s / 2000, 20);
  const logs: LogEntry[] = [
    { runId: run.id, seq: 1, level: 'info', message: 'starting', time: 1_700_000_001_000 },
    { runId: run.id, seq: 2, level: 'warn', message: `odd ${EVIL}`, time: 1_700_000_002_000 },
  ];
  const samples: Sample[] = [0, 1].map((idx) => ({
    runId: run.id,
    step: 50,
    idx,
    prompt: 'Once',
    text: `Once upon ${idx} <time> & more<|endoftext|>Next`,
    createdAt: 1_700_000_050_000,
  }));
  return { run, metrics, logs, samples, generatedAt: 1_700_000_100_000 };
}

describe('the run report', () => {
  it('escapes every run text: name, notes, tags, config, samples and log', () => {
    const { html, fileName } = runReport(input());
    expect(html).not.toContain('<script');
    expect(html).not.toContain('alert("x")');
    expect(html).toContain('&#60;script&#62;alert(&#34;x&#34;)&#60;/script&#62; &#38; &#39;quotes&#39;');
    expect(html).not.toContain('<i>here</i>');
    expect(html).not.toContain('</pre><b>x</b>');
    expect(html).not.toContain('a<b');
    expect(html).toContain('<mark>Once</mark> upon 0 &#60;time&#62; &#38; more');
    expect(fileName).toBe('nano-script-alert-x-script-quotes-report.html');
  });

  it('draws one SVG per chart, each with a path, and HellaSwag only when measured', () => {
    const { html } = runReport(input());
    const figures = html.match(/<figure class="chart" data-chart="[\w-]+">/g) ?? [];
    expect(figures.map((f) => /data-chart="([\w-]+)"/.exec(f)![1])).toEqual([
      'loss',
      'lr',
      'norm',
      'throughput',
      'hellaswag',
    ]);
    const svgs = html.match(/<svg[\s\S]*?<\/svg>/g) ?? [];
    expect(svgs.length).toBe(5);
    for (const svg of svgs) {
      expect(svg).toMatch(/<path class="line[^"]*" d="M[\d.]+,[\d.]+(L[\d.]+,[\d.]+)+"/);
      // axes with tick labels
      expect((svg.match(/<text class="tick"/g) ?? []).length).toBeGreaterThanOrEqual(4);
    }
    // the HellaSwag axis and facts in its one form: percent with one decimal
    expect(svgs[4]).toMatch(/>\d+\.\d%<\/text>/);
    expect(html).toContain('<dt>HellaSwag</dt><dd>27.0%</dd>');
    expect(runReport(input({}, false)).html).not.toContain('data-chart="hellaswag"');
  });

  it('holds the facts, the samples, the config and the log', () => {
    const { html } = runReport(input());
    expect(html).toContain('<dt>Steps done</dt><dd>60 of 60 steps</dd>');
    expect(html).toContain('<dt>Best val loss</dt><dd>6.1234</dd>');
    expect(html).toContain('<dt>Train time</dt><dd>15s</dd>');
    expect(html).toContain('data-status="done"');
    expect(html).toContain('<h3>Step 50</h3>');
    expect((html.match(/<li class="sample">/g) ?? []).length).toBe(2);
    expect(html).toContain('<mark>Once</mark>');
    expect(html).toContain('<span class="eot"');
    expect(html).toContain('&#34;max_steps&#34;: 60');
    expect(html).toContain('starting');
    expect(html).toContain('<b>WARN </b>');
  });

  it('reaches for nothing outside itself: no scripts, links, URLs or imports', () => {
    const { html } = runReport(input());
    expect(html).not.toMatch(/https?:|\/\/[\w.-]+\//);
    expect(html).not.toMatch(/<script|<link|<img|<iframe|\bsrc=|\bhref=|url\(|@import/i);
    expect(html).not.toMatch(/\son\w+=/i);
  });

  it('stands up without metrics, samples or logs, and shows the error of a failed run', () => {
    const i = input({ status: 'failed', error: { code: 'INTERNAL', message: 'it <broke>', hint: 'retry' } });
    const { html } = runReport({ ...i, metrics: {}, logs: [], samples: [] });
    expect(html).toContain('Nothing recorded');
    expect(html).toContain('No samples were recorded.');
    expect(html).toContain('it &#60;broke&#62;');
    expect(html).not.toContain('data-chart="hellaswag"');
  });

  it('breaks a line at a NaN and draws a lone point as a dot', () => {
    const lone = svgChart({ id: 'x', title: 'X', lines: [{ label: 'a', color: 1, points: [[3, 1]] }] });
    expect(lone).toContain('<circle');
    const gap = svgChart({
      id: 'x',
      title: 'X',
      lines: [
        {
          label: 'a',
          color: 1,
          points: [
            [0, 1],
            [1, 2],
            [2, null],
            [3, 1],
            [4, 2],
          ],
        },
      ],
    });
    expect((/ d="([^"]+)"/.exec(gap)![1]!.match(/M/g) ?? []).length).toBe(2);
  });
});

describe('chart pieces', () => {
  it('ticks are round numbers inside the range', () => {
    expect(niceTicks(0, 10, 5).ticks).toEqual([0, 2, 4, 6, 8, 10]);
    expect(niceTicks(0.1, 0.7, 6).ticks).toEqual([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]);
    expect(niceTicks(0, 3, 6, 1).ticks).toEqual([0, 1, 2, 3]);
    expect(niceTicks(5, 5).ticks).toEqual([5]);
  });

  it('thins a long series to about the drawn width, keeping its extremes', () => {
    const pts: [number, number][] = Array.from({ length: 10_000 }, (_, i) => [i, i === 5_000 ? 99 : 1]);
    const t = thin(pts, 100);
    expect(t.length).toBeLessThanOrEqual(400);
    expect(t.some((p) => p[1] === 99)).toBe(true);
  });

  it('smooths with the debiased moving average (its first value is the first point)', () => {
    const s = smooth(
      [
        [0, 2],
        [1, null],
        [2, 4],
      ],
      0.6,
    );
    expect(s[0]![1]).toBeCloseTo(2);
    expect(s[1]![1]).toBeNull();
    expect(s[2]![1]).toBeCloseTo((0.6 * 0.4 * 2 + 0.4 * 4) / (1 - 0.36));
  });

  it('escapes the five HTML characters', () => {
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe('&#60;a href=&#34;x&#34;&#62;&#39;&#38;&#39;&#60;/a&#62;');
  });

  it('charts the metrics it has', () => {
    expect(reportCharts({}).map((c) => c.id)).toEqual(['loss', 'lr', 'norm', 'throughput']);
  });
});

describe('flat lines', () => {
  it('draws a constant that smoothing left wobbling in its last bits, around its value', () => {
    const points: [number, number][] = Array.from({ length: 20 }, (_, i) => [i, 4000]);
    const svg = svgChart({ id: 't', title: 'T', lines: [{ label: 's', color: 1, points: smooth(points, 0.6) }] });
    expect(svg).toContain('<path');
    expect((svg.match(/<text class="tick"/g) ?? []).length).toBeLessThan(40);
    expect(niceTicks(3999.9999999999995, 4000.0000000000005, 5).ticks.length).toBeLessThanOrEqual(24);
  });
});
