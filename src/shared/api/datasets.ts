/** Dataset requests (see src/node/datasets/handlers.ts). */
import type { DatasetEstimate, DatasetJob, DatasetPreview, DatasetSummary, PrepareRequest, PrepareStarted, SourceInfo } from '../../node/datasets/types';

export type DatasetsHandlers = {
  'datasets-list': () => Promise<DatasetSummary[]>;
  'datasets-sources': () => Promise<SourceInfo[]>;
  'datasets-jobs': () => Promise<DatasetJob[]>;
  'datasets-prepare': (req: PrepareRequest) => Promise<PrepareStarted>;
  'datasets-cancel': (arg: { jobId: string }) => Promise<{ cancelled: boolean }>;
  'datasets-remove': (arg: { id: string }) => Promise<{ removed: boolean }>;
  'datasets-preview': (arg: { id: string; chars?: number }) => Promise<DatasetPreview>;
  'datasets-estimate': (req: PrepareRequest) => Promise<DatasetEstimate>;
};
