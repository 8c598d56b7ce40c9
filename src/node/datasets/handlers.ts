/**
 * Dataset requests: the sources, preparing a dataset (download + tokenize into shards), its jobs, and the datasets
 * on disk (their manifests are the truth).
 */
import { z } from 'zod';
import { prepareRequest } from '../../shared/schemas';
import { confinePath } from '../confine/paths';
import { checkFetchUrl } from '../confine/urls';
import { defineHandlers, noArgument } from '../studio/registry';

const datasetId = z.string().min(1).max(200);

export const datasetsHandlers = defineHandlers({
  'datasets-list': { readOnly: true, schema: noArgument, run: (_a, studio) => studio.datasets.list() },

  /** The dataset sources (Tiny Shakespeare, FineWeb-edu, HellaSwag, local files, builtin). */
  'datasets-sources': { readOnly: true, schema: noArgument, run: (_a, studio) => studio.datasets.sources() },

  'datasets-jobs': { readOnly: true, schema: noArgument, run: (_a, studio) => studio.datasets.jobs() },

  /** Starts preparing a dataset; progress comes as dataset-progress / download-progress events. */
  'datasets-prepare': {
    schema: prepareRequest,
    run: (req, studio) => studio.datasets.prepare(req),
    confine: async (r, limits) => {
      if (r.url !== undefined) await checkFetchUrl(r.url, limits.urls);
      if (r.endpoint !== undefined && r.endpoint.trim() !== '') await checkFetchUrl(r.endpoint.trim(), limits.urls);
      // (the endpoint from Settings or HF_ENDPOINT is checked where the Hub is fetched: see guardedFetch)
      return r.file !== undefined ? { ...r, file: confinePath(r.file, limits.paths, 'datasets-prepare file') } : r;
    },
  },

  'datasets-cancel': {
    schema: z.object({ jobId: z.string().min(1).max(200) }).strict(),
    run: (arg, studio) => studio.datasets.cancel(arg),
  },

  'datasets-remove': {
    schema: z.object({ id: datasetId }).strict(),
    run: (arg, studio) => studio.datasets.remove(arg),
  },

  /** The start of a dataset, decoded. */
  'datasets-preview': {
    readOnly: true,
    schema: z.object({ id: datasetId, chars: z.number().int().min(1).max(100_000).optional() }).strict(),
    run: (arg, studio) => studio.datasets.preview(arg),
  },

  /** Size and time estimates of a preparation, before it starts. */
  'datasets-estimate': {
    readOnly: true,
    schema: prepareRequest,
    run: (req, studio) => studio.datasets.estimate(req),
    // an estimate reads local files (sizes, parquet metadata) but fetches nothing
    confine: (r, limits) =>
      r.file !== undefined ? { ...r, file: confinePath(r.file, limits.paths, 'datasets-estimate file') } : r,
  },
});
