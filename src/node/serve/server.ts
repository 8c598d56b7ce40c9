/**
 * The HTTP transport (`gpt2-studio serve`): the built renderer as static files, `POST /api/invoke/<name>` onto the
 * Studio service, and `GET /api/events` as Server-Sent Events of its push events. node:http only.
 *
 * Security (a GPU box is often shared, and any local user can reach a loopback port):
 * - There is always a token, on loopback too (as Jupyter does): the given one, or one generated at start. The URL the
 *   server prints carries it (`/?token=...`); the first page load exchanges it for an HttpOnly SameSite=Strict cookie
 *   and redirects to the address without it. Every /api request needs that cookie or `Authorization: Bearer <token>`
 *   (compared in constant time). The static files hold no data and need neither, so a page opened without the token
 *   can say what is missing. The token is never written to the log.
 * - Bound to loopback, the Host header must name a loopback host (against DNS rebinding). A cross-origin request is
 *   refused, and POST bodies must be JSON (so a form on another site cannot post here).
 * - Requests reach the Studio through its handler registry (studio.request), which confines their paths to the workspace and the allowed
 *   folders, and their URLs to public http(s) addresses (src/node/confine/requests.ts).
 * - Requests that change something are rate-limited per client (remote address and credential): a token bucket,
 *   429 with Retry-After when it is empty.
 * - An error answer is {code, message, hint, requestId}: the stack goes to the server's log (stderr) with the
 *   request id, never into a response; stacks inside stored errors (a failed run's) are left out of answers too.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { createReadStream, existsSync, realpathSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { HTTP_EVENTS_PATH, HTTP_INVOKE_PREFIX, RENDERER_CSP, SSE_EVENT_TYPE } from '../../shared/contract';
import { ErrorCode, StudioError, type PlainError } from '../../shared/errors';
import { httpInvokeBodySchema } from '../../shared/schemas';
import { Studio } from '../studio';

export interface ServerOptions {
  /** the workspace folder (resolveHome) */
  home: string;
  /** interface to bind. Default 127.0.0.1 */
  host?: string;
  /** 0 picks a free port. Default 0 */
  port?: number;
  /** the token every /api request must carry (at least 16 characters); default: a random one, made at start */
  token?: string;
  /** the built renderer (out/renderer) */
  rendererDir: string;
  /** a Studio to serve; by default one is made for `home` (and closed with the server) */
  studio?: Studio;
  /** the largest request body accepted, in bytes. Default 1 MiB */
  maxBodyBytes?: number;
  /** interval of SSE keep-alive comments. Default 25 s */
  heartbeatMs?: number;
  /**
   * requests that change something, per client: `requests` at once, refilled over `windowMs` (a token bucket).
   * Default 30 per 10 s; false turns it off.
   */
  rateLimit?: RateLimit | false;
  /** where error lines go (with their request id). Default stderr */
  log?: (line: string) => void;
}

export interface RateLimit {
  requests: number;
  windowMs: number;
}

export const DEFAULT_RATE_LIMIT: RateLimit = { requests: 30, windowMs: 10_000 };

/** The shortest token accepted. */
export const MIN_TOKEN_LENGTH = 16;

export interface RunningServer {
  /** e.g. http://127.0.0.1:41234/ (without the token) */
  url: string;
  /** the address to open: `url` with ?token=...; print it once, to the person who started the server */
  openUrl: string;
  /** the token (given, or generated) */
  token: string;
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
  const token = opts.token ?? randomBytes(24).toString('base64url');
  const maxBody = opts.maxBodyBytes ?? DEFAULT_MAX_BODY;
  const heartbeatMs = opts.heartbeatMs ?? 25_000;
  const log = opts.log ?? ((line: string) => process.stderr.write(line + '\n'));
  const limiter = opts.rateLimit === false ? undefined : new RateLimiter(opts.rateLimit ?? DEFAULT_RATE_LIMIT);
  // Bound to loopback, only loopback names may reach it (a rebinding attack comes with the attacker's Host).
  const loopbackOnly = isLoopbackHost(host);

