/**
 * `gpt2-studio serve`: the studio in a browser, for a box without a display. Serves the built renderer and the
 * Studio service over HTTP + SSE until SIGINT or SIGTERM.
 *
 * There is always a token (see src/node/serve/server.ts): --token, else GPT2_STUDIO_TOKEN, else a random one. It is
 * printed once, in the address to open, and nowhere else. (The environment variable keeps it out of `ps`, where
 * every user of the machine can read a command line.)
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ErrorCode, StudioError } from '../shared/errors';
import { DEFAULT_RATE_LIMIT, startServer, type RateLimit } from '../node/serve/server';
import { resolveHome } from '../node/workspace';

const USAGE = 'gpt2-studio serve [--port P] [--host 127.0.0.1] [--token T] [--rate-limit N/SECONDS | off] [--home DIR]';

/** <repo>/out/renderer, where `npm run build` (electron-vite build) puts the renderer. */
export function defaultRendererDir(): string {
  return fileURLToPath(new URL('../../out/renderer', import.meta.url));
}

export interface ServeOptions {
  port: number;
  host: string;
  token?: string;
  home?: string;
  /** changes per client: N per SECONDS; false = no limit */
  rateLimit: RateLimit | false;
}

/** "30/10" (30 per 10 s), "30" (per 10 s) or "off". */
function parseRateLimit(v: string): RateLimit | false {
  if (v === 'off' || v === '0') return false;
  const m = /^(\d+)(?:\/(\d+(?:\.\d+)?))?$/.exec(v.trim());
  const requests = m ? Number(m[1]) : NaN;
  const seconds = m?.[2] !== undefined ? Number(m[2]) : DEFAULT_RATE_LIMIT.windowMs / 1000;
  if (!m || requests < 1 || !(seconds > 0)) {
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `Bad --rate-limit "${v}".`,
      'Give requests per seconds, e.g. --rate-limit 30/10 (the default), or --rate-limit off.',
    );
  }
  return { requests, windowMs: seconds * 1000 };
}

export function parseServeArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): ServeOptions {
  let values: { port?: string; host?: string; token?: string; home?: string; 'rate-limit'?: string };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        port: { type: 'string', short: 'p' },
        host: { type: 'string' },
        token: { type: 'string' },
        'rate-limit': { type: 'string' },
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
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `Bad --port "${values.port}".`,
      'Give a port from 0 to 65535 (0 picks a free one).',
    );
  }
  const token = values.token ?? (env.GPT2_STUDIO_TOKEN?.trim() || undefined);
  const rateLimit = values['rate-limit'] === undefined ? DEFAULT_RATE_LIMIT : parseRateLimit(values['rate-limit']);
  return { port, host: values.host ?? '127.0.0.1', token, home: values.home, rateLimit };
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
  const server = await startServer({
    home,
    host: opts.host,
    port: opts.port,
    token: opts.token,
    rendererDir,
    rateLimit: opts.rateLimit,
  });

  // the one place the token is shown: to the person who started the server
  process.stdout.write(`GPT-2 Studio is serving workspace ${home}\n`);
  process.stdout.write(`Open ${server.openUrl}\n`);
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
