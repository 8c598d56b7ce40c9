/**
 * A loopback HTTP server for the dataset tests (127.0.0.1 only, a free port). It serves fixed bodies with the
 * behaviour downloads must cope with: Range requests (206, 416) and If-Range, a connection dropped after K bytes
 * (with a length, with chunked encoding, or a body without a length that just ends early), forced statuses (401,
 * 403, 404, 429 with Retry-After, 5xx), a server that stalls before or in the body, one that ignores Range, one that
 * answers a Range with the wrong bytes, slow and endless bodies, and a Hugging Face style tree listing (`hfTree`).
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Route {
  body: Buffer;
  contentType?: string;
  /** answer with this status (and no body) every time */
  status?: number;
  /** answer with `status` (and these headers, e.g. Retry-After) for the first `times` requests, then serve */
  failFirst?: { status: number; times: number; headers?: Record<string, string> };
  etag?: string;
  /**
   * send `bytes` bytes of the body, then destroy the socket, for the next `times` requests; with `noLength:
   * 'close'` the response ends normally instead, as a server that closes a body without a length early does
   */
  dropAfter?: { bytes: number; times: number };
  /**
   * send no Content-Length: `chunked` (Node's default without a length) or `close` (the body ends when the
   * connection closes, so a body cut short looks finished to the client)
   */
  noLength?: 'chunked' | 'close';
  /** send `bytes` bytes of the body (0: not even the headers), then send nothing more until the client goes away */
  stallAfter?: { bytes: number; times: number };
  /**
   * answer the next `times` Range requests with a wrong 206: `shift` sends the bytes from 1000 further on (and says
   * so), `garbage` a Content-Range that is not one, `total` another total size
   */
  badRange?: { kind: 'shift' | 'garbage' | 'total'; times: number };
  /** after the body, keep sending `endless` bytes of filler, without a length, until the client goes away */
  endless?: boolean;
  /** ignore Range headers (always 200 with the whole body) */
  noRange?: boolean;
  /** wait this long between 16 KiB chunks of the body */
  chunkDelayMs?: number;
  headers?: Record<string, string>;
}

export interface SeenRequest {
  method: string;
  path: string;
  range?: string;
  ifRange?: string;
  authorization?: string;
}

export interface Loopback {
  /** http://127.0.0.1:PORT */
  url: string;
  routes: Map<string, Route>;
  requests: SeenRequest[];
  close(): Promise<void>;
}

export function sha256(b: Buffer | Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

/** The JSON body of `GET /api/datasets/<repo>/tree/main/<folder>` for these files (LFS entries, as the Hub lists parquet). */
export function hfTree(files: Array<{ path: string; body: Buffer }>): Buffer {
  return Buffer.from(
    JSON.stringify([
      {
        type: 'directory',
        oid: '0'.repeat(40),
        size: 0,
        path: files[0]?.path.split('/').slice(0, -1).join('/') + '/sub',
      },
      ...files.map((f) => ({
        type: 'file',
        oid: createHash('sha1').update(f.body).digest('hex'),
        size: f.body.length,
        lfs: { oid: sha256(f.body), size: f.body.length, pointerSize: 134 },
        path: f.path,
      })),
    ]),
  );
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function startLoopback(routes: Record<string, Route> = {}): Promise<Loopback> {
  const table = new Map(Object.entries(routes));
  const requests: SeenRequest[] = [];
  const sockets = new Set<import('node:net').Socket>();
  const server = http.createServer((req, res) => {
    void handle(req, res);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    requests.push({
      method: req.method ?? 'GET',
      path,
      range: req.headers.range,
      ifRange: req.headers['if-range'] as string | undefined,
      authorization: req.headers.authorization,
    });
    const route = table.get(path);
    if (!route) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    if (route.status !== undefined) {
      res.writeHead(route.status, { 'content-type': 'text/plain' }).end(`status ${route.status}`);
      return;
    }
    if (route.failFirst && route.failFirst.times > 0) {
      route.failFirst.times--;
      res
        .writeHead(route.failFirst.status, { 'content-type': 'text/plain', ...route.failFirst.headers })
        .end('try again');
      return;
    }
    let stall: number | undefined;
    if (route.stallAfter && route.stallAfter.times > 0) {
      route.stallAfter.times--;
      stall = route.stallAfter.bytes;
      if (stall === 0) return; // no headers either: the request just hangs (the socket goes at close())
    }
    const body = route.body;
    const headers: Record<string, string> = {
      'content-type': route.contentType ?? 'application/octet-stream',
      'accept-ranges': 'bytes',
      ...route.headers,
    };
    if (route.etag) headers.etag = route.etag;
    let start = 0;
    let end = body.length - 1;
    let status = 200;
    const range = req.headers.range;
    const ifRange = req.headers['if-range'];
    if (range && !route.noRange && (!ifRange || ifRange === route.etag)) {
      const m = /^bytes=(\d+)-(\d*)$/.exec(range);
      if (m) {
        start = Number(m[1]);
        if (m[2] !== '') end = Math.min(end, Number(m[2]));
        if (start >= body.length) {
          res.writeHead(416, { 'content-range': `bytes */${body.length}` }).end();
          return;
        }
        status = 206;
        headers['content-range'] = `bytes ${start}-${end}/${body.length}`;
        if (route.badRange && route.badRange.times > 0) {
          route.badRange.times--;
          if (route.badRange.kind === 'shift') {
            start = Math.min(body.length - 1, start + 1000);
            headers['content-range'] = `bytes ${start}-${end}/${body.length}`;
          } else if (route.badRange.kind === 'garbage') {
            headers['content-range'] = 'bytes=oops';
          } else {
            headers['content-range'] = `bytes ${start}-${end}/${body.length + 5}`;
          }
        }
      }
    }
    const slice = body.subarray(start, end + 1);
    if (route.noLength === 'close' || route.endless) {
      // no length and no chunked encoding: the body ends when the connection closes
      res.useChunkedEncodingByDefault = false;
      headers.connection = 'close';
    } else if (route.noLength !== 'chunked') {
      headers['content-length'] = String(slice.length);
    }
    res.writeHead(status, headers);
    let limit = slice.length;
    let drop = false;
    if (route.dropAfter && route.dropAfter.times > 0) {
      route.dropAfter.times--;
      limit = Math.min(limit, route.dropAfter.bytes);
      drop = route.noLength !== 'close';
    }
    if (stall !== undefined) limit = Math.min(limit, stall);
    const CHUNK = 16 * 1024;
    for (let o = 0; o < limit; o += CHUNK) {
      const part = slice.subarray(o, Math.min(limit, o + CHUNK));
      await new Promise<void>((resolve) => res.write(part, () => resolve()));
      if (route.chunkDelayMs) await sleep(route.chunkDelayMs);
      if (res.destroyed) return;
    }
    if (drop) {
      res.socket?.destroy();
      return;
    }
    if (stall !== undefined) return; // the rest never comes; close() ends the socket
    if (route.endless) {
      const filler = Buffer.alloc(CHUNK, 0x61);
      let closed = false;
      const gone = new Promise<void>((resolve) => {
        res.once('close', () => {
          closed = true;
          resolve();
        });
      });
      while (!closed && !res.destroyed) {
        await Promise.race([new Promise<void>((resolve) => res.write(filler, () => resolve())), gone]);
      }
      return;
    }
    res.end();
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    routes: table,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
