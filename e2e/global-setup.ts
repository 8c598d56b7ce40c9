import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Builds the app once, so that the tests drive the renderer of the current sources. */
export default function globalSetup(): void {
  const chromium = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
  if (!existsSync(chromium)) {
    throw new Error(
      `Chromium not found at ${chromium}. The e2e tests drive a system Chromium: install it with ` +
        '"sudo apt-get install -y chromium" (Debian/Ubuntu), or set CHROMIUM_PATH to a Chromium or Chrome binary.',
    );
  }
  const repo = fileURLToPath(new URL('..', import.meta.url));
  if (
    process.env.GPT2_STUDIO_E2E_SKIP_BUILD === '1' &&
    existsSync(`${process.env.GPT2_STUDIO_OUT ?? `${repo}/out`}/renderer/index.html`)
  )
    return;
  execFileSync(process.execPath, [`${repo}/node_modules/electron-vite/bin/electron-vite.js`, 'build'], {
    cwd: repo,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}
