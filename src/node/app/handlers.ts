/**
 * The app's own requests: what it is and runs on, its settings, and the file picker.
 */
import { z } from 'zod';
import pkg from '../../../package.json' with { type: 'json' };
import type { AppInfo } from '../../shared/api/app';
import { defineHandlers, noArgument } from '../studio/registry';
import { publicSettings, readSettings, updateSettings } from './settings';
import { browseFiles, expandBrowsePath } from './files';
import { confinePath } from '../confine/paths';
import { requestLimits } from '../confine/requests';

export const appHandlers = defineHandlers({
  'app-info': {
    readOnly: true,
    schema: noArgument,
    run: async (_arg, studio) => {
      const info: AppInfo = {
        version: pkg.version,
        home: studio.home,
        node: process.versions.node,
        platform: process.platform,
        arch: process.arch,
      };
      if (process.versions.electron) info.electron = process.versions.electron;
      return info;
    },
  },

  /** Every engine, available or not, with its detail and notes (what Settings shows). */
  'engines-list': {
    readOnly: true,
    schema: noArgument,
    run: async () => {
      // loaded on first use: TF.js is large, and the window or server should not wait for it to start
      const { describeEngines } = await import('../engines');
      return describeEngines();
    },
  },

  /** The workspace settings (the HF token only as set or not). */
  'settings-get': {
    readOnly: true,
    schema: noArgument,
    run: async (_arg, studio) => publicSettings(readSettings(studio.home)),
  },

  /** Sets (a value), clears (null) or keeps (absent) the HF endpoint and token, the allowed folders, private URLs. */
  'settings-set': {
    schema: z
      .object({
        hfEndpoint: z.string().max(2000).nullable().optional(),
        hfToken: z.string().max(500).nullable().optional(),
        allowedFolders: z.array(z.string().min(1).max(4000)).max(100).nullable().optional(),
        allowPrivateUrls: z.boolean().nullable().optional(),
      })
      .strict(),
    run: async (patch, studio) => publicSettings(updateSettings(studio.home, patch)),
    // allowed folders are checked by the settings themselves (they must exist; never the root or a system folder)
  },

  /** One folder of this machine, for the file picker: it offers the workspace and the allowed folders as roots. */
  'files-browse': {
    readOnly: true,
    schema: z
      .object({
        path: z.string().max(4000).optional(),
        extensions: z.array(z.string().max(20)).max(20).optional(),
        showHidden: z.boolean().optional(),
      })
      .strict()
      .optional(),
    run: async (arg, studio) => browseFiles(studio.home, arg, requestLimits(studio.home).paths.roots),
    confine: (a, limits) =>
      a?.path?.trim() ? { ...a, path: confinePath(expandBrowsePath(a.path.trim()), limits.paths, 'folder') } : a,
  },
});
