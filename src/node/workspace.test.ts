import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StudioError } from '../shared/errors';
import { WORKSPACE_SUBFOLDERS, resolveHome } from './workspace';

let tmp: string;
beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), 'gpt2-ws-'));
});
afterEach(() => {
  rmSync(tmp, { recursive: true, force: true });
});

const isDir = (p: string) => statSync(p).isDirectory();

describe('resolveHome', () => {
  it('prefers --home over GPT2_STUDIO_HOME over userData, and creates the subfolders', () => {
    const flag = join(tmp, 'flag');
    const env = { GPT2_STUDIO_HOME: join(tmp, 'env') };
    const electronUserData = join(tmp, 'electron');

    expect(resolveHome({ flag, env, electronUserData })).toBe(flag);
    expect(resolveHome({ env, electronUserData })).toBe(env.GPT2_STUDIO_HOME);
    expect(resolveHome({ env: {}, electronUserData })).toBe(electronUserData);
    for (const home of [flag, env.GPT2_STUDIO_HOME, electronUserData]) {
      for (const sub of WORKSPACE_SUBFOLDERS) expect(isDir(join(home, sub))).toBe(true);
    }
  });

  it('treats an empty value as unset', () => {
    const electronUserData = join(tmp, 'electron');
    expect(resolveHome({ flag: '', env: { GPT2_STUDIO_HOME: '  ' }, electronUserData })).toBe(electronUserData);
  });

  it('resolves a relative path against the current folder', () => {
    const rel = relative(process.cwd(), join(tmp, 'rel'));
    expect(resolveHome({ flag: rel, env: {} })).toBe(join(tmp, 'rel'));
  });

  it('expands a leading ~ that no shell expanded, and defaults to ~/.gpt2-studio', () => {
    // os.homedir() reads HOME (USERPROFILE on Windows): point it at tmp so that nothing is created in the real home.
    const saved = { HOME: process.env.HOME, USERPROFILE: process.env.USERPROFILE };
    process.env.HOME = tmp;
    process.env.USERPROFILE = tmp;
    try {
      expect(homedir()).toBe(tmp);
      expect(resolveHome({ env: { GPT2_STUDIO_HOME: '~/tilde' } })).toBe(join(tmp, 'tilde'));
      expect(resolveHome({ env: {} })).toBe(join(tmp, '.gpt2-studio'));
      expect(isDir(join(tmp, '.gpt2-studio', 'runs'))).toBe(true);
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });

  it('refuses a path that is a file, with a hint', () => {
    const file = join(tmp, 'a-file');
    writeFileSync(file, 'x');
    let err: unknown;
    try {
      resolveHome({ flag: file, env: {} });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StudioError);
    expect((err as StudioError).code).toBe('BAD_CONFIG');
    expect((err as StudioError).message).toContain(file);
    expect((err as StudioError).message).toContain('--home');
    expect((err as StudioError).hint).toMatch(/GPT2_STUDIO_HOME/);
  });

  it('refuses a path below a file', () => {
    const file = join(tmp, 'a-file');
    writeFileSync(file, 'x');
    expect(() => resolveHome({ env: { GPT2_STUDIO_HOME: join(file, 'sub') } })).toThrow(/GPT2_STUDIO_HOME/);
  });
});
