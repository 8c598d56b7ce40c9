/**
 * The rendezvous of a multi-node run: a small TCP key-value store that node 0's launcher hosts and every node's
 * launcher joins, as torchrun's store does. It carries only small JSON: the run's config and start state, the
 * communicator id, the rank map, dataset manifest hashes, heartbeats and aborts (never tensors).
 *
 * Wire format: newline-delimited JSON over TCP, one message per line, each line at most MAX_LINE_BYTES (a longer
 * one closes the connection with an error). Every message is checked against its schema; one that does not pass
 * closes the connection too. The messages, by their `t`:
 *
 *   client -> server
 *     join       {t, v: 1, node: {nodeRank, host, ranks}}   first message; answered with `joined` or `error`
 *     set        {t, key, value}
 *     get        {t, id, key}                               answered with `value` once the key is set
 *     cancel     {t, id}                                    the client gave up on a get
 *     heartbeat  {t, data: {step, tokPerSec, ...}}
 *     ping       {t}                                        keepalive between heartbeats
 *     abort      {t, reason}                                this node ends the run: every other node hears it
 *     leave      {t}                                        a clean end; the connection closes after it
 *   server -> client
 *     joined     {t, node, lostAfterMs}
 *     value      {t, id, key, value}
 *     abort      {t, reason}
 *     ping       {t}
 *     error      {t, error: PlainError}                     then the server closes the connection
 *
 * A node is lost when its connection closes before it said `leave`, or when nothing (heartbeat or ping) came from
 * it for `lostAfterMs`. Clients ping every lostAfterMs / 4, so a node is lost by silence only when its process is
 * stuck or the network between the hosts is down.
 *
 * Security: there is no authentication beyond the address the server binds to. Anyone who reaches the port can
 * read the run's config and abort it, as with torchrun's TCPStore: the rendezvous port must be reachable only
 * within the cluster (a private network or a firewall rule), and 127.0.0.1 keeps it on this machine.
 */
import net from 'node:net';
import { z } from 'zod';
import { ErrorCode, StudioError, type PlainError } from '../../shared/errors';

/** The longest line either side accepts (a run's config and trainer state fit many times over). */
export const MAX_LINE_BYTES = 1024 * 1024;
export const DEFAULT_LOST_AFTER_MS = 20_000;
export const DEFAULT_CONNECT_TIMEOUT_MS = 60_000;
const PROTOCOL_VERSION = 1;
/** How long a connection may stay open without joining. */
const JOIN_WITHIN_MS = 10_000;

export interface NodeState {
  node: number;
  host: string;
  ranks: number[];
  joinedAt: number;
  /** the last sign of life: a heartbeat, a ping, or (node 0) setLocal */
  lastHeartbeat: number;
  step: number | null;
  tokPerSec: number | null;
  status: 'running' | 'lost' | 'left';
  /** the other fields of the node's last heartbeat, if it sent any */
  extra?: Record<string, unknown>;
}

export interface NodeInfo {
  nodeRank: number;
  host: string;
  ranks: number[];
}

export interface HeartbeatData {
  step: number;
  tokPerSec: number | null;
  [more: string]: unknown;
}

// ---- messages ----

const key = z.string().min(1).max(512);
const nodeInfo = z.object({
  nodeRank: z.number().int().min(0).max(1_000_000),
  host: z.string().min(1).max(255),
  ranks: z.array(z.number().int().min(0)).max(1_000_000),
});
const heartbeat = z.looseObject({ step: z.number().finite().min(0), tokPerSec: z.number().finite().nullable() });

const ClientMessage = z.discriminatedUnion('t', [
  z.object({ t: z.literal('join'), v: z.number().int(), node: nodeInfo }),
  z.object({ t: z.literal('set'), key, value: z.unknown() }),
  z.object({ t: z.literal('get'), id: z.number().int(), key }),
  z.object({ t: z.literal('cancel'), id: z.number().int() }),
  z.object({ t: z.literal('heartbeat'), data: heartbeat }),
  z.object({ t: z.literal('ping') }),
  z.object({ t: z.literal('abort'), reason: z.string().max(10_000) }),
  z.object({ t: z.literal('leave') }),
]);
type ClientMessage = z.infer<typeof ClientMessage>;

const plainError = z.object({ code: z.string(), message: z.string(), hint: z.string() });
const ServerMessage = z.discriminatedUnion('t', [
  z.object({ t: z.literal('joined'), node: z.number().int(), lostAfterMs: z.number().int().positive() }),
  z.object({ t: z.literal('value'), id: z.number().int(), key, value: z.unknown() }),
  z.object({ t: z.literal('abort'), reason: z.string() }),
  z.object({ t: z.literal('ping') }),
  z.object({ t: z.literal('error'), error: plainError }),
]);
type ServerMessage = z.infer<typeof ServerMessage>;

