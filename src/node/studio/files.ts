/**
 * The file picker's view of the machine the studio runs on (the desktop app, or the box behind `serve`): one
 * folder's entries at a time. Paths are resolved and checked; nothing is read but names, kinds and sizes.
 */
import { ErrorCode, StudioError } from '../../shared/errors';

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
  /** its parent, null at the root */
  parent: string | null;
  entries: FileEntry[];
}

export function browseFiles(home: string, arg?: { path?: string; extensions?: string[]; showHidden?: boolean }): FolderListing {
  void home;
  void arg;
  throw new StudioError(ErrorCode.INTERNAL, 'The file browser is not built yet.', '');
}
