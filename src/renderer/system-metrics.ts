/**
 * The system metrics a run's worker records every few seconds (sys/cpu_pct, sys/rss_bytes, sys/gpu0/util_pct, ...):
 * which exist, their titles and units, and how their values read. The Run page and the Compare page chart them
 * under their own "System" heading.
 */
import { compact } from './format';

export type SystemFormat = 'percent' | 'bytes' | 'count' | 'watts' | 'celsius';

export interface SystemMetric {
  /** the chart's id (its test id is `chart-<id>`) */
  id: string;
  /** the metric's name in the store */
  metric: string;
  title: string;
  unit?: string;
  format: SystemFormat;
}

/** The worker process and the workspace's disk. */
export const PROCESS_METRICS: readonly SystemMetric[] = [
  { id: 'sys-cpu', metric: 'sys/cpu_pct', title: 'CPU', unit: '% of one core, worker process', format: 'percent' },
  { id: 'sys-memory', metric: 'sys/rss_bytes', title: 'Memory', unit: 'RSS, worker process', format: 'bytes' },
  { id: 'sys-threads', metric: 'sys/threads', title: 'Threads', unit: 'worker process', format: 'count' },
  { id: 'sys-disk', metric: 'sys/disk_free_bytes', title: 'Disk free', unit: 'workspace', format: 'bytes' },
];

/** Each GPU's readings, as sys/gpu<i>/<field>. */
export const GPU_FIELDS: readonly { field: string; id: string; title: string; unit?: string; format: SystemFormat }[] =
  [
    { field: 'util_pct', id: 'util', title: 'GPU utilisation', unit: '%', format: 'percent' },
    { field: 'mem_used_bytes', id: 'memory', title: 'GPU memory', unit: 'used', format: 'bytes' },
    { field: 'power_w', id: 'power', title: 'GPU power', unit: 'W', format: 'watts' },
    { field: 'temp_c', id: 'temp', title: 'GPU temperature', unit: '°C', format: 'celsius' },
  ];

/** The metric name of one GPU's reading: gpuMetric(0, 'util_pct') = 'sys/gpu0/util_pct'. */
export const gpuMetric = (gpu: number, field: string): string => `sys/gpu${gpu}/${field}`;

/** The GPUs that have any reading among these metric names, in order. */
export function gpuIndices(names: Iterable<string>): number[] {
  const found = new Set<number>();
  for (const n of names) {
    const m = /^sys\/gpu(\d+)\//.exec(n);
    if (m) found.add(Number(m[1]));
  }
  return [...found].sort((a, b) => a - b);
}

/** A value of a system metric for a legend: "37%", "1.21 GB", "12", "123 W", "55 °C" (bytes in the axis' decimal units). */
export function formatSystem(format: SystemFormat, v: number): string {
  if (!Number.isFinite(v)) return '—';
  switch (format) {
    case 'percent':
      return `${v.toFixed(v < 10 ? 1 : 0)}%`;
    case 'bytes': {
      const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
      let i = 0;
      let x = v;
      while (Math.abs(x) >= 1000 && i < units.length - 1) {
        x /= 1000;
        i++;
      }
      return `${i === 0 ? x : Number(x.toPrecision(x >= 100 ? 4 : 3))} ${units[i]}`;
    }
    case 'count':
      return compact(v);
    case 'watts':
      return `${v.toFixed(v < 10 ? 1 : 0)} W`;
    case 'celsius':
      return `${v.toFixed(0)} °C`;
  }
}

/**
 * A system metric's axis label, short enough for the chart's y axis: "25%", "600MB", "82127MB", "14", "120W", "55°".
 * Bytes count in decimal units (MB is 10^6), because the axis puts its ticks at round decimal values: in binary units
 * a tick at 500,000,000 would read "476.8M". The unit is the largest one the ticks' spacing (`splits`) still counts
 * in whole numbers, so that ticks a few megabytes apart on a disk of tens of gigabytes read apart ("82127MB",
 * "82129MB") and stay short enough for the axis.
 */
export function formatSystemTick(format: SystemFormat, v: number, splits: readonly number[] = []): string {
  if (!Number.isFinite(v)) return '';
  const digits = (x: number) => (Math.abs(x) >= 100 || Number.isInteger(x) ? 0 : Math.abs(x) >= 10 ? 1 : 2);
  const num = (x: number) => String(Number(x.toFixed(digits(x))));
  switch (format) {
    case 'percent':
      return `${num(v)}%`;
    case 'bytes': {
      const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
      const finite = splits.filter((x) => Number.isFinite(x));
      const step = finite.length > 1 ? Math.abs(finite[1]! - finite[0]!) : 0;
      const top = Math.max(Math.abs(v), ...finite.map(Math.abs));
      // the largest unit under the top value, then smaller while the ticks' spacing is under one of it
      let i = 0;
      while (i < units.length - 1 && top >= 1000 ** (i + 1)) i++;
      while (i > 0 && step > 0 && step < 1000 ** i) i--;
      const x = v / 1000 ** i;
      if (step <= 0) return `${Number(x.toPrecision(4))}${units[i]}`;
      // whole units, or the decimals a step like 2.5 needs
      const q = step / 1000 ** i;
      let d = 0;
      while (d < 3 && Math.abs(q * 10 ** d - Math.round(q * 10 ** d)) > 1e-6 * 10 ** d) d++;
      return `${Number(x.toFixed(d))}${units[i]}`;
    }
    case 'count':
      return compact(v);
    case 'watts':
      return `${num(v)}W`;
    case 'celsius':
      return `${num(v)}°`;
  }
}
