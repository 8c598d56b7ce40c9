/**
 * Run requests: presets, checking and creating a run, its controls (stop, pause, resume, delete), what it recorded
 * (metrics, logs, samples, checkpoints), and the estimates of how fast a config trains here.
 */
import { z } from 'zod';
import { RUN_STATUS_VALUES, runId } from '../../shared/schemas';
import type { LogEntry } from '../../shared/records';
import { listPresets } from './presets';
import { initPath } from '../confine/requests';
import { planConfig, trainedShape } from './calibrate';
import { runReport } from './report';
import { defineHandlers, noArgument } from '../studio/registry';

const byId = z.object({ id: runId }).strict();
const status = z.enum(RUN_STATUS_VALUES);

export const runsHandlers = defineHandlers({
  /** Training presets (resources/presets). */
  'presets-list': { readOnly: true, schema: noArgument, run: async () => listPresets() },

  /** Checks a run config without creating anything; the list is empty when it is valid. */
  'config-validate': {
    readOnly: true,
    schema: z.object({ config: z.unknown() }).strict(),
    run: async ({ config }, studio) => {
      const r = studio.runs.check(config);
      return r.ok ? [] : r.errors;
    },
    confine: (a, limits, home) => ({ ...a, config: initPath(a.config, limits, home) }),
  },

  /** Whether runs-create would refuse the config for memory, without creating anything. */
  'runs-check-memory': {
    readOnly: true,
    schema: z.object({ config: z.unknown() }).strict(),
    run: async ({ config }, studio) => studio.runs.memoryProblem(config),
    confine: (a, limits, home) => ({ ...a, config: initPath(a.config, limits, home) }),
  },

  /** Creates a run from a config and starts its worker. */
  'runs-create': {
    schema: z
      .object({
        config: z.unknown(),
        name: z.string().max(200).optional(),
        preset: z.string().max(100).optional(),
        tags: z.array(z.string().max(50)).max(20).optional(),
        notes: z.string().max(10_000).optional(),
        start: z.boolean().optional(),
        force: z.boolean().optional(),
      })
      .strict(),
    run: (input, studio) => studio.runs.create(input),
    confine: (a, limits, home) => ({ ...a, config: initPath(a.config, limits, home) }),
  },

  'runs-list': {
    readOnly: true,
    schema: z
      .object({
        status: z.union([status, z.array(status)]).optional(),
        search: z.string().max(200).optional(),
        limit: z.number().int().positive().max(10_000).optional(),
        offset: z.number().int().min(0).optional(),
      })
      .strict()
      .optional(),
    run: async (filter, studio) => studio.runs.list(filter),
  },

  'runs-get': { readOnly: true, schema: byId, run: async ({ id }, studio) => studio.runs.get(id) },
  /** Starts a run created with `start: false` (the CLI subscribes to its events in between). */
  'runs-start': { schema: byId, run: async ({ id }, studio) => studio.runs.start(id) },
  'runs-stop': { schema: byId, run: async ({ id }, studio) => studio.runs.control(id, 'stop') },
  'runs-pause': { schema: byId, run: async ({ id }, studio) => studio.runs.control(id, 'pause') },
  /** Resumes a stopped, paused, interrupted or failed run from its last checkpoint. */
  'runs-resume': { schema: byId, run: async ({ id }, studio) => studio.runs.resume(id) },
  /** Deletes a run that is not running, with its checkpoints and files. */
  'runs-delete': { schema: byId, run: async ({ id }, studio) => studio.runs.delete(id) },

  'runs-update': {
    schema: z
      .object({
        id: runId,
        name: z.string().max(200).optional(),
        tags: z.array(z.string().max(50)).max(20).optional(),
        notes: z.string().max(10_000).optional(),
      })
      .strict(),
    run: async ({ id, ...patch }, studio) => {
      studio.runs.get(id);
      return studio.store.updateRun(id, patch);
    },
  },

  /** Metric series of a run (all, or the named ones), optionally only after a step. */
  'runs-metrics': {
    readOnly: true,
    schema: z
      .object({
        id: runId,
        names: z.array(z.string().max(100)).max(50).optional(),
        sinceStep: z.number().int().optional(),
      })
      .strict(),
    run: async (arg, studio) => studio.runs.metrics(arg.id, arg.names, arg.sinceStep),
  },

  /** A run's log lines after `afterSeq`, or its last `tail` lines. */
  'runs-logs': {
    readOnly: true,
    schema: z
      .object({
        id: runId,
        afterSeq: z.number().int().min(0).optional(),
        tail: z.number().int().positive().max(10_000).optional(),
      })
      .strict(),
    run: async (arg, studio) => studio.runs.logs(arg.id, arg.afterSeq, arg.tail),
  },

  'runs-samples': { readOnly: true, schema: byId, run: async ({ id }, studio) => studio.runs.samples(id) },
  'runs-checkpoints': { readOnly: true, schema: byId, run: async ({ id }, studio) => studio.runs.checkpoints(id) },

  /** The run as one self-contained HTML page to share (facts, curves as SVG, samples, config, log). */
  'runs-report': {
    readOnly: true,
    schema: byId,
    run: async ({ id }, studio) => {
      const run = studio.runs.get(id);
      const logs: LogEntry[] = [];
      // the log table answers a page at a time
      for (let after = 0; ;) {
        const page = studio.runs.logs(id, after);
        logs.push(...page);
        if (page.length === 0) break;
        after = page[page.length - 1]!.seq;
      }
      return runReport({
        run,
        metrics: studio.runs.metrics(id),
        logs,
        samples: studio.runs.samples(id),
        generatedAt: Date.now(),
      });
    },
  },

  /**
   * How fast a run config trains on this machine: a real timed training step of its model shape and micro-batch
   * on its engine, in a child process (seconds for a small model). The cached measurement, or null without
   * `measure`; with it, a new one when none is cached.
   */
  'runs-calibrate': {
    schema: z.object({ config: z.unknown(), measure: z.boolean().optional() }).strict(),
    run: (arg, studio) => studio.calibration.calibrate(arg.config, arg.measure === true),
    // a cached measurement is a read; a new one is a training step
    readOnly: (arg) => arg.measure !== true,
    confine: (a, limits, home) => ({ ...a, config: initPath(a.config, limits, home) }),
  },

  /** The model shape a run config trains: the config's, or that of its init weights or checkpoint. */
  'runs-shape': {
    readOnly: true,
    schema: z.object({ config: z.unknown() }).strict(),
    run: async (arg, studio) => trainedShape(studio.home, planConfig(arg.config)),
    confine: (a, limits, home) => ({ ...a, config: initPath(a.config, limits, home) }),
  },
});