/** One message as a line; throws when it would be longer than MAX_LINE_BYTES. */
function lineOf(m: unknown, what: string): string {
  const line = JSON.stringify(m) + '\n';
  const bytes = Buffer.byteLength(line);
  if (bytes > MAX_LINE_BYTES)
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `${what} is ${(bytes / 1024 / 1024).toFixed(1)} MiB as JSON; the rendezvous carries at most 1 MiB a message.`,
      'The rendezvous is for small facts (config, ids, hashes): pass large data another way.',
    );
  return line;
}

/**
 * Splits a byte stream into lines. A line longer than `max` bytes (its newline not counted) is an error: the
 * reader says so once and keeps nothing more.
 */
class LineReader {
  private parts: Buffer[] = [];
  private size = 0;
  private failed = false;
  constructor(
    private readonly max: number,
    private readonly onLine: (line: string) => void,
    private readonly onTooLong: () => void,
  ) {}
  push(chunk: Buffer): void {
    let start = 0;
    while (!this.failed) {
      const nl = chunk.indexOf(10, start);
      if (nl < 0) {
        this.size += chunk.length - start;
        if (this.size > this.max) return this.fail();
        if (start < chunk.length) this.parts.push(chunk.subarray(start));
        return;
      }
      const piece = chunk.subarray(start, nl);
      if (this.size + piece.length > this.max) return this.fail();
      const line = this.parts.length ? Buffer.concat([...this.parts, piece]).toString('utf8') : piece.toString('utf8');
      this.parts = [];
      this.size = 0;
      start = nl + 1;
      if (line.trim()) this.onLine(line);
    }
  }
  private fail(): void {
    this.failed = true;
    this.parts = [];
    this.onTooLong();
  }
}

/** Parses one line against a schema; null (with the reason) when it is not JSON or not such a message. */
function parseLine<T>(schema: z.ZodType<T>, line: string): { ok: true; m: T } | { ok: false; why: string } {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    return { ok: false, why: 'a line that is not JSON' };
  }
  const r = schema.safeParse(raw);
  if (!r.success) {
    const t = (raw as { t?: unknown } | null)?.t;
    return { ok: false, why: `a message that does not fit the protocol (${typeof t === 'string' ? t : 'no type'})` };
  }
  return { ok: true, m: r.data };
}

/** "60 s", "0.5 s" */
function secs(ms: number): string {
  return ms >= 10_000 ? `${Math.round(ms / 1000)} s` : `${Number((ms / 1000).toFixed(1))} s`;
}

function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** A positive whole number of milliseconds from the environment, or undefined when the variable is unset. */
function envMs(name: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v.trim() === '') return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n <= 0)
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `${name}=${v} is not a whole number of milliseconds.`,
      `Set ${name} to a number of milliseconds (e.g. 60000), or unset it.`,
    );
  return n;
}

/** What a socket error says, in words. */
function reasonOf(e: unknown): string {
  const code = (e as { code?: string } | null)?.code;
  switch (code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ETIMEDOUT':
      return 'timed out';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'host unreachable';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'host name not found';
    case 'ECONNRESET':
      return 'connection reset';
    default:
      return e instanceof Error ? e.message : String(e);
  }
}

// ---- server ----

interface Conn {
  socket: net.Socket;
  node: NodeState | null;
  /** the gets this connection waits on: id -> key */
  gets: Map<number, string>;
  /** the connection is going away (after leave, an error, or a loss) */
  closing: boolean;
}

export interface RendezvousServerOptions {
  /**
   * A node is lost after this long without a word from it. Default: GPT2_STUDIO_NODE_TIMEOUT_MS, or 20 000. The
   * clients ping 4 times in that time.
   */
  lostAfterMs?: number;
}

/** Node 0's side: the store, the list of nodes, and their liveness. */
export class RendezvousServer {
  private readonly values = new Map<string, unknown>();
  /** local gets (server.get) waiting for a key */
  private readonly waiters = new Map<string, Set<(v: unknown) => void>>();
  private readonly conns = new Set<Conn>();
  private readonly states = new Map<number, NodeState>();
  private readonly joinCbs: ((n: NodeState) => void)[] = [];
  private readonly heartbeatCbs: ((n: NodeState) => void)[] = [];
  private readonly lostCbs: ((n: NodeState, reason: string) => void)[] = [];
  private readonly abortCbs: ((reason: string, n: NodeState) => void)[] = [];
  private aborted: string | null = null;
  private closed = false;
  private readonly timer: NodeJS.Timeout;
  private readonly localRejects = new Set<(e: Error) => void>();

