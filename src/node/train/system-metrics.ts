/**
 * A run's system metrics, sampled by its training worker every few seconds: the worker process's CPU use, resident
 * memory and thread count, the free space of the workspace's disk, and each GPU's utilisation, memory, power and
 * temperature as NVML reports them (through the native addon, which loads the driver's library at run time).
 * Recorded beside the training metrics under `sys/...` names (see SYSTEM_METRIC in src/node/runs/metrics-table.ts).
 */
import fs from 'node:fs';
import { loadNativeAddon } from '../native/addon';

/** How often the worker samples, unless GPT2_STUDIO_SYSTEM_METRICS_MS says otherwise (0 turns sampling off). */
export const SYSTEM_SAMPLE_MS = 3000;

/** The library NVML is loaded from, unless GPT2_STUDIO_NVML_LIB names another. */
export const NVML_LIBRARY = 'libnvidia-ml.so.1';

/** One GPU as the addon's nvmlSample reports it; a reading the device does not support is null. */
export interface GpuReading {
  index: number;
  name: string | null;
  utilPct: number | null;
  memUsedBytes: number | null;
  memTotalBytes: number | null;
  powerW: number | null;
  tempC: number | null;
}

/** Reads every GPU; throws with the reason when it cannot (no driver, no library). */
export type GpuSource = () => GpuReading[];

/** Where GPU readings come from: NVML through the native addon, or why that is not available. */
export function nvmlSource(env: NodeJS.ProcessEnv = process.env): { read: GpuSource } | { reason: string } {
  const load = loadNativeAddon(env);
  if (!load.ok) return { reason: `the native addon is not available (${load.reason})` };
  const sample = (load.addon as { nvmlSample?: (path: string) => GpuReading[] }).nvmlSample;
  if (typeof sample !== 'function')
    return { reason: `the native addon ${load.file} predates NVML support (rebuild it with "npm run build:native")` };
  const lib = env.GPT2_STUDIO_NVML_LIB || NVML_LIBRARY;
  return { read: () => sample(lib) };
}

/** The interval between samples, from GPT2_STUDIO_SYSTEM_METRICS_MS (0: none). */
export function sampleInterval(env: NodeJS.ProcessEnv = process.env): number {
  const v = env.GPT2_STUDIO_SYSTEM_METRICS_MS;
  if (v === undefined || v === '') return SYSTEM_SAMPLE_MS;
  const n = Number(v);
  return Number.isFinite(n) && n >= 0 ? n : SYSTEM_SAMPLE_MS;
}

/** The process's thread count from /proc/self/status (Linux); null where there is no such file. */
export function threadCount(statusFile = '/proc/self/status'): number | null {
  try {
    const m = /^Threads:\s+(\d+)/m.exec(fs.readFileSync(statusFile, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** Free bytes for an unprivileged user on the file system holding `dir`; null when it cannot be read. */
export function diskFree(dir: string): number | null {
  try {
    const s = fs.statfsSync(dir);
    return s.bavail * s.bsize;
  } catch {
    return null;
  }
}

export interface SamplerOptions {
  /** the folder whose disk is measured (the workspace) */
  dir: string;
  /** a line for the run's log: said once, when GPU readings are not available */
  log: (level: 'info' | 'warn', message: string) => void;
  /** GPU readings; by default NVML through the native addon */
  gpus?: () => { read: GpuSource } | { reason: string };
}

/**
 * Takes samples: each is the metric name -> value of that moment. CPU use is the process's user and system CPU time
 * since the previous sample over the wall time between them, in percent of one core (so 400 is four busy cores);
 * the first sample measures from the start of the process.
 */
export class SystemSampler {
  private prevCpu: NodeJS.CpuUsage | null = null;
  private prevWall = 0;
  private gpu: GpuSource | null | undefined;

  constructor(private readonly opts: SamplerOptions) {}

  sample(): Record<string, number> {
    const out: Record<string, number> = {};
    const now = performance.now();
    const cpu = process.cpuUsage();
    const usedUs = this.prevCpu
      ? cpu.user + cpu.system - this.prevCpu.user - this.prevCpu.system
      : cpu.user + cpu.system;
    const wallUs = this.prevCpu ? (now - this.prevWall) * 1000 : process.uptime() * 1e6;
    this.prevCpu = cpu;
    this.prevWall = now;
    if (wallUs > 0) out['sys/cpu_pct'] = (usedUs / wallUs) * 100;
    out['sys/rss_bytes'] = process.memoryUsage.rss();
    const threads = threadCount();
    if (threads !== null) out['sys/threads'] = threads;
    const free = diskFree(this.opts.dir);
    if (free !== null) out['sys/disk_free_bytes'] = free;
    for (const g of this.readGpus()) {
      const p = `sys/gpu${g.index}/`;
      const put = (name: string, v: number | null) => {
        if (v !== null && Number.isFinite(v)) out[p + name] = v;
      };
      put('util_pct', g.utilPct);
      put('mem_used_bytes', g.memUsedBytes);
      put('mem_total_bytes', g.memTotalBytes);
      put('power_w', g.powerW);
      put('temp_c', g.tempC);
    }
    return out;
  }

  private readGpus(): GpuReading[] {
    if (this.gpu === null) return [];
    if (this.gpu === undefined) {
      const src = (this.opts.gpus ?? nvmlSource)();
      if ('reason' in src) return this.noGpus(src.reason);
      try {
        const first = src.read();
        this.gpu = src.read;
        return first;
      } catch (e) {
        return this.noGpus(`NVML not found (${e instanceof Error ? e.message : String(e)})`);
      }
    }
    try {
      return this.gpu();
    } catch {
      // a reading that failed once it had worked (a GPU reset, say): this sample goes without GPU values
      return [];
    }
  }

  private noGpus(reason: string): GpuReading[] {
    this.gpu = null;
    this.opts.log('info', `GPU metrics: ${reason}; only CPU, memory and disk are recorded`);
    return [];
  }
}
