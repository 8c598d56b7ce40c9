import { describe, expect, it } from 'vitest';
import { GPU_FIELDS, PROCESS_METRICS, formatSystem, formatSystemTick, gpuIndices, gpuMetric } from './system-metrics';

describe('system metrics', () => {
  it('names the worker process metrics and each GPU reading as the worker records them', () => {
    expect(PROCESS_METRICS.map((m) => m.metric)).toEqual([
      'sys/cpu_pct',
      'sys/rss_bytes',
      'sys/threads',
      'sys/disk_free_bytes',
    ]);
    expect(GPU_FIELDS.map((f) => gpuMetric(1, f.field))).toEqual([
      'sys/gpu1/util_pct',
      'sys/gpu1/mem_used_bytes',
      'sys/gpu1/power_w',
      'sys/gpu1/temp_c',
    ]);
  });

  it('finds the GPUs among the metric names, in order', () => {
    expect(
      gpuIndices(['train/loss', 'sys/cpu_pct', 'sys/gpu10/util_pct', 'sys/gpu2/temp_c', 'sys/gpu2/power_w']),
    ).toEqual([2, 10]);
    expect(gpuIndices(['sys/gpux/util_pct', 'sys/gpu'])).toEqual([]);
  });

  it('reads values for the legend and short labels for the axis', () => {
    expect(formatSystem('percent', 37)).toBe('37%');
    expect(formatSystem('percent', 2.25)).toBe('2.3%');
    expect(formatSystem('bytes', 1.536e9)).toBe('1.54 GB');
    expect(formatSystem('bytes', 647.4e6)).toBe('647.4 MB');
    expect(formatSystem('watts', 123.456)).toBe('123 W');
    expect(formatSystem('celsius', 55)).toBe('55 °C');
    expect(formatSystem('count', 14)).toBe('14');
    expect(formatSystem('bytes', Number.NaN)).toBe('—');
    expect(formatSystemTick('bytes', 500e6)).toBe('500MB');
    expect(formatSystemTick('bytes', 1e9)).toBe('1GB');
    expect(formatSystemTick('bytes', 76.6205e9)).toBe('76.62GB');
    expect(formatSystemTick('bytes', 0)).toBe('0B');
    // with the axis' ticks: a unit the spacing counts in whole numbers, so near ticks read apart and stay short
    const disk = [82.126e9, 82.128e9, 82.13e9];
    expect(disk.map((v) => formatSystemTick('bytes', v, disk))).toEqual(['82126MB', '82128MB', '82130MB']);
    const rss = [600e6, 625e6, 650e6, 675e6];
    expect(rss.map((v) => formatSystemTick('bytes', v, rss))).toEqual(['600MB', '625MB', '650MB', '675MB']);
    const gpu = [0, 50e9, 100e9, 150e9];
    expect(gpu.map((v) => formatSystemTick('bytes', v, gpu))).toEqual(['0GB', '50GB', '100GB', '150GB']);
    const half = [0, 2.5e9, 5e9, 7.5e9];
    expect(half.map((v) => formatSystemTick('bytes', v, half))).toEqual(['0GB', '2.5GB', '5GB', '7.5GB']);
    expect(formatSystemTick('percent', 25)).toBe('25%');
    expect(formatSystemTick('watts', 350)).toBe('350W');
    expect(formatSystemTick('celsius', 55)).toBe('55°');
  });
});