  private constructor(
    private readonly server: net.Server,
    readonly host: string,
    readonly port: number,
    readonly lostAfterMs: number,
  ) {
    server.on('connection', (s) => this.accept(s));
    // liveness: every remote node must be heard from within lostAfterMs; clients are pinged as often as they ping
    const every = Math.max(25, Math.min(1000, Math.floor(lostAfterMs / 4)));
    this.timer = setInterval(() => this.tick(), every);
    this.timer.unref();
  }

  /**
   * Listens on host:port (port 0: a free port, see `port`). Binds only to `host`: 127.0.0.1 keeps the rendezvous on
   * this machine. A port in use, or an address that is not this machine's, is a StudioError that says what to do.
   */
  static async listen(host: string, port: number, opts: RendezvousServerOptions = {}): Promise<RendezvousServer> {
    const lostAfterMs = opts.lostAfterMs ?? envMs('GPT2_STUDIO_NODE_TIMEOUT_MS') ?? DEFAULT_LOST_AFTER_MS;
    const server = net.createServer({ noDelay: true });
    await new Promise<void>((resolve, reject) => {
      const onError = (e: NodeJS.ErrnoException) => reject(listenError(e, host, port));
      server.once('error', onError);
      server.listen({ host, port, exclusive: true }, () => {
        server.off('error', onError);
        resolve();
      });
    });
    const bound = (server.address() as net.AddressInfo).port;
    return new RendezvousServer(server, host, bound, lostAfterMs);
  }

  /** Sets a key (a small JSON value) and wakes every get that waits on it, here and on the nodes. */
  set(k: string, value: unknown): void {
    if (this.closed) throw closedError();
    key.parse(k);
    // checked here so that no node receives a line it would refuse
    lineOf({ t: 'value', id: 0, key: k, value }, `The value of "${k}"`);
    this.values.set(k, value);
    const local = this.waiters.get(k);
    if (local) {
      this.waiters.delete(k);
      for (const w of local) w(value);
    }
    for (const c of this.conns) {
      for (const [id, want] of c.gets) {
        if (want !== k) continue;
        c.gets.delete(id);
        this.send(c, { t: 'value', id, key: k, value });
      }
    }
  }

  /** The value of a key, once some node (or this one) sets it; a StudioError after timeoutMs. */
  get(k: string, timeoutMs: number): Promise<unknown> {
    if (this.closed) return Promise.reject(closedError());
    if (this.values.has(k)) return Promise.resolve(this.values.get(k));
    return new Promise((resolve, reject) => {
      const set = this.waiters.get(k) ?? new Set();
      this.waiters.set(k, set);
      const done = () => {
        clearTimeout(timer);
        set.delete(onValue);
        if (set.size === 0 && this.waiters.get(k) === set) this.waiters.delete(k);
        this.localRejects.delete(onClose);
      };
      const onValue = (v: unknown) => {
        done();
        resolve(v);
      };
      const onClose = (e: Error) => {
        done();
        reject(e);
      };
      const timer = setTimeout(() => {
        done();
        reject(
          new StudioError(
            ErrorCode.NETWORK,
            `The rendezvous at ${hostPort(this.host, this.port)} got no "${k}" within ${secs(timeoutMs)}.`,
            'Check that every node was started, with the same --master-addr and --master-port, and read their logs.',
          ),
        );
      }, timeoutMs);
      set.add(onValue);
      this.localRejects.add(onClose);
    });
  }

  /** Every node: node 0 (once setLocal has been called) and the ones that joined, lost or left ones included. */
  nodes(): NodeState[] {
    return [...this.states.values()].sort((a, b) => a.node - b.node).map(copyOf);
  }

  /**
   * Node 0's own entry: node 0 does not heartbeat over TCP, its launcher updates it here (each call is a sign of
   * life). Fields not given keep their value.
   */
  setLocal(
    s: Pick<NodeState, 'node' | 'host' | 'ranks'> & Partial<Pick<NodeState, 'step' | 'tokPerSec' | 'status'>>,
  ): void {
    const now = Date.now();
    const old = this.states.get(s.node);
    this.states.set(s.node, {
      node: s.node,
      host: s.host,
      ranks: [...s.ranks],
      joinedAt: old?.joinedAt ?? now,
      lastHeartbeat: now,
      step: s.step !== undefined ? s.step : (old?.step ?? null),
      tokPerSec: s.tokPerSec !== undefined ? s.tokPerSec : (old?.tokPerSec ?? null),
      status: s.status ?? old?.status ?? 'running',
    });
  }

