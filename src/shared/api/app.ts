/** The app's own requests: what it is and runs on, its settings, and the file picker. */

export interface AppInfo {
  /** the studio's version, from package.json */
  version: string;
  /** the workspace folder */
  home: string;
  /** Node's version, e.g. "20.19.0" */
  node: string;
  /** Electron's version when running under Electron */
  electron?: string;
  /** e.g. "linux" */
  platform: string;
  /** e.g. "x64" */
  arch: string;
}

/** One folder that requests may use. */
export interface AllowedRoot {
  /** its real path (no symlinks) */
  path: string;
  /** what a message calls it: "the workspace" or "an allowed folder" */
  label: string;
}

export interface FileEntry {
  name: string;
  /** absolute path */
  path: string;
  kind: 'file' | 'dir';
  /** bytes, files only */
  size?: number;
}

export interface FolderListing {
  /** the absolute folder listed */
  path: string;
  /** its parent, null at the root (of the file system, or of the allowed folder it is in) */
  parent: string | null;
  entries: FileEntry[];
  /** the folders a picker may browse (the workspace, then the allowed folders); absent when not limited */
  roots?: AllowedRoot[];
}

/** What a client sees: the token only as set or not. */
export interface PublicSettings {
  hfEndpoint: string | null;
  hfTokenSet: boolean;
  allowedFolders: string[];
  allowPrivateUrls: boolean;
}

/** A change to the settings: a value sets it, null clears it, absent leaves it. */
export interface SettingsPatch {
  hfEndpoint?: string | null;
  hfToken?: string | null;
  /** the whole list (each folder must exist); null or [] clears it */
  allowedFolders?: string[] | null;
  allowPrivateUrls?: boolean | null;
}

export interface EngineInfo {
  name: string;
  available: boolean;
  /** e.g. the TF.js backend, or the BLAS in use */
  detail: string;
  /** why a faster option was not used, or why the engine is unavailable */
  notes: string[];
  /** what runs, field by field (for the run's record): present when the engine is available */
  facts?: EngineFacts;
}

/** The engine a run actually trained on, as recorded on the run. */
export interface EngineFacts {
  /** native-cpu, native-cuda or tfjs */
  engine: string;
  /** the compute backend: e.g. "blas" or "builtin" GEMM (native-cpu), "cublas" (native-cuda), "wasm" (tfjs) */
  backend: string;
  /** the build: compiler, SIMD, BLAS, CUDA arch, TF.js version */
  build: string;
  /** CPU threads, where the engine uses them */
  threads?: number;
  /** matmul precision: fp32, tf32 or bf16 */
  precision: string;
}

export type AppHandlers = {
  'app-info': () => Promise<AppInfo>;
  'engines-list': () => Promise<EngineInfo[]>;
  'settings-get': () => Promise<PublicSettings>;
  'settings-set': (patch: SettingsPatch) => Promise<PublicSettings>;
  'files-browse': (arg?: { path?: string; extensions?: string[]; showHidden?: boolean }) => Promise<FolderListing>;
};
