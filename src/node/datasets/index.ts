/** Datasets: sources, downloads, preparation into shards, the manifest, and the file-backed data loader. */
export {
  prepareDataset,
  readPartialInfo,
  resolveDatasetId,
  type PrepareHooks,
  type PrepareOutcome,
  type PrepareProgress,
} from './prepare';
export {
  getSource,
  listSources,
  registerSource,
  DEFAULT_SHARD_SIZE,
  type SourceDefinition,
  type SourcePlan,
} from './sources';
export {
  downloadFile,
  DownloadQueue,
  type DownloadOptions,
  type DownloadProgress,
  type DownloadRequest,
  type DownloadResult,
} from './download';
export { datasetShardFiles, listDatasets, openDataset, readManifest, type DatasetManifest } from './manifest';
export { FileShardSource, openDatasetLoader, openShardLoader } from './loader';
export { readShardLayout, readShardTokens, writeShardFile } from './shards';
export { TokenizerPool, defaultWorkerCount } from './pool';
export { isCancelled, CancelledError } from './errors';
export type * from '../../shared/api/datasets';