  /** A node joined (registered its rank, host and ranks). */
  onJoin(cb: (n: NodeState) => void): () => void {
    return on(this.joinCbs, cb);
  }

  /** A node sent a heartbeat (its step and tok/s moved). Pings do not call this. */
  onHeartbeat(cb: (n: NodeState) => void): () => void {
    return on(this.heartbeatCbs, cb);
  }

  /** A node was lost: its connection closed before it left, or it was silent for lostAfterMs. */
  onLost(cb: (n: NodeState, reason: string) => void): () => void {
    return on(this.lostCbs, cb);
  }

  /** A node aborted the run (RendezvousClient.abort); every other node has been told. */
  onAbort(cb: (reason: string, n: NodeState) => void): () => void {
    return on(this.abortCbs, cb);
  }

  /** Ends the run on every node: each client's onAbort hears `reason` (a node that joins later, at once). */
  abort(reason: string): void {
    if (this.closed) return;
    this.aborted = reason;
    for (const c of this.conns) if (c.node) this.send(c, { t: 'abort', reason });
  }

  /** Closes every connection (the nodes see node 0 gone) and the port. Local gets fail. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    for (const c of this.conns) {
      c.closing = true;
      c.socket.destroy();
    }
    this.conns.clear();
    this.server.close();
    for (const r of [...this.localRejects]) r(closedError());
  }

  private accept(socket: net.Socket): void {
    if (this.closed) return void socket.destroy();
    const c: Conn = { socket, node: null, gets: new Map(), closing: false };
    this.conns.add(c);
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 5_000);
    const joinTimer = setTimeout(() => {
      if (!c.node) this.fatal(c, ErrorCode.NETWORK, 'No join message came within 10 s.', '');
    }, JOIN_WITHIN_MS);
    joinTimer.unref();
    const reader = new LineReader(
      MAX_LINE_BYTES,
      (line) => this.onLine(c, line),
      () =>
        this.fatal(
          c,
          ErrorCode.BAD_DATA,
          'A message of more than 1 MiB reached the rendezvous.',
          'The rendezvous carries small JSON only.',
        ),
    );
    let why = 'its connection to node 0 closed';
    socket.on('data', (b: Buffer) => reader.push(b));
    socket.on('error', (e) => (why = `its connection to node 0 failed (${reasonOf(e)})`));
    socket.on('close', () => {
      clearTimeout(joinTimer);
      this.conns.delete(c);
      // closing the rendezvous ends every connection: that loses no node
      if (!this.closed && c.node && c.node.status === 'running') this.lose(c.node, why);
    });
  }

  private onLine(c: Conn, line: string): void {
    if (c.closing) return;
    const p = parseLine(ClientMessage, line);
    if (!p.ok) return this.fatal(c, ErrorCode.BAD_DATA, `The rendezvous got ${p.why}.`, '');
    const m: ClientMessage = p.m;
    if (!c.node && m.t !== 'join')
      return this.fatal(c, ErrorCode.BAD_DATA, `The rendezvous got "${m.t}" before "join".`, '');
    const now = Date.now();
    if (c.node) c.node.lastHeartbeat = now;
    switch (m.t) {
      case 'join':
        return this.join(c, m.v, m.node);
      case 'set':
        try {
          this.set(m.key, m.value);
        } catch (e) {
          const pe = e instanceof StudioError ? e : null;
          this.fatal(c, pe?.code ?? ErrorCode.BAD_DATA, pe?.message ?? String(e), pe?.hint ?? '');
        }
        return;
      case 'get':
        if (this.values.has(m.key)) this.send(c, { t: 'value', id: m.id, key: m.key, value: this.values.get(m.key) });
        else c.gets.set(m.id, m.key);
        return;
      case 'cancel':
        c.gets.delete(m.id);
        return;
      case 'heartbeat': {
        const n = c.node!;
        const { step, tokPerSec, ...extra } = m.data;
        n.step = step;
        n.tokPerSec = tokPerSec;
        if (Object.keys(extra).length) n.extra = extra;
        else delete n.extra;
        for (const cb of this.heartbeatCbs) cb(copyOf(n));
        return;
      }
      case 'ping':
        return;
      case 'abort': {
        const n = c.node!;
        const reason = `node ${n.node} (${n.host}) aborted the run: ${m.reason}`;
        this.aborted ??= reason;
        for (const o of this.conns) if (o !== c && o.node) this.send(o, { t: 'abort', reason });
        for (const cb of this.abortCbs) cb(reason, copyOf(n));
        return;
      }
      case 'leave':
        c.node!.status = 'left';
        c.closing = true;
        c.socket.end();
        return;
    }
  }

  private join(c: Conn, v: number, info: NodeInfo): void {
    if (c.node) return this.fatal(c, ErrorCode.BAD_DATA, 'The rendezvous got a second "join".', '');
    if (v !== PROTOCOL_VERSION)
      return this.fatal(
        c,
        ErrorCode.BAD_ARGUMENT,
        `Node ${info.nodeRank} (${info.host}) speaks rendezvous protocol ${v}; node 0 speaks ${PROTOCOL_VERSION}.`,
        'Run the same version of gpt2-studio on every node.',
      );
    // a rank whose node was lost or left may join again (its row is replaced); a running one is taken
    const taken = this.states.get(info.nodeRank);
    if (taken && taken.status === 'running')
      return this.fatal(
        c,
        ErrorCode.BAD_ARGUMENT,
        `Node rank ${info.nodeRank} is already in the run (${taken.host} joined as node ${taken.node} at ${new Date(taken.joinedAt).toISOString()}); ${info.host} cannot join as node ${info.nodeRank} too.`,
        'Give every host its own --node-rank, from 0 (the host at --master-addr) to nnodes - 1.',
      );
    const mine = new Set(info.ranks);
    for (const o of this.states.values()) {
      if (o.status !== 'running' || o.node === info.nodeRank) continue;
      const both = o.ranks.filter((r) => mine.has(r));
      if (both.length)
        return this.fatal(
          c,
          ErrorCode.BAD_ARGUMENT,
          `Node ${info.nodeRank} (${info.host}) would run rank${both.length > 1 ? 's' : ''} ${both.join(', ')}, which node ${o.node} (${o.host}) runs.`,
          'Start every node with the same --nnodes and --nproc-per-node, and its own --node-rank.',
        );
    }
    const now = Date.now();
    const node: NodeState = {
      node: info.nodeRank,
      host: info.host,
      ranks: [...info.ranks],
      joinedAt: now,
      lastHeartbeat: now,
      step: null,
      tokPerSec: null,
      status: 'running',
    };
    c.node = node;
    this.states.set(node.node, node);
    this.send(c, { t: 'joined', node: node.node, lostAfterMs: this.lostAfterMs });
    if (this.aborted !== null) this.send(c, { t: 'abort', reason: this.aborted });
    for (const cb of this.joinCbs) cb(copyOf(node));
  }

  private tick(): void {
    const now = Date.now();
    for (const c of [...this.conns]) {
      if (!c.node || c.closing || c.node.status !== 'running') continue;
      if (now - c.node.lastHeartbeat > this.lostAfterMs) {
        c.closing = true;
        c.socket.destroy();
        this.lose(c.node, `no heartbeat for ${secs(now - c.node.lastHeartbeat)}`);
        continue;
      }
      this.send(c, { t: 'ping' });
    }
  }

  private lose(n: NodeState, reason: string): void {
    if (n.status !== 'running') return;
    n.status = 'lost';
    for (const cb of this.lostCbs) cb(copyOf(n), reason);
  }

  private send(c: Conn, m: ServerMessage): void {
    if (c.socket.destroyed || c.socket.writableEnded) return;
    c.socket.write(JSON.stringify(m) + '\n');
  }

  /** Tells the client what was wrong, then closes its connection (a joined node is then lost). */
  private fatal(c: Conn, code: ErrorCode, message: string, hint: string): void {
    if (c.closing) return;
    c.closing = true;
    const error: PlainError = { code, message, hint };
    if (c.node) this.lose(c.node, message.replace(/\.$/, ''));
    c.socket.end(JSON.stringify({ t: 'error', error } satisfies ServerMessage) + '\n');
    // a client that does not read is cut off anyway
    setTimeout(() => c.socket.destroy(), 1_000).unref();
  }
}

