/**
 * The multi-node rendezvous (train/rendezvous.ts) on loopback with free ports: keys (set, get that waits, its
 * timeout), joins and the node list, heartbeats, a clean leave, lost nodes (a killed process, silence), aborts
 * both ways, node 0 gone, the errors a person meets (nothing at the port, the port in use, a rank taken, a program
 * that is not a rendezvous) and the line cap.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { StudioError } from '../src/shared/errors';
import {
  MAX_LINE_BYTES,
  RendezvousClient,
  RendezvousServer,
  type NodeInfo,
  type NodeState,
} from '../src/node/train/rendezvous';

const HOST = '127.0.0.1';
const MODULE = fileURLToPath(new URL('../src/node/train/rendezvous.ts', import.meta.url));

const servers: RendezvousServer[] = [];
const clients: RendezvousClient[] = [];
const children: ChildProcess[] = [];
const sockets: net.Socket[] = [];
const others: net.Server[] = [];

afterEach(() => {
  for (const c of clients.splice(0)) c.close();
  for (const s of servers.splice(0)) s.close();
  for (const ch of children.splice(0)) if (ch.exitCode === null && ch.signalCode === null) ch.kill('SIGKILL');
  for (const s of sockets.splice(0)) s.destroy();
  for (const o of others.splice(0)) o.close();
  delete process.env.GPT2_STUDIO_NODE_TIMEOUT_MS;
  delete process.env.GPT2_STUDIO_RDZV_TIMEOUT_MS;
});

async function serve(lostAfterMs = 20_000): Promise<RendezvousServer> {
  const s = await RendezvousServer.listen(HOST, 0, { lostAfterMs });
  servers.push(s);
  return s;
}

async function join(
  s: RendezvousServer,
  nodeRank: number,
  opts: { ranks?: number[]; keepaliveMs?: number; host?: string } = {},
): Promise<RendezvousClient> {
  const node: NodeInfo = { nodeRank, host: opts.host ?? `host-${nodeRank}`, ranks: opts.ranks ?? [nodeRank] };
  const c = await RendezvousClient.connect(HOST, s.port, { node, timeoutMs: 5_000, keepaliveMs: opts.keepaliveMs });
  clients.push(c);
  return c;
}

/** A port nothing listens on (free a moment ago). */
async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, HOST, r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** A raw TCP connection, with the lines it receives and a promise of its end. */
async function raw(port: number) {
  const s = net.createConnection({ host: HOST, port });
  sockets.push(s);
  await new Promise<void>((r) => s.once('connect', () => r()));
  let text = '';
  s.on('data', (b: Buffer) => (text += b.toString()));
  s.on('error', () => {});
  const closed = new Promise<void>((r) => s.once('close', () => r()));
  return {
    socket: s,
    closed,
    lines: () =>
      text
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

async function rejection(p: Promise<unknown>): Promise<StudioError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(StudioError);
    return e as StudioError;
  }
  throw new Error('expected a rejection');
}

function until<T>(register: (cb: (v: T) => void) => void, ms: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
    register((v) => {
      clearTimeout(t);
      resolve(v);
    });
  });
}

describe('rendezvous: keys', () => {
  it('get waits until the key is set, whichever side sets it', async () => {
    const s = await serve();
    const a = await join(s, 1);
    const b = await join(s, 2);
    s.set('run', { id: 'r1', config: { world_size: 4 } });
    expect(await a.get('run', 1_000)).toEqual({ id: 'r1', config: { world_size: 4 } });
    // set after the get started
    const later = b.get('comm', 2_000);
    setTimeout(() => s.set('comm', { id: 'nccl:abc', engine: 'native-cuda' }), 50);
    expect(await later).toEqual({ id: 'nccl:abc', engine: 'native-cuda' });
    // a node sets, node 0 and another node read
    const onServer = s.get('manifest/1', 2_000);
    const onOther = b.get('manifest/1', 2_000);
    a.set('manifest/1', { hash: 'ff', host: 'host-1' });
    expect(await onServer).toEqual({ hash: 'ff', host: 'host-1' });
    expect(await onOther).toEqual({ hash: 'ff', host: 'host-1' });
    // a key set twice reads its last value
    s.set('go', false);
    s.set('go', true);
    expect(await a.get('go', 1_000)).toBe(true);
  });

  it('a get that nothing answers fails after its timeout, naming the key', async () => {
    const s = await serve();
    const a = await join(s, 1);
    const t0 = Date.now();
    const e = await rejection(a.get('never', 200));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(190);
    expect(e.code).toBe('NETWORK');
    expect(e.message).toBe(`No "never" from the rendezvous at 127.0.0.1:${s.port} within 0.2 s.`);
    const se = await rejection(s.get('never', 100));
    expect(se.message).toContain('got no "never" within 0.1 s');
    // the connection still works after a timed-out get
    s.set('never', 1);
    expect(await a.get('never', 1_000)).toBe(1);
  });

  it('refuses a value over the line cap before sending it', async () => {
    const s = await serve();
    const a = await join(s, 1);
    const big = 'x'.repeat(MAX_LINE_BYTES);
    expect(() => a.set('big', big)).toThrow(/at most 1 MiB/);
    expect(() => s.set('big', big)).toThrow(/at most 1 MiB/);
    a.set('small', 1);
    expect(await s.get('small', 1_000)).toBe(1);
  });
});

