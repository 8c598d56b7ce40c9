/**
 * Workers under `mpirun -np 1 --ompi-server URI` (train/mpi-spawn.ts): ompi-server's URI, messages both ways over
 * the Unix socket (those sent before the worker connected included), what reaches the worker (a forwarded variable,
 * every core, its MPI rank), exit codes, SIGTERM and SIGKILL (onExit once, no worker left behind), the real
 * worker-main over the socket, and a worker started from inside another mpirun job. The tests that run mpirun are
 * skipped where Open MPI is not installed.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StudioError } from '../src/shared/errors';
import { WORKER_ENTRY, type WorkerHandle } from '../src/node/train/launcher';
import {
  findOnPath,
  mpirunArgs,
  mpirunEnv,
  mpirunWorkerSpawner,
  startOmpiServer,
  WORKER_SOCKET_ENV,
  type OmpiServer,
} from '../src/node/train/mpi-spawn';
import type { ParentMessage, WorkerMessage } from '../src/node/train/protocol';

const FIXTURE = fileURLToPath(new URL('./fixtures/mpi-socket-worker.mjs', import.meta.url));
const MODULE = fileURLToPath(new URL('../src/node/train/mpi-spawn.ts', import.meta.url));
const HAS_MPI = findOnPath('mpirun') !== null && findOnPath('ompi-server') !== null;

const start = (runId: string, home = '/nonexistent'): ParentMessage =>
  ({ type: 'start', runId, home, config: { world_size: 1 } }) as unknown as ParentMessage;

/** What a handle reports: its messages, its exits, and waits on both. */
function watch(h: WorkerHandle) {
  const seen: WorkerMessage[] = [];
  const exits: [number | null, string | null][] = [];
  h.onMessage((m) => seen.push(m));
  const exited = new Promise<[number | null, string | null]>((resolve) =>
    h.onExit((code, signal) => {
      exits.push([code, signal]);
      resolve([code, signal]);
    }),
  );
  const messages = async (n: number, ms = 15_000): Promise<WorkerMessage[]> => {
    const until = Date.now() + ms;
    while (seen.length < n) {
      if (Date.now() > until) throw new Error(`${seen.length} of ${n} messages within ${ms} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
    return seen;
  };
  return { seen, exits, exited, messages };
}

const said = (m: WorkerMessage | undefined) =>
  JSON.parse((m as { message: string }).message) as Record<string, unknown>;

/** A process is gone when it is not there or is a zombie nobody reaped yet. */
function gone(pid: number): boolean {
  try {
    return /^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

async function goneWithin(pid: number, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (gone(pid)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return gone(pid);
}

/** The pids of the processes whose command line names `needle`. */
function pidsRunning(needle: string): number[] {
  const out: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      if (fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(needle) && !gone(Number(d))) out.push(Number(d));
    } catch {
      // it ended meanwhile
    }
  }
  return out;
}

const ownCpus = () => /Cpus_allowed_list:\s*(\S+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1];

describe('mpi-spawn without Open MPI', () => {
  it('says how to install mpirun and ompi-server when they are missing', async () => {
    let err: unknown;
    try {
      mpirunWorkerSpawner(FIXTURE, { ompiServerUri: 'x', mpirun: '/nonexistent/mpirun' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StudioError);
    expect((err as StudioError).code).toBe('ENGINE_UNAVAILABLE');
    expect((err as StudioError).message).toContain("Open MPI's mpirun is not installed");
    expect((err as StudioError).hint).toContain('apt-get install openmpi-bin');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-ompi-test-'));
    await expect(startOmpiServer(dir, { bin: '/nonexistent/ompi-server' })).rejects.toThrow(
      "Open MPI's ompi-server is not installed",
    );
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("leaves an outer launcher's variables out of mpirun's environment, and keeps a person's settings", () => {
    const env = mpirunEnv(
      {
        PATH: '/usr/bin',
        HOME: '/root',
        OMPI_COMM_WORLD_RANK: '1',
        OMPI_COMM_WORLD_SIZE: '2',
        OMPI_MCA_orte_hnp_uri: 'x',
        OMPI_MCA_ess: 'pmi',
        OMPI_MCA_btl_tcp_if_include: 'eth0',
        OMPI_COMMAND: 'node',
        PMIX_RANK: '1',
        PMIX_NAMESPACE: 'ns',
        PMIX_MCA_gds: 'hash',
        PMI_RANK: '1',
        PMI_FD: '7',
        SLURM_PROCID: '1',
        SLURM_JOB_NODELIST: 'n[1-2]',
        GPT2_STUDIO_WORKER_SOCKET: '/old',
      },
      { FIXTURE_VALUE: 'v' },
    );
    expect(env).toEqual({
      PATH: '/usr/bin',
      HOME: '/root',
      OMPI_MCA_btl_tcp_if_include: 'eth0',
      PMIX_MCA_gds: 'hash',
      OMPI_ALLOW_RUN_AS_ROOT: '1',
      OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1',
      FIXTURE_VALUE: 'v',
    });
  });

  it('runs the worker unbound, with the socket and the extra variables forwarded', () => {
    const args = mpirunArgs('/e.mjs', '/tmp/s/worker.sock', { ompiServerUri: 'U', env: { A_B: '1' } });
    expect(args.join(' ')).toBe(
      `--allow-run-as-root -np 1 --bind-to none --stdin none --ompi-server U -x ${WORKER_SOCKET_ENV}=/tmp/s/worker.sock -x A_B ${process.execPath} /e.mjs`,
    );
  });
});

describe.skipIf(!HAS_MPI)(
  HAS_MPI ? 'workers under mpirun' : "workers under mpirun (skipped: Open MPI's mpirun or ompi-server is not on PATH)",
  () => {
    let ompi: OmpiServer;
    let dir: string;
    beforeAll(async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-ompi-test-'));
      ompi = await startOmpiServer(dir);
    });
    afterAll(() => {
      ompi?.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it('ompi-server reports its URI, and stop() ends it', async () => {
      expect(ompi.uri).toMatch(/^\d+\.\d+;tcp/);
      const own = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-ompi-stop-'));
      const other = await startOmpiServer(own);
      expect(other.uri).not.toBe(ompi.uri);
      const file = path.join(own, 'ompi-server.uri');
      const [pid] = pidsRunning(file);
      expect(pid).toBeGreaterThan(0);
      other.stop();
      expect(await goneWithin(pid!, 2_000)).toBe(true);
      expect(fs.existsSync(file)).toBe(false);
      fs.rmSync(own, { recursive: true, force: true });
    });

    it('messages both ways, those sent before the worker connected in order; a clean exit is reported once', async () => {
      const h = mpirunWorkerSpawner(FIXTURE, { ompiServerUri: ompi.uri, env: { FIXTURE_VALUE: 'forwarded' } })();
      const w = watch(h);
      expect(h.pid).toBeGreaterThan(0);
      // the worker is still starting: both wait in the queue
      h.send(start('r1'));
      h.send({ type: 'pause' });
      const [first, second] = await w.messages(2);
      const info = said(first);
      expect(info).toMatchObject({ got: 'start', runId: 'r1', value: 'forwarded', rank: '0' });
      // not bound to one core by mpirun
      expect(info.cpus).toBe(ownCpus());
      expect(info.pid).not.toBe(h.pid);
      expect(said(second)).toEqual({ got: 'pause' });
      h.send({ type: 'stop' });
      expect(await w.exited).toEqual([0, null]);
      expect(w.seen.map((m) => [m.seq, m.type])).toEqual([
        [1, 'log'],
        [2, 'log'],
        [3, 'done'],
      ]);
      await new Promise((r) => setTimeout(r, 100));
      expect(w.exits).toHaveLength(1);
      expect(await goneWithin(info.pid as number, 2_000)).toBe(true);
    });

    it("reports the worker's exit code", async () => {
      const h = mpirunWorkerSpawner(FIXTURE, { ompiServerUri: ompi.uri })();
      const w = watch(h);
      h.send(start('exit:3'));
      h.send({ type: 'stop' });
      expect(await w.exited).toEqual([3, null]);
      expect(w.seen.at(-1)?.type).toBe('done');
    });

    for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
      it(`kill(${signal}) ends the worker, and onExit fires once with the signal`, async () => {
        const h = mpirunWorkerSpawner(FIXTURE, { ompiServerUri: ompi.uri })();
        const w = watch(h);
        h.send(start('r'));
        const pid = said((await w.messages(1))[0]).pid as number;
        const t0 = Date.now();
        h.kill(signal);
        expect(await w.exited).toEqual([null, signal]);
        // SIGKILL reaches the worker directly (mpirun cannot forward it), not after the wait for a stray worker
        if (signal === 'SIGKILL') expect(Date.now() - t0).toBeLessThan(2_000);
        expect(await goneWithin(pid, 2_000)).toBe(true);
        expect(gone(h.pid!)).toBe(true);
        h.kill(signal); // after the exit: nothing
        await new Promise((r) => setTimeout(r, 100));
        expect(w.exits).toHaveLength(1);
      });
    }

    it('kill(SIGKILL) before the worker connected leaves no worker behind', async () => {
      const h = mpirunWorkerSpawner(FIXTURE, { ompiServerUri: ompi.uri })();
      const w = watch(h);
      h.send(start('r'));
      await new Promise((r) => setTimeout(r, 150)); // mpirun has started the worker, which is still loading
      h.kill('SIGKILL');
      expect(await w.exited).toEqual([null, 'SIGKILL']);
      const until = Date.now() + 8_000;
      while (pidsRunning(FIXTURE).length && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
      expect(pidsRunning(FIXTURE)).toEqual([]);
    });

    it('the real worker-main speaks over the socket: its error, numbered, then exit code 1', async () => {
      const notDir = path.join(dir, 'not-a-dir');
      fs.writeFileSync(notDir, 'x');
      const h = mpirunWorkerSpawner(WORKER_ENTRY, { ompiServerUri: ompi.uri })();
      const w = watch(h);
      h.send(start('r1', notDir));
      expect(await w.exited).toEqual([1, null]);
      expect(w.seen).toHaveLength(1);
      const m = w.seen[0]!;
      expect(m.seq).toBe(1);
      expect(m.type).toBe('error');
      expect((m as Extract<WorkerMessage, { type: 'error' }>).error.message).toContain('ENOTDIR');
    });

    it('starts a worker from inside another mpirun job', async () => {
      const code = `
        const { mpirunWorkerSpawner } = await import(${JSON.stringify(MODULE)});
        const h = mpirunWorkerSpawner(${JSON.stringify(FIXTURE)}, { ompiServerUri: ${JSON.stringify(ompi.uri)} })();
        const seen = [];
        h.onMessage((m) => seen.push(m));
        h.onExit((code, signal) => { console.log('RESULT ' + JSON.stringify({ code, signal, seen })); });
        h.send({ type: 'start', runId: 'nested', home: '/x', config: {} });
        h.send({ type: 'stop' });
      `;
      const outer = spawn(
        'mpirun',
        ['--allow-run-as-root', '-np', '1', process.execPath, '--import', 'tsx', '--input-type=module', '-e', code],
        { env: mpirunEnv(process.env), stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let out = '';
      outer.stdout.on('data', (b: Buffer) => (out += b.toString()));
      outer.stderr.on('data', (b: Buffer) => (out += b.toString()));
      const status = await new Promise<number | null>((r) => outer.on('exit', (c) => r(c)));
      const line = out.split('\n').find((l) => l.startsWith('RESULT '));
      expect(line, out).toBeDefined();
      const result = JSON.parse(line!.slice(7)) as { code: number; seen: WorkerMessage[] };
      expect(result.code).toBe(0);
      expect(result.seen.map((m) => m.type)).toEqual(['log', 'done']);
      expect(said(result.seen[0])).toMatchObject({ runId: 'nested', rank: '0' });
      expect(status).toBe(0);
    });
  },
);
