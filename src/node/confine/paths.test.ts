/**
 * The path guard on a real folder tree: `..`, symlinks that lead out (to a file, a folder, nowhere yet), a
 * symlinked allowed folder, absolute paths outside, a hard link to an outside file, and the excluded settings file.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StudioError } from '../../shared/errors';
import { confinePath, isWithin, resolveReal, workspaceConfinement, type Confinement } from './paths';

let tmp: string;
let ws: string;
let allowed: string;
let outside: string;
let c: Confinement;

beforeEach(() => {
  tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-guard-')));
  ws = path.join(tmp, 'workspace');
  allowed = path.join(tmp, 'allowed');
  outside = path.join(tmp, 'outside');
  for (const d of [ws, allowed, outside, path.join(allowed, 'sub')]) fs.mkdirSync(d, { recursive: true });
  fs.writeFileSync(path.join(outside, 'secret.txt'), 'root only', { mode: 0o600 });
  fs.writeFileSync(path.join(allowed, 'corpus.txt'), 'hello');
  fs.writeFileSync(path.join(ws, 'settings.json'), '{}');
  c = workspaceConfinement(ws, [allowed], ['settings.json']);
});

afterEach(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** The StudioError `fn` throws. */
function refusal(fn: () => unknown): StudioError {
  try {
    fn();
  } catch (e) {
    if (e instanceof StudioError) return e;
    throw e;
  }
  throw new Error('expected a refusal');
}

