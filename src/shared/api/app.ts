/** The app's own requests: what it is and runs on, its settings, and the file picker. */
import type { EngineInfo } from '../../core/engine/types';
import type { PublicSettings, SettingsPatch } from '../../node/settings';
import type { FolderListing } from '../../node/studio/files';

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

export type AppHandlers = {
  'app-info': () => Promise<AppInfo>;
  'engines-list': () => Promise<EngineInfo[]>;
  'settings-get': () => Promise<PublicSettings>;
  'settings-set': (patch: SettingsPatch) => Promise<PublicSettings>;
  'files-browse': (arg?: { path?: string; extensions?: string[]; showHidden?: boolean }) => Promise<FolderListing>;
};