  if (token.length < MIN_TOKEN_LENGTH || /\s/.test(token)) {
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `The token is too short or holds spaces (${token.length} characters).`,
      `Use at least ${MIN_TOKEN_LENGTH} characters without spaces, e.g. the output of \`openssl rand -hex 16\`, or leave --token out to have one made.`,
    );
  }
  if (limiter && (!(limiter.limit.requests >= 1) || !(limiter.limit.windowMs > 0))) {
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `Bad rate limit ${limiter.limit.requests} per ${limiter.limit.windowMs} ms.`,
      'Give at least 1 request per a positive time, e.g. 30 per 10 s.',
    );
  }
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `Bad port ${port}.`,
      'Give a port from 0 to 65535 (0 picks a free one).',
    );
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
  // The cookie holds a value derived from the token, not the token. Its name carries the port: cookies are not
  // kept apart by port, and two servers on one host must not overwrite each other's.
  const cookieValue = createHash('sha256').update(`gpt2-studio session\0${token}`, 'utf8').digest('base64url');
  let cookieName = 'gpt2-studio';

  const server: Server = createServer((req, res) => {
    const requestId = randomBytes(6).toString('hex');
    handle(req, res, requestId).catch((e: unknown) => {
      // The client went away (a page that navigated, a closed tab): normal, nothing to answer or log.
      if (isClientAbort(e)) {
        res.destroy();
        return;
      }
      // A bug in the handler itself: the details go to the log, the answer says where to look.
      log(
        `gpt2-studio serve [${requestId}] ${req.method ?? '?'} ${pathOnly(req.url)}: request failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`,
      );
      if (!res.headersSent) {
        sendError(
          res,
          500,
          requestId,
          ErrorCode.INTERNAL,
          'The server failed to answer this request.',
          `See the server's log for request ${requestId}.`,
        );
      } else {
        res.destroy();
      }
    });
  });

  /** Sends an error answer and writes its line to the log. */
  function fail(req: IncomingMessage, res: ServerResponse, requestId: string, status: number, error: PlainError): void {
    log(
      `gpt2-studio serve [${requestId}] ${req.method ?? '?'} ${pathOnly(req.url)} -> ${status} ${error.code}: ${error.message}`,
    );
    if (error.stack && error.code === ErrorCode.INTERNAL) log(error.stack);
    sendError(res, status, requestId, error.code, error.message, error.hint);
  }

  async function handle(req: IncomingMessage, res: ServerResponse, requestId: string): Promise<void> {
    res.setHeader('X-Request-Id', requestId);
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      return sendText(res, 400, 'Bad request URL.');
    }
    if (loopbackOnly && !isLoopbackHost(hostnameOf(req.headers.host))) {
      return sendText(res, 403, `Refused: Host "${req.headers.host ?? ''}" is not a loopback name.`);
    }
    if (url.pathname === '/api' || url.pathname.startsWith('/api/')) return handleApi(req, res, url, requestId);
    if (url.searchParams.has('token')) return exchangeToken(req, res, url);
    return serveStatic(req, res, url);
  }

  /** `/?token=...`: a right token becomes the session cookie, and the address loses it (history, screenshots). */
  function exchangeToken(req: IncomingMessage, res: ServerResponse, url: URL): void {
    if (req.method !== 'GET' && req.method !== 'HEAD') return methodNotAllowed(res, 'GET, HEAD');
    if (!tokenMatches(url.searchParams.get('token') ?? undefined, token)) {
      return sendText(
        res,
        401,
        'The token in this address is wrong. Open the address that `gpt2-studio serve` printed when it started.',
      );
    }
    url.searchParams.delete('token');
    res.writeHead(302, {
      ...SECURITY_HEADERS,
      // one leading slash: "//host" would send the browser to another site
      Location: '/' + url.pathname.replace(/^\/+/, '') + url.search,
      'Set-Cookie': `${cookieName}=${cookieValue}; Path=/; HttpOnly; SameSite=Strict`,
      'Cache-Control': 'no-store',
      'Content-Length': '0',
    });
    res.end();
  }

  /** The caller's credential: the session cookie or a Bearer token; undefined when neither is right. */
  function credentialOf(req: IncomingMessage): string | undefined {
    const bearer = req.headers.authorization?.match(/^Bearer\s+(\S+)\s*$/i)?.[1];
    if (bearer !== undefined && tokenMatches(bearer, token)) return 'bearer';
    const cookie = cookieOf(req.headers.cookie, cookieName);
    if (cookie !== undefined && tokenMatches(cookie, cookieValue)) return 'cookie';
    return undefined;
  }

  async function handleApi(req: IncomingMessage, res: ServerResponse, url: URL, requestId: string): Promise<void> {
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== `http://${req.headers.host ?? ''}`) {
      return fail(req, res, requestId, 403, {
        code: ErrorCode.UNAUTHORIZED,
        message: `Refused a cross-origin request from ${origin}.`,
        hint: 'Open the studio from its own address.',
      });
    }
    const credential = credentialOf(req);
    if (credential === undefined) {
      res.setHeader('WWW-Authenticate', 'Bearer realm="gpt2-studio"');
      return fail(req, res, requestId, 401, {
        code: ErrorCode.UNAUTHORIZED,
        message: 'Missing or wrong token.',
        hint: 'Open the address that `gpt2-studio serve` printed (it carries ?token=...), or send Authorization: Bearer <token>.',
      });
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
        return fail(req, res, requestId, 400, {
          code: ErrorCode.BAD_ARGUMENT,
          message: 'Bad request name encoding.',
          hint: '',
        });
      }
      if (!studio.registry.has(name)) {
        const unknown = studio.registry.parse(name, undefined); // the error that lists the known names
        if (!unknown.ok) return fail(req, res, requestId, 404, unknown.error);
      }
      if (req.method !== 'POST') return methodNotAllowed(res, 'POST');
      const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
      if (type !== 'application/json') {
        return fail(req, res, requestId, 415, {
          code: ErrorCode.BAD_ARGUMENT,
          message: `Expected Content-Type application/json, got "${type}".`,
          hint: 'Send the body as JSON: {"arg": ...}.',
        });
      }
      const body = await readBody(req, maxBody);
      if (body === 'too-large') {
        res.setHeader('Connection', 'close');
        return fail(req, res, requestId, 413, {
          code: ErrorCode.BAD_ARGUMENT,
          message: `The request body is larger than ${maxBody} bytes.`,
          hint: 'Send a smaller request.',
        });
      }
      let json: unknown = {};
      if (body.length > 0) {
        try {
          json = JSON.parse(body.toString('utf8'));
        } catch (e) {
          return fail(req, res, requestId, 400, {
            code: ErrorCode.BAD_ARGUMENT,
            message: `The body is not JSON: ${(e as Error).message}`,
            hint: 'Send {"arg": ...} as JSON.',
          });
        }
      }
      const envelope = httpInvokeBodySchema.safeParse(json);
      if (!envelope.success) {
        return fail(req, res, requestId, 400, {
          code: ErrorCode.BAD_ARGUMENT,
          message: 'The body must be a JSON object {"arg": ...} with no other keys.',
          hint: 'Send {"arg": ...}, or {} for a request without argument.',
        });
      }
      if (limiter && studio.registry.changesSomething(name, envelope.data.arg)) {
        const key = `${req.socket.remoteAddress ?? '?'}\0${credential}`;
        const waitMs = limiter.take(key);
        if (waitMs > 0) {
          const seconds = Math.max(1, Math.ceil(waitMs / 1000));
          res.setHeader('Retry-After', String(seconds));
          return fail(req, res, requestId, 429, {
            code: ErrorCode.RATE_LIMITED,
            message: `Too many requests: this client sent more than ${limiter.limit.requests} changes in ${limiter.limit.windowMs / 1000} s ("${name}" was refused).`,
            hint: `Wait ${seconds} s and try again. The limit is set with \`gpt2-studio serve --rate-limit N/SECONDS\`.`,
          });
        }
      }
      const reply = await studio.request(name, envelope.data.arg);
      if (reply.ok) return sendJson(res, 200, { ok: true, value: reply.value });
      const status =
        reply.reason === 'bad-argument'
          ? 400
          : reply.error.code === ErrorCode.INTERNAL
            ? 500
            : reply.error.code === ErrorCode.FORBIDDEN
              ? 403
              : 422;
      return fail(req, res, requestId, status, reply.error);
    }

    return fail(req, res, requestId, 404, {
      code: ErrorCode.NOT_FOUND,
      message: `No API route ${url.pathname}.`,
      hint: `Use POST ${HTTP_INVOKE_PREFIX}<name> or GET ${HTTP_EVENTS_PATH}.`,
    });
  }

  function openEventStream(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    // A page closes its stream whenever it navigates or reloads: that ends the stream quietly. The socket's errors
    // then (ECONNRESET, EPIPE) are the same closing, so they are listened to and not logged.
    const send = (text: string) => {
      if (!res.destroyed && !res.writableEnded) res.write(text);
    };
    send('retry: 2000\n: connected\n\n');
    streams.add(res);
    const unsubscribe = studio.onAny((name, payload) => {
      send(`event: ${SSE_EVENT_TYPE}\ndata: ${JSON.stringify({ name, payload }, withoutStacks)}\n\n`);
    });
    const heartbeat = setInterval(() => send(': ping\n\n'), heartbeatMs);
    heartbeat.unref();
    const done = () => {
      clearInterval(heartbeat);
      unsubscribe();
      streams.delete(res);
    };
    req.on('close', done);
    res.on('close', done);
    req.on('error', done);
    res.on('error', done);
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
  cookieName = `gpt2-studio-${address.port}`;
  const urlHost = address.family === 'IPv6' || host.includes(':') ? `[${address.address}]` : host;
  const url = `http://${urlHost}:${address.port}/`;
  let closing: Promise<void> | undefined;

  return {
    url,
    openUrl: `${url}?token=${encodeURIComponent(token)}`,
    token,
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
  return m ? m[1]! : hostHeader;
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
    // closed before its end without an error event: the client went away all the same
    req.on('close', () => {
      if (!req.complete) rejectBody(Object.assign(new Error('aborted'), { code: 'ECONNRESET' }));
    });
  });
}

