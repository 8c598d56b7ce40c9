/**
 * The HTTP transport (`gpt2-studio serve`): the built renderer as static files, `POST /api/invoke/<name>` onto the
 * Studio service, and `GET /api/events` as Server-Sent Events of its push events. node:http only.
 *
 * Security: loopback only unless a token is set; with a token every /api request must carry it (compared in
 * constant time); without one, the Host header must name a loopback host (against DNS rebinding). A cross-origin
 * browser request is refused, and POST bodies must be JSON (so a form on another site cannot post here).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createReadStream, existsSync, realpathSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import {
  HTTP_EVENTS_PATH,
  HTTP_INVOKE_PREFIX,
  RENDERER_CSP,
  SSE_EVENT_TYPE,
  type InvokeResult,
} from '../shared/contract';
import { ErrorCode, StudioError, type PlainError } from '../shared/errors';
import { httpInvokeBodySchema, isHandlerName } from '../shared/schemas';
import { Studio } from './studio';
import { invokeStudio } from './studio/dispatch';

export interface ServerOptions {
  /** the workspace folder (resolveHome) */
  home: string;
  /** interface to bind; anything but loopback needs a token. Default 127.0.0.1 */
  host?: string;
  /** 0 picks a free port. Default 0 */
  port?: number;
  /** when set, every /api request must carry it */
  token?: string;
  /** the built renderer (out/renderer) */
  rendererDir: string;
  /** a Studio to serve; by default one is made for `home` (and closed with the server) */
  studio?: Studio;
  /** the largest request body accepted, in bytes. Default 1 MiB */
  maxBodyBytes?: number;
  /** interval of SSE keep-alive comments. Default 25 s */
  heartbeatMs?: number;
}

export interface RunningServer {
  /** e.g. http://127.0.0.1:41234/ (without the token) */
  url: string;
  port: number;
  host: string;
  studio: Studio;
  close(): Promise<void>;
}

const DEFAULT_MAX_BODY = 1024 * 1024;

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.woff': 'font/woff',
  '.txt': 'text/plain; charset=utf-8',
  '.wasm': 'application/wasm',
};