/** A node's state as callers get it: a copy, so that they cannot change the server's. */
function copyOf(n: NodeState): NodeState {
  return { ...n, ranks: [...n.ranks], ...(n.extra ? { extra: { ...n.extra } } : {}) };
}

function on<T>(list: T[], cb: T): () => void {
  list.push(cb);
  return () => {
    const i = list.indexOf(cb);
    if (i >= 0) list.splice(i, 1);
  };
}

function closedError(): StudioError {
  return new StudioError(ErrorCode.CANCELLED, 'The rendezvous is closed.', '');
}

function listenError(e: NodeJS.ErrnoException, host: string, port: number): StudioError {
  const at = hostPort(host, port);
  switch (e.code) {
    case 'EADDRINUSE':
      return new StudioError(
        ErrorCode.BAD_ARGUMENT,
        `The rendezvous cannot listen on ${at}: the port is in use.`,
        'Another run or program listens there: pick another --master-port (the same on every node), or stop that program.',
        { cause: e },
      );
    case 'EADDRNOTAVAIL':
      return new StudioError(
        ErrorCode.BAD_ARGUMENT,
        `The rendezvous cannot listen on ${at}: ${host} is not an address of this machine.`,
        'Start node 0 on the host --master-addr names, or set --master-addr to one of its addresses.',
        { cause: e },
      );
    case 'EACCES':
      return new StudioError(
        ErrorCode.BAD_ARGUMENT,
        `The rendezvous cannot listen on ${at}: permission denied.`,
        'Ports below 1024 need privileges: pick a --master-port from 1024 to 65535.',
        { cause: e },
      );
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new StudioError(
        ErrorCode.BAD_ARGUMENT,
        `The rendezvous cannot listen on ${at}: the host name ${host} does not resolve.`,
        'Set --master-addr to an address or host name of this machine.',
        { cause: e },
      );
    default:
      return new StudioError(ErrorCode.NETWORK, `The rendezvous cannot listen on ${at}: ${e.message}.`, '', {
        cause: e,
      });
  }
}