describe('confinePath', () => {
  it('allows the workspace, an allowed folder and paths inside them, existing or not', () => {
    expect(confinePath(ws, c, 'folder')).toBe(ws);
    expect(confinePath(path.join(allowed, 'corpus.txt'), c, 'file')).toBe(path.join(allowed, 'corpus.txt'));
    expect(confinePath(path.join(allowed, 'new', 'deeper', 'out'), c, 'export folder')).toBe(
      path.join(allowed, 'new', 'deeper', 'out'),
    );
    expect(confinePath(path.join(ws, 'exports', 'step8'), c, 'export folder')).toBe(path.join(ws, 'exports', 'step8'));
  });

  it('refuses an absolute path outside, naming it, the allowed folders and the fix', () => {
    const e = refusal(() => confinePath(path.join(outside, 'secret.txt'), c, 'datasets-prepare file'));
    expect(e.code).toBe('FORBIDDEN');
    expect(e.message).toContain(`"${path.join(outside, 'secret.txt')}"`);
    expect(e.message).toContain(`the workspace ${ws}`);
    expect(e.message).toContain(`the allowed folder ${allowed}`);
    expect(e.hint).toContain('Settings → Allowed folders');
    expect(refusal(() => confinePath('/etc', c, 'folder')).code).toBe('FORBIDDEN');
    // a sibling whose name starts like an allowed folder is not inside it
    fs.mkdirSync(`${allowed}-evil`);
    expect(refusal(() => confinePath(`${allowed}-evil`, c, 'folder')).code).toBe('FORBIDDEN');
  });

  it('refuses `..` that climbs out, and allows `..` that stays in', () => {
    expect(
      refusal(() => confinePath(path.join(allowed, 'sub', '..', '..', 'outside', 'secret.txt'), c, 'file')).code,
    ).toBe('FORBIDDEN');
    expect(refusal(() => confinePath(`${ws}/../outside`, c, 'folder')).code).toBe('FORBIDDEN');
    expect(confinePath(path.join(allowed, 'sub', '..', 'corpus.txt'), c, 'file')).toBe(
      path.join(allowed, 'corpus.txt'),
    );
  });

  it('refuses symlinks that lead out: to a file, to a folder, through a folder, and dangling ones', () => {
    fs.symlinkSync(path.join(outside, 'secret.txt'), path.join(allowed, 'link.txt'));
    fs.symlinkSync(outside, path.join(allowed, 'out-dir'));
    fs.symlinkSync(path.join(outside, 'not-yet'), path.join(allowed, 'dangling'));
    const e = refusal(() => confinePath(path.join(allowed, 'link.txt'), c, 'file'));
    expect(e.code).toBe('FORBIDDEN');
    expect(e.message).toContain(`it leads to "${path.join(outside, 'secret.txt')}"`);
    expect(refusal(() => confinePath(path.join(allowed, 'out-dir'), c, 'folder')).code).toBe('FORBIDDEN');
    expect(refusal(() => confinePath(path.join(allowed, 'out-dir', 'secret.txt'), c, 'file')).code).toBe('FORBIDDEN');
    // an output that does not exist yet, below a link that leads out
    expect(refusal(() => confinePath(path.join(allowed, 'out-dir', 'new', 'model'), c, 'export folder')).code).toBe(
      'FORBIDDEN',
    );
    // a write through a dangling link would create its target outside
    expect(refusal(() => confinePath(path.join(allowed, 'dangling'), c, 'export folder')).code).toBe('FORBIDDEN');
    expect(resolveReal(path.join(allowed, 'dangling', 'x'))).toBe(path.join(outside, 'not-yet', 'x'));
  });

  it('takes `..` in a symlink target physically, as the kernel does', () => {
    // allowed/sub/up -> ../../outside: the kernel climbs from the link's own folder (allowed/sub), so it leads out
    fs.symlinkSync('../../outside', path.join(allowed, 'sub', 'up'));
    expect(resolveReal(path.join(allowed, 'sub', 'up'))).toBe(outside);
    expect(refusal(() => confinePath(path.join(allowed, 'sub', 'up', 'secret.txt'), c, 'file')).code).toBe('FORBIDDEN');
    // a link to a folder, then `..` through a missing name: the parent of the link's target, not of the link
    fs.symlinkSync(path.join(outside), path.join(allowed, 'o'));
    expect(resolveReal(path.join(allowed, 'o', 'missing'))).toBe(path.join(outside, 'missing'));
  });

  it('allows the real and the linked path of a symlinked allowed folder', () => {
    const real = path.join(tmp, 'disk', 'data');
    fs.mkdirSync(real, { recursive: true });
    fs.writeFileSync(path.join(real, 'a.txt'), 'x');
    const link = path.join(tmp, 'data-link');
    fs.symlinkSync(real, link);
    const linked = workspaceConfinement(ws, [link]);
    expect(linked.roots.map((r) => r.path)).toEqual([ws, real]);
    expect(confinePath(path.join(link, 'a.txt'), linked, 'file')).toBe(path.join(link, 'a.txt'));
    expect(confinePath(path.join(real, 'a.txt'), linked, 'file')).toBe(path.join(real, 'a.txt'));
    expect(refusal(() => confinePath(path.join(tmp, 'disk'), linked, 'folder')).code).toBe('FORBIDDEN');
  });

  it('allows a hard link inside an allowed folder to an outside file (the same file, made by someone who could read it)', () => {
    const inside = path.join(allowed, 'hard.txt');
    try {
      fs.linkSync(path.join(outside, 'secret.txt'), inside);
    } catch (e) {
      // a file system without hard links (some network mounts) has nothing to test
      expect((e as NodeJS.ErrnoException).code).toMatch(/EPERM|EXDEV|ENOTSUP|EOPNOTSUPP/);
      return;
    }
    expect(fs.statSync(inside).ino).toBe(fs.statSync(path.join(outside, 'secret.txt')).ino);
    expect(confinePath(inside, c, 'file')).toBe(inside);
    expect(fs.readFileSync(confinePath(inside, c, 'file'), 'utf8')).toBe('root only');
    // the outside name itself stays refused
    expect(refusal(() => confinePath(path.join(outside, 'secret.txt'), c, 'file')).code).toBe('FORBIDDEN');
  });

  it('refuses the settings file, by name or through a link', () => {
    const e = refusal(() => confinePath(path.join(ws, 'settings.json'), c, 'file'));
    expect(e.code).toBe('FORBIDDEN');
    expect(e.message).toContain('settings file');
    fs.symlinkSync(path.join(ws, 'settings.json'), path.join(allowed, 's.json'));
    expect(refusal(() => confinePath(path.join(allowed, 's.json'), c, 'file')).code).toBe('FORBIDDEN');
  });

  it('with children, refuses a folder whose own entries link out', () => {
    const model = path.join(allowed, 'model');
    fs.mkdirSync(model);
    fs.writeFileSync(path.join(model, 'config.json'), '{}');
    expect(confinePath(model, c, 'models-import path', { children: true })).toBe(model);
    fs.symlinkSync(path.join(outside, 'secret.txt'), path.join(model, 'model.safetensors'));
    expect(confinePath(model, c, 'models-import path')).toBe(model);
    expect(refusal(() => confinePath(model, c, 'models-import path', { children: true })).code).toBe('FORBIDDEN');
  });

  it('stops at a symlink loop with a clear error', () => {
    fs.symlinkSync(path.join(allowed, 'b'), path.join(allowed, 'a'));
    fs.symlinkSync(path.join(allowed, 'a'), path.join(allowed, 'b'));
    const e = refusal(() => confinePath(path.join(allowed, 'a', 'x'), c, 'file'));
    expect(e.code).toBe('BAD_ARGUMENT');
    expect(e.message).toMatch(/Too many symbolic links/);
  });

  it('leaves out an allowed folder that is gone', () => {
    expect(workspaceConfinement(ws, [path.join(tmp, 'unplugged'), allowed]).roots.map((r) => r.path)).toEqual([
      ws,
      allowed,
    ]);
  });
});

describe('isWithin', () => {
  it('is true for the root and below, false for siblings and parents', () => {
    expect(isWithin('/a/b', '/a/b')).toBe(true);
    expect(isWithin('/a/b', '/a/b/c/d')).toBe(true);
    expect(isWithin('/a/b', '/a/bc')).toBe(false);
    expect(isWithin('/a/b', '/a')).toBe(false);
    expect(isWithin('/a/b', '/a/b/../c')).toBe(false);
  });
});
