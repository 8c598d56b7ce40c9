#!/usr/bin/env node
// Runs before `npm start`: Electron's binary is not downloaded during `npm ci` (its install script is not
// allowed to run, so that installs work offline and on headless boxes). Fetch it now if it is missing.
import { existsSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const pkg = path.join(root, 'node_modules', 'electron');

function installed() {
  const p = path.join(pkg, 'path.txt');
  if (!existsSync(p)) return false;
  return existsSync(path.join(pkg, 'dist', readFileSync(p, 'utf8').trim()));
}

if (!existsSync(pkg)) {
  console.error('error: node_modules/electron is missing.\nhint: run "npm ci" first.');
  process.exit(1);
}
if (!installed()) {
  console.error("Electron's binary is not installed yet; downloading it once (about 100 MB)...");
  const r = spawnSync(process.execPath, [path.join(pkg, 'install.js')], {
    stdio: 'inherit',
    env: { ...process.env, ELECTRON_SKIP_BINARY_DOWNLOAD: '' },
  });
  if (r.status !== 0 || !installed()) {
    console.error(
      "error: Electron's binary could not be downloaded (no network, or a blocked mirror).\n" +
        'hint: set ELECTRON_MIRROR to a reachable mirror and retry, or run the studio in a browser instead:\n' +
        '      npm run serve   (then open the printed http://127.0.0.1 address)',
    );
    process.exit(1);
  }
}