describe('rendezvous: nodes', () => {
  it('lists node 0 (setLocal) and every node that joined, with heartbeats and a clean leave', async () => {
    const s = await serve();
    const joined: NodeState[] = [];
    const beats: NodeState[] = [];
    const lost: string[] = [];
    s.onJoin((n) => joined.push(n));
    s.onHeartbeat((n) => beats.push(n));
    s.onLost((n, why) => lost.push(`${n.node}: ${why}`));
    s.setLocal({ node: 0, host: 'head', ranks: [0, 1] });
    const a = await join(s, 1, { ranks: [2, 3] });
    await join(s, 2, { ranks: [4, 5] });
    expect(joined.map((n) => [n.node, n.host, n.ranks])).toEqual([
      [1, 'host-1', [2, 3]],
      [2, 'host-2', [4, 5]],
    ]);
    expect(a.node).toBe(1);
    const nodes = s.nodes();
    expect(nodes.map((n) => [n.node, n.host, n.ranks, n.status, n.step])).toEqual([
      [0, 'head', [0, 1], 'running', null],
      [1, 'host-1', [2, 3], 'running', null],
      [2, 'host-2', [4, 5], 'running', null],
    ]);

    const before = s.nodes()[1]!.lastHeartbeat;
    await new Promise((r) => setTimeout(r, 20));
    a.heartbeat({ step: 7, tokPerSec: 1234.5, gpuUtil: 98 });
    const beat = await until<NodeState>((cb) => s.onHeartbeat(cb), 1_000, 'heartbeat');
    expect([beat.node, beat.step, beat.tokPerSec]).toEqual([1, 7, 1234.5]);
    const one = s.nodes()[1]!;
    expect([one.step, one.tokPerSec, one.extra]).toEqual([7, 1234.5, { gpuUtil: 98 }]);
    expect(one.lastHeartbeat).toBeGreaterThan(before);
    expect(beats).toHaveLength(1);

    // node 0's own row moves through setLocal
    s.setLocal({ node: 0, host: 'head', ranks: [0, 1], step: 9, tokPerSec: 2000 });
    expect(s.nodes()[0]).toMatchObject({ step: 9, tokPerSec: 2000, status: 'running' });

    // a clean end is "left", not lost
    a.leave();
    a.close();
    await new Promise((r) => setTimeout(r, 200));
    expect(s.nodes()[1]!.status).toBe('left');
    expect(lost).toEqual([]);
  });

  it('refuses a node rank that is taken, or ranks another node runs', async () => {
    const s = await serve();
    s.setLocal({ node: 0, host: 'head', ranks: [0] });
    await join(s, 1, { ranks: [1] });
    const dup = await rejection(join(s, 1, { ranks: [7], host: 'other' }));
    expect(dup.code).toBe('BAD_ARGUMENT');
    expect(dup.message).toMatch(/^Node rank 1 is already in the run \(host-1 joined as node 1 at .*\); other cannot/);
    expect(dup.hint).toContain('--node-rank');
    const zero = await rejection(join(s, 0, { ranks: [5] }));
    expect(zero.message).toContain('Node rank 0 is already in the run (head');
    const overlap = await rejection(join(s, 3, { ranks: [1, 3] }));
    expect(overlap.message).toBe('Node 3 (host-3) would run rank 1, which node 1 (host-1) runs.');
    expect(s.nodes().map((n) => n.node)).toEqual([0, 1]);
  });

  it('a node whose process is killed is lost within a second', async () => {
    const s = await serve();
    const code = `
      const { RendezvousClient } = await import(${JSON.stringify(MODULE)});
      await RendezvousClient.connect('127.0.0.1', ${s.port}, { node: { nodeRank: 1, host: 'child', ranks: [1] }, timeoutMs: 5000 });
      console.log('joined');
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(child);
    await until<void>(
      (cb) => child.stdout!.on('data', (b: Buffer) => b.toString().includes('joined') && cb()),
      15_000,
      'join from the child',
    );
    const lost = until<[NodeState, string]>((cb) => s.onLost((n, why) => cb([n, why])), 1_000, 'loss');
    child.kill('SIGKILL');
    const [n, why] = await lost;
    expect([n.node, n.host, n.status]).toEqual([1, 'child', 'lost']);
    expect(why).toMatch(/connection to node 0 (closed|failed)/);
    expect(s.nodes()[0]!.status).toBe('lost');
  });

  it('a silent node is lost after lostAfterMs; one that pings is not', async () => {
    const s = await serve(500);
    const lost: [number, string][] = [];
    s.onLost((n, why) => lost.push([n.node, why]));
    const silent = await join(s, 1, { keepaliveMs: 0 });
    await join(s, 2); // pings a quarter of lostAfterMs
    const gone = until<string>((cb) => silent.onLost(cb), 2_000, 'loss on the silent client');
    await new Promise((r) => setTimeout(r, 1_300));
    expect(lost).toHaveLength(1);
    expect(lost[0]![0]).toBe(1);
    expect(lost[0]![1]).toMatch(/^no heartbeat for 0\.\d s$/);
    expect(s.nodes().map((n) => n.status)).toEqual(['lost', 'running']);
    // the server dropped the silent node's connection
    expect(await gone).toContain('is gone');
  });

  it('reads GPT2_STUDIO_NODE_TIMEOUT_MS, and names it when it is not a number', async () => {
    process.env.GPT2_STUDIO_NODE_TIMEOUT_MS = '1234';
    const s = await RendezvousServer.listen(HOST, 0);
    servers.push(s);
    expect(s.lostAfterMs).toBe(1234);
    // an explicit option wins
    expect((await serve(500)).lostAfterMs).toBe(500);
    process.env.GPT2_STUDIO_NODE_TIMEOUT_MS = 'soon';
    const e = await rejection(RendezvousServer.listen(HOST, 0));
    expect(e.message).toBe('GPT2_STUDIO_NODE_TIMEOUT_MS=soon is not a whole number of milliseconds.');
  });
});

describe('rendezvous: aborts and losses', () => {
  it("node 0's abort reaches every node, fails their gets, and reaches a node that joins later", async () => {
    const s = await serve();
    const a = await join(s, 1);
    const b = await join(s, 2);
    const waiting = rejection(a.get('go', 5_000));
    const heardA = until<string>((cb) => a.onAbort(cb), 1_000, 'abort on node 1');
    const heardB = until<string>((cb) => b.onAbort(cb), 1_000, 'abort on node 2');
    s.abort('node 2 has a different dataset');
    expect(await heardA).toBe('node 2 has a different dataset');
    expect(await heardB).toBe('node 2 has a different dataset');
    const e = await waiting;
    expect(e.code).toBe('PEER_FAILED');
    expect(e.message).toContain('node 2 has a different dataset');
    const late = await join(s, 3);
    expect(await until<string>((cb) => late.onAbort(cb), 1_000, 'abort on the late node')).toBe(
      'node 2 has a different dataset',
    );
  });

  it("a node's abort reaches node 0 and the other nodes", async () => {
    const s = await serve();
    const a = await join(s, 1);
    const b = await join(s, 2);
    const onServer = until<[string, NodeState]>((cb) => s.onAbort((r, n) => cb([r, n])), 1_000, 'abort');
    const onB = until<string>((cb) => b.onAbort(cb), 1_000, 'abort on node 2');
    a.abort('rank 1 ran out of memory');
    const [reason, n] = await onServer;
    expect(reason).toBe('node 1 (host-1) aborted the run: rank 1 ran out of memory');
    expect(n.node).toBe(1);
    expect(await onB).toBe(reason);
  });

  it('node 0 gone: every node hears it, and its gets fail', async () => {
    const s = await serve();
    const a = await join(s, 1);
    const waiting = rejection(a.get('comm', 5_000));
    const lost = until<string>((cb) => a.onLost(cb), 1_000, 'loss on node 1');
    s.close();
    expect(await lost).toBe(`node 0 (127.0.0.1:${s.port}) is gone`);
    const e = await waiting;
    expect(e.code).toBe('PEER_FAILED');
    expect(e.message).toBe(`Node 0 (127.0.0.1:${s.port}) is gone.`);
    expect(() => a.set('x', 1)).toThrow(/is gone/);
  });
});

describe('rendezvous: what a person gets wrong', () => {
  it('nothing at the port: a clear error once timeoutMs has passed', async () => {
    const port = await freePort();
    const t0 = Date.now();
    const e = await rejection(
      RendezvousClient.connect(HOST, port, { node: { nodeRank: 1, host: 'h', ranks: [1] }, timeoutMs: 500 }),
    );
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(450);
    expect(took).toBeLessThan(1_500);
    expect(e.code).toBe('NETWORK');
    expect(e.message).toBe(`No rendezvous at 127.0.0.1:${port} after 0.5 s (connection refused).`);
    expect(e.hint).toBe(
      'Start node 0 first with the same --master-addr and --master-port, and check that the port is open between the hosts.',
    );
    // GPT2_STUDIO_RDZV_TIMEOUT_MS sets the default
    process.env.GPT2_STUDIO_RDZV_TIMEOUT_MS = '300';
    const e2 = await rejection(RendezvousClient.connect(HOST, port, { node: { nodeRank: 1, host: 'h', ranks: [1] } }));
    expect(e2.message).toContain('after 0.3 s');
  });

  it('keeps trying until node 0 starts', async () => {
    const port = await freePort();
    const joining = RendezvousClient.connect(HOST, port, {
      node: { nodeRank: 1, host: 'h', ranks: [1] },
      timeoutMs: 5_000,
    });
    await new Promise((r) => setTimeout(r, 300));
    const s = await RendezvousServer.listen(HOST, port);
    servers.push(s);
    const c = await joining;
    clients.push(c);
    expect(s.nodes().map((n) => n.node)).toEqual([1]);
  });

  it('the port in use: says so and what to do', async () => {
    const s = await serve();
    const e = await rejection(RendezvousServer.listen(HOST, s.port));
    expect(e.code).toBe('BAD_ARGUMENT');
    expect(e.message).toBe(`The rendezvous cannot listen on 127.0.0.1:${s.port}: the port is in use.`);
    expect(e.hint).toContain('pick another --master-port');
  });

  it('a program that is not a rendezvous', async () => {
    const other = net.createServer((sock) => sock.end('HTTP/1.1 400 Bad Request\r\n\r\n'));
    others.push(other);
    await new Promise<void>((r) => other.listen(0, HOST, r));
    const port = (other.address() as net.AddressInfo).port;
    const e = await rejection(
      RendezvousClient.connect(HOST, port, { node: { nodeRank: 1, host: 'h', ranks: [1] }, timeoutMs: 2_000 }),
    );
    expect(e.message).toBe(
      `What answers at 127.0.0.1:${port} is not a gpt2-studio rendezvous (it got a line that is not JSON).`,
    );
  });

  it('a line over 1 MiB closes the connection, and the node is lost', async () => {
    const s = await serve();
    const lost = until<string>((cb) => s.onLost((_n, why) => cb(why)), 2_000, 'loss');
    const r = await raw(s.port);
    r.socket.write(JSON.stringify({ t: 'join', v: 1, node: { nodeRank: 1, host: 'h', ranks: [1] } }) + '\n');
    r.socket.write(Buffer.alloc(MAX_LINE_BYTES + 10, 0x61));
    await r.closed;
    expect(r.lines().map((l) => l.t)).toEqual(['joined', 'error']);
    expect((r.lines()[1]!.error as { message: string }).message).toContain('more than 1 MiB');
    expect(await lost).toContain('more than 1 MiB');
  });

  it('closes a connection that sends what is not the protocol', async () => {
    const s = await serve();
    const a = await raw(s.port);
    a.socket.write('{"t":"set","key":"k","value":1}\n'); // before join
    await a.closed;
    expect((a.lines()[0]!.error as { message: string }).message).toBe('The rendezvous got "set" before "join".');
    const b = await raw(s.port);
    b.socket.write('{"t":"join","v":1,"node":{"nodeRank":-1,"host":"h","ranks":[]}}\n');
    await b.closed;
    expect((b.lines()[0]!.error as { message: string }).message).toContain('does not fit the protocol (join)');
    const c = await raw(s.port);
    c.socket.write('not json\n');
    await c.closed;
    expect(s.nodes()).toEqual([]);
  });
});