/** Error codes that mean the client closed the connection: a navigation, a closed tab, a cancelled request. */
const CLIENT_GONE = new Set([
  'ECONNRESET',
  'EPIPE',
  'ECONNABORTED',
  'ERR_STREAM_PREMATURE_CLOSE',
  'ERR_STREAM_DESTROYED',
]);

/**
 * Whether an error only says that the client went away before its request was read or answered. That is normal
 * (a page closes its event stream and its pending requests whenever it navigates) and is not logged.
 */
export function isClientAbort(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  const code = (e as NodeJS.ErrnoException).code;
  return (code !== undefined && CLIENT_GONE.has(code)) || e.message === 'aborted';
}

/** The path of a request URL without its query (the query may hold the token: it is never logged). */
function pathOnly(raw: string | undefined): string {
  const p = (raw ?? '/').split('?')[0]!;
  return p.length > 200 ? `${p.slice(0, 200)}…` : p;
}

/** One cookie's value from a Cookie header. */
function cookieOf(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

/**
 * JSON.stringify's replacer for answers: no `stack` at any depth. Errors stored by the service (a failed run's,
 * a failed preparation's) carry the stack of the process that failed, with absolute source paths.
 */
function withoutStacks(key: string, value: unknown): unknown {
  return key === 'stack' ? undefined : value;
}

/**
 * A token bucket per client: `requests` at once, refilled evenly over `windowMs`. Buckets that are full again are
 * dropped when the map grows, so that many clients do not grow it for ever.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    readonly limit: RateLimit,
    private readonly now: () => number = () => Date.now(),
  ) {}

  /** Takes one request from `key`'s bucket: 0 when allowed, else the milliseconds until one is free. */
  take(key: string): number {
    const perMs = this.limit.requests / this.limit.windowMs;
    const t = this.now();
    let b = this.buckets.get(key);
    if (b === undefined) {
      if (this.buckets.size >= 10_000) this.prune(t, perMs);
      b = { tokens: this.limit.requests, at: t };
      this.buckets.set(key, b);
    }
    b.tokens = Math.min(this.limit.requests, b.tokens + (t - b.at) * perMs);
    b.at = t;
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.ceil((1 - b.tokens) / perMs);
  }

  private prune(t: number, perMs: number): void {
    for (const [k, b] of this.buckets) if (b.tokens + (t - b.at) * perMs >= this.limit.requests) this.buckets.delete(k);
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, withoutStacks);
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': String(Buffer.byteLength(text)),
    'Cache-Control': 'no-store',
  });
  res.end(text);
}

function sendError(
  res: ServerResponse,
  status: number,
  requestId: string,
  code: PlainError['code'],
  message: string,
  hint: string,
): void {
  const error: PlainError = { code, message, hint, requestId };
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
