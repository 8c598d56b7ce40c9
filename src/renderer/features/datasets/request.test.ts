import { describe, expect, it } from 'vitest';
import { buildRequest, datasetIdOf, EMPTY_FORM, formFor, originsOf, parseCount, type SourceInfo } from './request';

const ts: SourceInfo = {
  id: 'tinyshakespeare',
  title: 'Tiny Shakespeare',
  description: '',
  network: true,
  kind: 'tokens',
  defaultName: 'tinyshakespeare',
  defaultUrl: 'https://x/input.txt',
  options: ['name', 'url', 'file', 'shardSize', 'maxTokens', 'workers', 'keepDownloads', 'overwrite'],
};
const fw: SourceInfo = {
  id: 'fineweb-edu-10bt',
  title: 'FineWeb',
  description: '',
  network: true,
  kind: 'tokens',
  defaultName: 'fineweb-edu-10bt',
  options: [
    'name',
    'url',
    'file',
    'maxFiles',
    'maxTokens',
    'shardSize',
    'valTokens',
    'endpoint',
    'hfToken',
    'workers',
    'keepDownloads',
    'overwrite',
  ],
};
const local: SourceInfo = {
  id: 'local',
  title: 'Your own text',
  description: '',
  network: false,
  kind: 'tokens',
  defaultName: 'local',
  options: ['name', 'url', 'file', 'maxTokens', 'shardSize', 'valTokens', 'workers', 'keepDownloads', 'overwrite'],
};

describe('the wizard request', () => {
  it('reads counts with suffixes and separators', () => {
    expect(parseCount('100M')).toBe(100_000_000);
    expect(parseCount('1,000')).toBe(1000);
    expect(parseCount('1.5k')).toBe(1500);
    expect(parseCount(' 2b ')).toBe(2_000_000_000);
    expect(parseCount('12abc')).toBeNull();
    expect(parseCount('')).toBeNull();
    expect(parseCount('-5')).toBeNull();
  });

  it('offers the origins a source has: download, a file, a URL', () => {
    expect(originsOf(ts)).toEqual(['default', 'file', 'url']);
    expect(originsOf(local)).toEqual(['file', 'url']);
    expect(formFor(local, EMPTY_FORM).origin).toBe('file');
  });

  it('builds only the fields of the chosen source and origin, and says what is wrong', () => {
    const f = {
      ...formFor(ts, EMPTY_FORM),
      origin: 'url' as const,
      url: 'http://127.0.0.1:1/input.txt',
      maxTokens: '10k',
      sizeMb: '3',
      endpoint: 'https://m',
    };
    expect(buildRequest(ts, f)).toEqual({
      req: { source: 'tinyshakespeare', url: 'http://127.0.0.1:1/input.txt', maxTokens: 10_000 },
      errors: {},
    });
    const bad = buildRequest(ts, { ...f, url: 'ftp://x', maxTokens: '1.5', name: '../x' });
    expect(Object.keys(bad.errors).sort()).toEqual(['maxTokens', 'name', 'url']);
    expect(bad.errors.url).toMatch(/ftp:/);
    const noFile = buildRequest(local, formFor(local, EMPTY_FORM));
    expect(noFile.errors.file).toMatch(/Browse/);
  });

  it('FineWeb: a file limit by default, the endpoint and token only for the Hub', () => {
    const f = { ...formFor(fw, EMPTY_FORM), endpoint: 'https://hf-mirror.com/', hfToken: 'hf_x' };
    expect(buildRequest(fw, f).req).toEqual({
      source: 'fineweb-edu-10bt',
      maxFiles: 1,
      endpoint: 'https://hf-mirror.com',
      hfToken: 'hf_x',
    });
    expect(buildRequest(fw, { ...f, limit: 'tokens', maxTokens: '' }).errors.maxTokens).toBeDefined();
    expect(buildRequest(fw, { ...f, limit: 'none' }).req.maxFiles).toBeUndefined();
    expect(buildRequest(fw, { ...f, origin: 'file', file: '/d' }).req).toEqual({
      source: 'fineweb-edu-10bt',
      file: '/d',
      maxFiles: 1,
    });
  });

  it('the dataset id: the name, else a local file’s name, else the source’s default', () => {
    expect(datasetIdOf(local, { source: 'local', file: '/home/me/My Corpus.v2.txt' })).toBe('My-Corpus.v2');
    expect(datasetIdOf(local, { source: 'local', file: 'C:\\data\\notes.jsonl' })).toBe('notes');
    expect(datasetIdOf(ts, { source: 'tinyshakespeare', file: '/x/input.txt' })).toBe('tinyshakespeare');
    expect(datasetIdOf(ts, { source: 'tinyshakespeare', name: 'ts2' })).toBe('ts2');
  });
});