// ---- client ----

export interface RendezvousClientOptions {
  node: NodeInfo;
  /** how long to keep trying to reach node 0 (it may start later). Default: GPT2_STUDIO_RDZV_TIMEOUT_MS, or 60 000 */
  timeoutMs?: number;
  /** how often to ping between heartbeats; default: a quarter of the server's lostAfterMs; 0: never */
  keepaliveMs?: number;
}

interface PendingGet {
  key: string;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/** A node's side: joins node 0's rendezvous, reads and writes keys, heartbeats, and hears aborts. */
export class RendezvousClient {
  private nextId = 1;
  private readonly gets = new Map<number, PendingGet>();
  private readonly abortCbs: ((reason: string) => void)[] = [];
  private readonly lostCbs: ((reason: string) => void)[] = [];
  private aborted: string | null = null;
  private gone: string | null = null;
  /** close() or leave() was called: the end of the connection is no loss */
  private ending = false;
  private lastHeard = Date.now();
  private lastSent = Date.now();
  private readonly timer: NodeJS.Timeout | null;
  private readonly at: string;

  private constructor(
    private readonly socket: net.Socket,
    readonly host: string,
    readonly port: number,
    readonly node: number,
    readonly lostAfterMs: number,
    keepaliveMs: number,
    reader: { setHandler(cb: (m: ServerMessage) => void): void },
    early: ServerMessage[],
  ) {
    this.at = hostPort(host, port);
    reader.setHandler((m) => this.onMessage(m));
    socket.on('close', () => this.onClose());
    this.timer =
      keepaliveMs > 0
        ? setInterval(() => {
            const now = Date.now();
            // node 0 pings as often as we do: silence means it, or the network, is stuck
            if (now - this.lastHeard > this.lostAfterMs) {
              this.lost(`node 0 (${this.at}) is gone (nothing heard for ${secs(now - this.lastHeard)})`);
              socket.destroy();
              return;
            }
            if (now - this.lastSent >= keepaliveMs) this.write({ t: 'ping' });
          }, keepaliveMs)
        : null;
    this.timer?.unref();
    for (const m of early) this.onMessage(m);
  }

  /**
   * Connects to node 0's rendezvous, retrying until timeoutMs (node 0 may start after this node), then joins with
   * this node's rank, host and ranks. Fails with a StudioError when nothing answers in time, when what answers is
   * not a rendezvous, or when node 0 refuses the node (its rank taken, a different version).
   */
  static async connect(host: string, port: number, opts: RendezvousClientOptions): Promise<RendezvousClient> {
    const timeoutMs = opts.timeoutMs ?? envMs('GPT2_STUDIO_RDZV_TIMEOUT_MS') ?? DEFAULT_CONNECT_TIMEOUT_MS;
    nodeInfo.parse(opts.node);
    const at = hostPort(host, port);
    const deadline = Date.now() + timeoutMs;
    const socket = await connectWithRetry(host, port, deadline, timeoutMs);
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 5_000);

