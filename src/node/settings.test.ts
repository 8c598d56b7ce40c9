import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { publicSettings, readSettings, settingsFile, updateSettings } from './settings';

describe('workspace settings', () => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-settings-'));
  afterEach(() => fs.rmSync(settingsFile(home), { force: true }));

  it('stores the endpoint and token owner-only, and never shows the token', () => {
    updateSettings(home, { hfEndpoint: 'https://hf-mirror.com/', hfToken: 'hf_secret' });
    expect(readSettings(home)).toEqual({ hfEndpoint: 'https://hf-mirror.com', hfToken: 'hf_secret' });
    expect(fs.statSync(settingsFile(home)).mode & 0o777).toBe(0o600);
    expect(publicSettings(readSettings(home))).toEqual({ hfEndpoint: 'https://hf-mirror.com', hfTokenSet: true });
    updateSettings(home, { hfToken: null });
    expect(readSettings(home).hfToken).toBeUndefined();
  });

  it('refuses an endpoint that is not an http(s) URL', () => {
    expect(() => updateSettings(home, { hfEndpoint: 'not a url' })).toThrow(/is not a URL/);
    expect(() => updateSettings(home, { hfEndpoint: 'ftp://x' })).toThrow(/http or https/);
  });
});
