/**
 * files-browse (the file picker's listing) on a real folder tree: order, filters, hidden files, the parent,
 * the default folder, and the errors for a missing path, a file and an unreadable folder.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { StudioError } from '../src/shared/errors';
import { browseFiles } from '../src/node/app/files';

let root: string;

beforeEach(() => {
  root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-browse-')));
  fs.mkdirSync(path.join(root, 'b-data'));
  fs.mkdirSync(path.join(root, 'A-models'));
  fs.mkdirSync(path.join(root, '.cache'));
  fs.writeFileSync(path.join(root, 'corpus.txt'), 'hello world\n');
  fs.writeFileSync(path.join(root, 'Notes.TXT'), 'x');
  fs.writeFileSync(path.join(root, 'rows.jsonl'), '{"text":"a"}\n{"text":"b"}\n');
  fs.writeFileSync(path.join(root, 'file10.parquet'), Buffer.alloc(10));
  fs.writeFileSync(path.join(root, 'file9.parquet'), Buffer.alloc(9));
  fs.writeFileSync(path.join(root, '.hidden.txt'), 'secret');
  fs.symlinkSync(path.join(root, 'corpus.txt'), path.join(root, 'link.txt'));
  fs.symlinkSync(path.join(root, 'missing-target'), path.join(root, 'broken.txt'));
});

afterEach(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

function error(fn: () => unknown): StudioError {
  try {
    fn();
  } catch (e) {
    if (e instanceof StudioError) return e;
    throw e;
  }
  throw new Error('expected a StudioError');
}

describe('files-browse', () => {
  it('lists folders first, then files, each in natural case-insensitive order, with sizes and absolute paths', () => {
    const l = browseFiles('/unused', { path: root });
    expect(l.path).toBe(root);
    expect(l.parent).toBe(path.dirname(root));
    expect(l.entries.map((e) => `${e.kind}:${e.name}`)).toEqual([
      'dir:A-models',
      'dir:b-data',
      'file:corpus.txt',
      'file:file9.parquet',
      'file:file10.parquet',
      'file:link.txt',
      'file:Notes.TXT',
      'file:rows.jsonl',
    ]);
    const corpus = l.entries.find((e) => e.name === 'corpus.txt')!;
    expect(corpus).toEqual({ name: 'corpus.txt', path: path.join(root, 'corpus.txt'), kind: 'file', size: 12 });
    // a link is listed as what it points to; a broken link is left out
    expect(l.entries.find((e) => e.name === 'link.txt')?.size).toBe(12);
    expect(l.entries.find((e) => e.kind === 'dir')?.size).toBeUndefined();
  });

  it('filters files by extension (any case, with or without the dot), keeping every folder', () => {
    const l = browseFiles('/unused', { path: root, extensions: ['txt', '.JSONL'] });
    expect(l.entries.map((e) => e.name)).toEqual([
      'A-models',
      'b-data',
      'corpus.txt',
      'link.txt',
      'Notes.TXT',
      'rows.jsonl',
    ]);
    const p = browseFiles('/unused', { path: root, extensions: ['*.parquet'] });
    expect(p.entries.filter((e) => e.kind === 'file').map((e) => e.name)).toEqual(['file9.parquet', 'file10.parquet']);
  });

  it('leaves hidden entries out unless asked', () => {
    expect(browseFiles('/unused', { path: root }).entries.some((e) => e.name.startsWith('.'))).toBe(false);
    const all = browseFiles('/unused', { path: root, showHidden: true }).entries.map((e) => e.name);
    expect(all).toContain('.cache');
    expect(all).toContain('.hidden.txt');
    expect(all.indexOf('.cache')).toBeLessThan(all.indexOf('corpus.txt'));
  });

  it('resolves relative paths and "..", defaults to the home folder, and stops at the root', () => {
    expect(browseFiles('/unused', { path: path.join(root, 'b-data', '..', 'A-models') }).path).toBe(
      path.join(root, 'A-models'),
    );
    const rel = path.relative(process.cwd(), path.join(root, 'b-data'));
    expect(browseFiles('/unused', { path: rel }).path).toBe(path.join(root, 'b-data'));
    expect(browseFiles('/unused').path).toBe(path.resolve(os.homedir()));
    expect(browseFiles('/unused', { path: '   ' }).path).toBe(path.resolve(os.homedir()));
    expect(browseFiles('/unused', { path: '~' }).path).toBe(path.resolve(os.homedir()));
    const top = browseFiles('/unused', { path: path.parse(root).root });
    expect(top.parent).toBeNull();
  });

  it('a missing folder is NOT_FOUND naming the path and the nearest folder that exists', () => {
    const missing = path.join(root, 'nope', 'deeper');
    const e = error(() => browseFiles('/unused', { path: missing }));
    expect(e.code).toBe('NOT_FOUND');
    expect(e.message).toContain(missing);
    expect(e.hint).toContain(root);
  });

  it('a file is refused, pointing at its folder', () => {
    const e = error(() => browseFiles('/unused', { path: path.join(root, 'corpus.txt') }));
    expect(e.code).toBe('BAD_ARGUMENT');
    expect(e.message).toContain(path.join(root, 'corpus.txt'));
    expect(e.hint).toContain(root);
  });

  it('an unreadable folder is a permission error naming it', () => {
    const locked = path.join(root, 'locked');
    fs.mkdirSync(locked, { mode: 0o000 });
    // root reads any folder: there, the refusal the kernel gives other users is simulated
    const spy =
      process.getuid?.() === 0
        ? vi.spyOn(fs, 'readdirSync').mockImplementation(() => {
            throw Object.assign(new Error(`EACCES: permission denied, scandir '${locked}'`), { code: 'EACCES' });
          })
        : null;
    try {
      const e = error(() => browseFiles('/unused', { path: locked }));
      expect(e.message).toMatch(/Permission denied \(EACCES\)/);
      expect(e.message).toContain(locked);
      expect(e.hint).toMatch(/read access/);
    } finally {
      spy?.mockRestore();
      fs.chmodSync(locked, 0o755);
    }
  });
});