const SECURITY_HEADERS: Record<string, string> = {
  'Content-Security-Policy': RENDERER_CSP,
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

/** 127.0.0.0/8, ::1 and localhost. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h) || h === '::ffff:127.0.0.1';
}

/** Compares in time that does not depend on where the strings differ (both are hashed to equal length first). */
function tokenMatches(given: string | undefined, expected: string): boolean {
  if (given === undefined) return false;
  const a = createHash('sha256').update(given, 'utf8').digest();
  const b = createHash('sha256').update(expected, 'utf8').digest();
  return timingSafeEqual(a, b);
}

export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? 0;
  const token = opts.token;
  const maxBody = opts.maxBodyBytes ?? DEFAULT_MAX_BODY;
  const heartbeatMs = opts.heartbeatMs ?? 25_000;

  if (token !== undefined && token.length < 8) {
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `The token is too short (${token.length} characters).`,
      'Use at least 8 characters, e.g. the output of `openssl rand -hex 16`.',
    );
  }
  if (!isLoopbackHost(host) && token === undefined) {
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `Refusing to serve on "${host}" without a token: anyone who can reach it could drive the studio.`,
      'Add --token <secret> (at least 8 characters), or serve on 127.0.0.1 and reach it through an SSH tunnel ' +
        '(ssh -L 8080:127.0.0.1:8080 box).',
    );
  }
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new StudioError(ErrorCode.BAD_ARGUMENT, `Bad port ${port}.`, 'Give a port from 0 to 65535 (0 picks a free one).');
  }
  const indexFile = join(opts.rendererDir, 'index.html');
  if (!existsSync(indexFile)) {
    throw new StudioError(
      ErrorCode.FILE_NOT_FOUND,
      `The built renderer is missing: "${indexFile}" does not exist.`,
      'Run `npm run build` first.',
    );
  }
  const root = realpathSync(resolve(opts.rendererDir));

  const ownsStudio = opts.studio === undefined;
  const studio = opts.studio ?? new Studio({ home: opts.home });
  const streams = new Set<ServerResponse>();

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      // A bug in the handler itself: answer 500 and let it show in the server's log.
      console.error('gpt2-studio serve: request failed:', e);
      if (!res.headersSent) {
        sendJson(res, 500, { ok: false, error: { code: ErrorCode.INTERNAL, message: String(e), hint: '' } });
      } else {
        res.destroy();
      }
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      return sendText(res, 400, 'Bad request URL.');
    }
    if (token === undefined && !isLoopbackHost(hostnameOf(req.headers.host))) {
      return sendText(res, 403, `Refused: Host "${req.headers.host ?? ''}" is not a loopback name.`);
    }
    if (url.pathname === '/api' || url.pathname.startsWith('/api/')) return handleApi(req, res, url);
    return serveStatic(req, res, url);
  }

  async function handleApi(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== `http://${req.headers.host ?? ''}`) {
      return sendError(res, 403, ErrorCode.UNAUTHORIZED, `Refused a cross-origin request from ${origin}.`, 'Open the studio from its own address.');
    }
    if (token !== undefined) {
      const auth = req.headers.authorization;
      const bearer = auth?.match(/^Bearer\s+(\S+)\s*$/i)?.[1];
      const queryToken = url.pathname === HTTP_EVENTS_PATH ? (url.searchParams.get('token') ?? undefined) : undefined;
      if (!tokenMatches(bearer ?? queryToken, token)) {
        res.setHeader('WWW-Authenticate', 'Bearer realm="gpt2-studio"');
        return sendError(res, 401, ErrorCode.UNAUTHORIZED, 'Missing or wrong token.', 'Open the URL that `gpt2-studio serve` printed (it carries ?token=...).');
      }
    }

    if (url.pathname === HTTP_EVENTS_PATH) {
      if (req.method !== 'GET') return methodNotAllowed(res, 'GET');
      return openEventStream(req, res);
    }

    if (url.pathname.startsWith(HTTP_INVOKE_PREFIX)) {
      let name: string;
      try {
        name = decodeURIComponent(url.pathname.slice(HTTP_INVOKE_PREFIX.length));
      } catch {
        return sendError(res, 400, ErrorCode.BAD_ARGUMENT, 'Bad request name encoding.', '');
      }
      if (!isHandlerName(name)) {
        const reply = await invokeStudio(studio, name, undefined); // the error that lists the known names
        return sendJson(res, 404, stripReason(reply));
      }
      if (req.method !== 'POST') return methodNotAllowed(res, 'POST');
      const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
      if (type !== 'application/json') {
        return sendError(res, 415, ErrorCode.BAD_ARGUMENT, `Expected Content-Type application/json, got "${type}".`, 'Send the body as JSON: {"arg": ...}.');
      }
      const body = await readBody(req, maxBody);
      if (body === 'too-large') {
        res.setHeader('Connection', 'close');
        return sendError(res, 413, ErrorCode.BAD_ARGUMENT, `The request body is larger than ${maxBody} bytes.`, 'Send a smaller request.');
      }
      let json: unknown = {};
      if (body.length > 0) {
        try {
          json = JSON.parse(body.toString('utf8'));
        } catch (e) {
          return sendError(res, 400, ErrorCode.BAD_ARGUMENT, `The body is not JSON: ${(e as Error).message}`, 'Send {"arg": ...} as JSON.');
        }
      }
      const envelope = httpInvokeBodySchema.safeParse(json);
      if (!envelope.success) {
        return sendError(res, 400, ErrorCode.BAD_ARGUMENT, 'The body must be a JSON object {"arg": ...} with no other keys.', 'Send {"arg": ...}, or {} for a request without argument.');
      }
      const reply = await invokeStudio(studio, name, envelope.data.arg);
      const status = reply.ok ? 200 : reply.reason === 'bad-argument' ? 400 : reply.error.code === ErrorCode.INTERNAL ? 500 : 422;
      return sendJson(res, status, stripReason(reply));
    }

    return sendError(res, 404, ErrorCode.NOT_FOUND, `No API route ${url.pathname}.`, `Use POST ${HTTP_INVOKE_PREFIX}<name> or GET ${HTTP_EVENTS_PATH}.`);
  }

  function openEventStream(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    res.write('retry: 2000\n: connected\n\n');
    streams.add(res);
    const unsubscribe = studio.onAny((name, payload) => {
      res.write(`event: ${SSE_EVENT_TYPE}\ndata: ${JSON.stringify({ name, payload })}\n\n`);
    });
    const heartbeat = setInterval(() => res.write(': ping\n\n'), heartbeatMs);
    heartbeat.unref();
    const done = () => {
      clearInterval(heartbeat);
      unsubscribe();
      streams.delete(res);
    };
    req.on('close', done);
    res.on('close', done);
  }

  function serveStatic(req: IncomingMessage, res: ServerResponse, url: URL): void {
    if (req.method !== 'GET' && req.method !== 'HEAD') return methodNotAllowed(res, 'GET, HEAD');
    let pathname: string;
    try {
      pathname = decodeURIComponent(url.pathname);
    } catch {
      return sendText(res, 400, 'Bad path encoding.');
    }
    if (pathname.includes('\0')) return sendText(res, 400, 'Bad path.');
    if (pathname.endsWith('/')) pathname += 'index.html';
    const file = resolveInside(root, pathname);
    if (file === undefined) return sendText(res, 404, 'Not found.');
    const type = CONTENT_TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream';
    const size = statSync(file).size;
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      'Content-Type': type,
      'Content-Length': String(size),
      'Cache-Control': 'no-cache',
    });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    createReadStream(file)
      .on('error', () => res.destroy())
      .pipe(res);
  }

  await new Promise<void>((resolveListen, rejectListen) => {
    const onError = (e: NodeJS.ErrnoException) => {
      server.off('listening', onListening);
      rejectListen(
        new StudioError(
          ErrorCode.BAD_CONFIG,
          `Cannot listen on ${host}:${port}: ${e.code ?? e.message}.`,
          e.code === 'EADDRINUSE'
            ? 'That port is taken: choose another with --port, or --port 0 for a free one.'
            : 'Check --host (an address of this machine) and --port.',
          { cause: e },
        ),
      );
    };
    const onListening = () => {
      server.off('error', onError);
      resolveListen();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(port, host);
  });

  const address = server.address() as AddressInfo;
  const urlHost = address.family === 'IPv6' || host.includes(':') ? `[${address.address}]` : host;
  let closing: Promise<void> | undefined;

  return {
    url: `http://${urlHost}:${address.port}/`,
    port: address.port,
    host,
    studio,
    close() {
      closing ??= new Promise<void>((resolveClose) => {
        for (const res of streams) res.end();
        streams.clear();
        const closed = new Promise<void>((r) => server.close(() => r()));
        server.closeAllConnections();
        // runs this server started checkpoint and stop before the studio closes
        void Promise.all([closed, ownsStudio ? studio.shutdown() : undefined]).then(() => resolveClose());
      });
      return closing;
    },
  };
}

