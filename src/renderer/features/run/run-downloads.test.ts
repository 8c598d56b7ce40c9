import { describe, expect, it } from 'vitest';
import { runFileName, runFileStem } from '../../../shared/run-files';
import { configJson, loadLog, logText, runMetricsCsv, samplesJsonl } from './run-downloads';

describe('the run downloads', () => {
  it('writes the log one line per record, with its UTC time and level', () => {
    const text = logText([
      { time: Date.UTC(2025, 0, 2, 13, 4, 5, 120), level: 'info', message: 'starting' },
      { time: Date.UTC(2025, 0, 2, 13, 4, 6), level: 'warn', message: 'two\nlines' },
    ]);
    expect(text).toBe('2025-01-02T13:04:05.120Z INFO  starting\n2025-01-02T13:04:06.000Z WARN  two\\nlines\n');
    expect(logText([])).toBe('');
  });

  it('writes the metrics in the Compare CSV format, NaN as an empty field', () => {
    const csv = runMetricsCsv(
      { id: 'run-1', name: 'a, "b"' },
      {
        'val/loss': { steps: [10], values: [5.5], wallTimes: [1_700_000_000_500], tokensSeen: [2048] },
        'train/loss': {
          steps: [0, 1],
          values: [11, null],
          wallTimes: [1_700_000_000_000, 1_700_000_000_250],
          tokensSeen: [1024, 2048],
        },
      },
    ).split('\r\n');
    expect(csv).toEqual([
      'run_id,run_name,metric,step,value,wall_time,tokens_seen',
      'run-1,"a, ""b""",train/loss,0,11,1700000000,1024',
      'run-1,"a, ""b""",train/loss,1,,1700000000.25,2048',
      'run-1,"a, ""b""",val/loss,10,5.5,1700000000.5,2048',
      '',
    ]);
  });

  it('writes one JSON object per sample, by step and index', () => {
    const out = samplesJsonl([
      { step: 20, idx: 0, prompt: 'Hi', text: 'Hi "there"\nnext' },
      { step: 10, idx: 1, prompt: 'Hi', text: 'Hi b' },
      { step: 10, idx: 0, prompt: 'Hi', text: 'Hi a' },
    ]);
    const lines = out.trimEnd().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines.map((l) => JSON.parse(l) as unknown)).toEqual([
      { step: 10, idx: 0, prompt: 'Hi', text: 'Hi a' },
      { step: 10, idx: 1, prompt: 'Hi', text: 'Hi b' },
      { step: 20, idx: 0, prompt: 'Hi', text: 'Hi "there"\nnext' },
    ]);
  });

  it('writes the config as indented JSON that reads back the same', () => {
    const config = { model: { preset: 'nano' }, max_steps: 60 };
    expect(JSON.parse(configJson(config))).toEqual(config);
    expect(configJson(config)).toContain('\n  "max_steps": 60\n');
  });

  it('reads the whole log a page at a time', async () => {
    const all = Array.from({ length: 2500 }, (_, i) => ({ seq: i + 1, time: i, level: 'info', message: `m${i}` }));
    const client = {
      invoke: async (_name: string, arg: { afterSeq: number }) =>
        all.filter((l) => l.seq > arg.afterSeq).slice(0, 1000),
    } as unknown as Parameters<typeof loadLog>[0];
    const log = await loadLog(client, 'run-1');
    expect(log).toHaveLength(2500);
    expect(log.at(-1)!.message).toBe('m2499');
  });

  it('names the files after the run', () => {
    const run = { id: 'run-20250102-130405-ab12', name: 'e2e nano / lr 6e-4' };
    expect(runFileStem(run)).toBe('e2e-nano-lr-6e-4');
    expect(runFileName(run, 'log')).toBe('e2e-nano-lr-6e-4.log');
    expect(runFileName(run, 'metrics')).toBe('e2e-nano-lr-6e-4-metrics.csv');
    expect(runFileName(run, 'config')).toBe('e2e-nano-lr-6e-4-config.json');
    expect(runFileName(run, 'samples')).toBe('e2e-nano-lr-6e-4-samples.jsonl');
    expect(runFileName(run, 'report')).toBe('e2e-nano-lr-6e-4-report.html');
    expect(runFileStem({ id: 'run-x', name: '///' })).toBe('run-x');
  });
});
