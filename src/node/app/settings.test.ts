import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { StudioError } from '../../shared/errors';
import { publicSettings, readSettings, settingsFile, updateSettings } from './settings';

describe('workspace settings', () => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-settings-'));
  afterEach(() => fs.rmSync(settingsFile(home), { force: true }));

  it('stores the endpoint and token owner-only, and never shows the token', () => {
    updateSettings(home, { hfEndpoint: 'https://hf-mirror.com/', hfToken: 'hf_secret' });
    expect(readSettings(home)).toEqual({ hfEndpoint: 'https://hf-mirror.com', hfToken: 'hf_secret' });
    expect(fs.statSync(settingsFile(home)).mode & 0o777).toBe(0o600);
    expect(publicSettings(readSettings(home))).toEqual({
      hfEndpoint: 'https://hf-mirror.com',
      hfTokenSet: true,
      allowedFolders: [],
      allowPrivateUrls: false,
    });
    updateSettings(home, { hfToken: null });
    expect(readSettings(home).hfToken).toBeUndefined();
  });

  it('refuses an endpoint that is not an http(s) URL', () => {
    expect(() => updateSettings(home, { hfEndpoint: 'not a url' })).toThrow(/is not a URL/);
    expect(() => updateSettings(home, { hfEndpoint: 'ftp://x' })).toThrow(/http or https/);
  });

  it('keeps allowed folders at their real paths, once each, and clears them with null', () => {
    const data = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-allowed-')));
    const link = `${data}-link`;
    fs.symlinkSync(data, link);
    try {
      updateSettings(home, { allowedFolders: [data, link, `${data}/`] });
      expect(readSettings(home).allowedFolders).toEqual([data]);
      expect(publicSettings(readSettings(home)).allowedFolders).toEqual([data]);
      // other settings stay as they are
      updateSettings(home, { hfEndpoint: 'https://hf-mirror.com' });
      expect(readSettings(home).allowedFolders).toEqual([data]);
      // a folder that is gone stays listed (an unplugged disk) while the others change; a new one must exist
      fs.rmSync(link);
      fs.rmSync(data, { recursive: true });
      expect(updateSettings(home, { allowedFolders: [data] }).allowedFolders).toEqual([data]);
      expect(() => updateSettings(home, { allowedFolders: [data, `${data}-new`] })).toThrow(/does not exist/);
      updateSettings(home, { allowedFolders: null });
      expect(readSettings(home).allowedFolders).toBeUndefined();
    } finally {
      fs.rmSync(link, { force: true });
      fs.rmSync(data, { recursive: true, force: true });
    }
  });

  it('refuses the root, system folders, files, relative and missing paths as allowed folders', () => {
    const refused = (folder: string, pattern: RegExp) => {
      let err: unknown;
      try {
        updateSettings(home, { allowedFolders: [folder] });
      } catch (e) {
        err = e;
      }
      expect(err, folder).toBeInstanceOf(StudioError);
      expect((err as StudioError).message, folder).toMatch(pattern);
      expect((err as StudioError).hint.length, folder).toBeGreaterThan(0);
    };
    refused('/', /root of the file system/);
    refused('/etc', /system folder \/etc/);
    refused('/proc/self', /system folder \/proc/);
    refused('relative/dir', /not an absolute path/);
    refused(path.join(home, 'missing'), /does not exist/);
    fs.writeFileSync(path.join(home, 'a-file'), 'x');
    refused(path.join(home, 'a-file'), /is a file/);
    expect(readSettings(home).allowedFolders).toBeUndefined();
  });

  it('stores allowPrivateUrls only when on', () => {
    expect(publicSettings(readSettings(home)).allowPrivateUrls).toBe(false);
    updateSettings(home, { allowPrivateUrls: true });
    expect(readSettings(home).allowPrivateUrls).toBe(true);
    updateSettings(home, { allowPrivateUrls: false });
    expect(readSettings(home).allowPrivateUrls).toBeUndefined();
    expect(JSON.parse(fs.readFileSync(settingsFile(home), 'utf8'))).not.toHaveProperty('allowPrivateUrls');
  });
});