    // join, and wait for the answer within what is left of the time
    let handler: ((m: ServerMessage) => void) | null = null;
    const early: ServerMessage[] = [];
    let protocolError: string | null = null;
    const reader = new LineReader(
      MAX_LINE_BYTES,
      (line) => {
        const p = parseLine(ServerMessage, line);
        if (!p.ok) {
          protocolError = `got ${p.why}`;
          socket.destroy();
          return;
        }
        if (handler) handler(p.m);
        else early.push(p.m);
      },
      () => {
        protocolError = 'got a message of more than 1 MiB';
        socket.destroy();
      },
    );
    socket.on('data', (b: Buffer) => reader.push(b));
    socket.on('error', () => {});
    socket.write(lineOf({ t: 'join', v: PROTOCOL_VERSION, node: opts.node } satisfies ClientMessage, 'The join'));

    const joined = await new Promise<Extract<ServerMessage, { t: 'joined' }>>((resolve, reject) => {
      const left = Math.max(deadline - Date.now(), 5_000);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(
          new StudioError(
            ErrorCode.NETWORK,
            `The program at ${at} did not answer as a rendezvous within ${secs(left)}.`,
            'Check --master-port: it must be the port node 0 hosts the rendezvous on.',
          ),
        );
      }, left);
      const check = () => {
        while (early.length) {
          const m = early.shift()!;
          if (m.t === 'joined') {
            clearTimeout(timer);
            socket.off('close', onClose);
            return resolve(m);
          }
          if (m.t === 'error') {
            clearTimeout(timer);
            socket.off('close', onClose);
            socket.destroy();
            return reject(StudioError.fromPlain(m.error as PlainError));
          }
        }
      };
      const onClose = () => {
        clearTimeout(timer);
        check();
        reject(
          new StudioError(
            ErrorCode.NETWORK,
            protocolError
              ? `What answers at ${at} is not a gpt2-studio rendezvous (it ${protocolError}).`
              : `The rendezvous at ${at} closed the connection before this node had joined.`,
            'Check --master-addr and --master-port: they must name node 0 and the port its rendezvous listens on.',
          ),
        );
      };
      socket.on('close', onClose);
      socket.on('data', check);
      check();
    });
    socket.removeAllListeners('data');
    socket.on('data', (b: Buffer) => reader.push(b));
    const keepaliveMs = opts.keepaliveMs ?? Math.max(50, Math.min(5_000, Math.floor(joined.lostAfterMs / 4)));
    return new RendezvousClient(
      socket,
      host,
      port,
      joined.node,
      joined.lostAfterMs,
      keepaliveMs,
      { setHandler: (cb) => (handler = cb) },
      early,
    );
  }

  /** Sets a key on node 0 (a small JSON value; more than 1 MiB throws). Gets after it, anywhere, see it. */
  set(k: string, value: unknown): void {
    this.assertOpen();
    key.parse(k);
    this.write({ t: 'set', key: k, value }, `The value of "${k}"`);
  }

  /** The value of a key, once some node sets it; a StudioError after timeoutMs, when node 0 goes, or on an abort. */
  get(k: string, timeoutMs: number): Promise<unknown> {
    if (this.aborted !== null) return Promise.reject(abortError(this.aborted));
    if (this.gone !== null || this.ending) return Promise.reject(this.goneError());
    key.parse(k);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.gets.delete(id);
        this.write({ t: 'cancel', id });
        reject(
          new StudioError(
            ErrorCode.NETWORK,
            `No "${k}" from the rendezvous at ${this.at} within ${secs(timeoutMs)}.`,
            'Node 0 has not published it yet: check that node 0 and every other node are running, and read their logs.',
          ),
        );
      }, timeoutMs);
      this.gets.set(id, { key: k, resolve, reject, timer });
      this.write({ t: 'get', id, key: k });
    });
  }

  /** This node's step and tok/s (and any other small fields) for node 0. */
  heartbeat(data: HeartbeatData): void {
    if (this.gone !== null || this.ending) return;
    this.write({ t: 'heartbeat', data }, 'The heartbeat');
  }

  /** Ends the run on every node: node 0 and the others hear `reason` (as "node K (host) aborted the run: ..."). */
  abort(reason: string): void {
    if (this.gone !== null || this.ending) return;
    this.write({ t: 'abort', reason: reason.slice(0, 10_000) });
  }

  /** A clean end: node 0 marks this node as left (not lost), and the connection closes. */
  leave(): void {
    if (this.gone !== null || this.ending) return;
    this.write({ t: 'leave' });
    this.end();
  }

  /** Node 0 (or another node) ended the run. */
  onAbort(cb: (reason: string) => void): () => void {
    if (this.aborted !== null) {
      const reason = this.aborted;
      queueMicrotask(() => cb(reason));
    }
    return on(this.abortCbs, cb);
  }

  /** The connection to node 0 dropped without a clean close: "node 0 (host:port) is gone". */
  onLost(cb: (reason: string) => void): () => void {
    return on(this.lostCbs, cb);
  }

  /** Closes the connection (without `leave`: node 0 counts the node as lost unless it left first). */
  close(): void {
    this.end();
  }

  private end(): void {
    if (this.ending) return;
    this.ending = true;
    if (this.timer) clearInterval(this.timer);
    // what was written (a leave, a last set) goes out before the FIN; a peer that does not read is cut off
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 2_000).unref();
    this.failGets(
      new StudioError(ErrorCode.CANCELLED, `The connection to the rendezvous at ${this.at} was closed.`, ''),
    );
  }

  private onMessage(m: ServerMessage): void {
    this.lastHeard = Date.now();
    switch (m.t) {
      case 'value': {
        const g = this.gets.get(m.id);
        if (!g) return;
        this.gets.delete(m.id);
        clearTimeout(g.timer);
        g.resolve(m.value);
        return;
      }
      case 'abort':
        if (this.aborted !== null) return;
        this.aborted = m.reason;
        this.failGets(abortError(m.reason));
        for (const cb of this.abortCbs) cb(m.reason);
        return;
      case 'error':
        this.lost(`node 0 (${this.at}) closed the connection: ${m.error.message.replace(/\.$/, '')}`);
        return;
      case 'joined':
      case 'ping':
        return;
    }
  }

  private onClose(): void {
    if (this.timer) clearInterval(this.timer);
    if (!this.ending) this.lost(`node 0 (${this.at}) is gone`);
  }

  private lost(reason: string): void {
    if (this.gone !== null || this.ending) return;
    this.gone = reason;
    if (this.timer) clearInterval(this.timer);
    this.failGets(this.goneError());
    for (const cb of this.lostCbs) cb(reason);
  }

  private goneError(): StudioError {
    return new StudioError(
      ErrorCode.PEER_FAILED,
      this.gone !== null
        ? `${this.gone[0]!.toUpperCase()}${this.gone.slice(1)}.`
        : `The rendezvous at ${this.at} is closed.`,
      'Start node 0 again (resume the run there), then this node with the same flags.',
    );
  }

  private failGets(e: Error): void {
    for (const [id, g] of this.gets) {
      clearTimeout(g.timer);
      this.gets.delete(id);
      g.reject(e);
    }
  }

  private assertOpen(): void {
    if (this.aborted !== null) throw abortError(this.aborted);
    if (this.gone !== null || this.ending) throw this.goneError();
  }

  private write(m: ClientMessage, what = 'A message'): void {
    if (this.socket.destroyed || this.socket.writableEnded) return;
    this.socket.write(lineOf(m, what));
    this.lastSent = Date.now();
  }
}