/** The file that `pathname` names inside `root`, or undefined when it is outside, missing or not a file. */
function resolveInside(root: string, pathname: string): string | undefined {
  const candidate = resolve(root, '.' + (pathname.startsWith('/') ? pathname : '/' + pathname));
  if (!isInside(root, candidate)) return undefined;
  let real: string;
  try {
    real = realpathSync(candidate); // a symlink must not lead out either
    if (!statSync(real).isFile()) return undefined;
  } catch {
    return undefined;
  }
  return isInside(root, real) ? real : undefined;
}

function isInside(root: string, p: string): boolean {
  const rel = relative(root, p);
  return rel !== '' && !rel.startsWith('..' + sep) && rel !== '..' && !isAbsolute(rel);
}

function hostnameOf(hostHeader: string | undefined): string {
  if (!hostHeader) return '';
  const m = hostHeader.match(/^\[([^\]]+)\](?::\d+)?$/) ?? hostHeader.match(/^([^:]+)(?::\d+)?$/);
  return m ? m[1] : hostHeader;
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer | 'too-large'> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    req.resume();
    return Promise.resolve('too-large');
  }
  return new Promise((resolveBody, rejectBody) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (chunk: Buffer) => {
      if (over) return;
      size += chunk.length;
      if (size > limit) {
        over = true;
        chunks.length = 0;
        resolveBody('too-large');
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!over) resolveBody(Buffer.concat(chunks));
    });
    req.on('error', rejectBody);
  });
}

function stripReason(reply: InvokeResult & { reason?: string }): InvokeResult {
  return reply.ok ? { ok: true, value: reply.value } : { ok: false, error: reply.error };
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': String(Buffer.byteLength(text)),
    'Cache-Control': 'no-store',
  });
  res.end(text);
}

function sendError(res: ServerResponse, status: number, code: PlainError['code'], message: string, hint: string): void {
  const error: PlainError = { code, message, hint };
  sendJson(res, status, { ok: false, error });
}

function sendText(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': String(Buffer.byteLength(text)),
  });
  res.end(text);
}

function methodNotAllowed(res: ServerResponse, allow: string): void {
  res.setHeader('Allow', allow);
  sendText(res, 405, `Method not allowed; use ${allow}.`);
}
