/**
 * `gpt2-studio serve`: the studio in a browser, for a box without a display. Serves the built renderer and the
 * Studio service over HTTP + SSE until SIGINT or SIGTERM.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ErrorCode, StudioError } from '../shared/errors';
import { startServer } from '../node/server';
import { resolveHome } from '../node/workspace';

const USAGE = 'gpt2-studio serve [--port P] [--host 127.0.0.1] [--token T] [--home DIR]';

/** <repo>/out/renderer, where `npm run build` (electron-vite build) puts the renderer. */
export function defaultRendererDir(): string {
  return fileURLToPath(new URL('../../out/renderer', import.meta.url));
}

export interface ServeOptions {
  port: number;
  host: string;
  token?: string;
  home?: string;
}

export function parseServeArgs(argv: string[]): ServeOptions {
  let values: { port?: string; host?: string; token?: string; home?: string };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        port: { type: 'string', short: 'p' },
        host: { type: 'string' },
        token: { type: 'string' },
        home: { type: 'string' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    throw new StudioError(ErrorCode.BAD_ARGUMENT, (e as Error).message, `Usage: ${USAGE}`, { cause: e });
  }
  const port = values.port === undefined ? 0 : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new StudioError(ErrorCode.BAD_ARGUMENT, `Bad --port "${values.port}".`, 'Give a port from 0 to 65535 (0 picks a free one).');
  }
  return { port, host: values.host ?? '127.0.0.1', token: values.token, home: values.home };
}

export async function serveCommand(argv: string[]): Promise<void> {
  const opts = parseServeArgs(argv);
  const rendererDir = defaultRendererDir();
  if (!existsSync(join(rendererDir, 'index.html'))) {
    throw new StudioError(
      ErrorCode.FILE_NOT_FOUND,
      `The built renderer is missing: "${join(rendererDir, 'index.html')}" does not exist.`,
      'Run `npm run build` (or `npm run serve`, which builds first).',
    );
  }
  const home = resolveHome({ flag: opts.home });
  const server = await startServer({ home, host: opts.host, port: opts.port, token: opts.token, rendererDir });

  const openUrl = opts.token ? `${server.url}?token=${encodeURIComponent(opts.token)}` : server.url;
  process.stdout.write(`GPT-2 Studio is serving workspace ${home}\n`);
  process.stdout.write(`Open ${openUrl}\n`);
  process.stdout.write('Press Ctrl+C to stop.\n');

  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      process.stdout.write(`\n${signal}: stopping…\n`);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await server.close();
}