function abortError(reason: string): StudioError {
  return new StudioError(ErrorCode.PEER_FAILED, `The run was aborted: ${reason}.`, 'See node 0 for why.');
}

/** Connects, retrying refused or unreachable attempts until the deadline; a StudioError that names why at the end. */
async function connectWithRetry(host: string, port: number, deadline: number, timeoutMs: number): Promise<net.Socket> {
  let last = 'no answer';
  let pause = 100;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) break;
    try {
      return await new Promise<net.Socket>((resolve, reject) => {
        const s = net.createConnection({ host, port });
        // one attempt may hang (a firewall that drops): give it at most 5 s, or what is left
        const t = setTimeout(
          () => {
            s.destroy();
            reject(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' }));
          },
          Math.min(left, 5_000),
        );
        s.once('connect', () => {
          clearTimeout(t);
          s.removeAllListeners('error');
          resolve(s);
        });
        s.once('error', (e) => {
          clearTimeout(t);
          s.destroy();
          reject(e);
        });
      });
    } catch (e) {
      last = reasonOf(e);
    }
    const wait = Math.min(pause, deadline - Date.now());
    if (wait <= 0) break;
    await new Promise((r) => setTimeout(r, wait));
    pause = Math.min(pause * 2, 1_000);
  }
  throw new StudioError(
    ErrorCode.NETWORK,
    `No rendezvous at ${hostPort(host, port)} after ${secs(timeoutMs)} (${last}).`,
    'Start node 0 first with the same --master-addr and --master-port, and check that the port is open between the hosts.',
  );
}
