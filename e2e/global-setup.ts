import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Builds the app once, so that the tests drive the renderer of the current sources. */
export default function globalSetup(): void {
  const repo = fileURLToPath(new URL('..', import.meta.url));
  if (process.env.GPT2_STUDIO_E2E_SKIP_BUILD === '1' && existsSync(`${repo}/out/renderer/index.html`)) return;
  execFileSync(process.execPath, [`${repo}/node_modules/electron-vite/bin/electron-vite.js`, 'build'], {
    cwd: repo,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}
