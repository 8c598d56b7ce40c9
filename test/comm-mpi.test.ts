/**
 * Data parallel of the native-cpu engine over MPI ("mpi:world" and "mpi:port:" communicators) and the broadcast
 * collective, with real processes running test/fixtures/mpi/rank.ts:
 *   - two ranks under one `mpirun -np 2` join "mpi:world" (after a join with a wrong world is refused);
 *   - two ranks, each under its own `mpirun -np 1 --ompi-server file:URI` with an ompi-server of the test's, join an
 *     "mpi:port:" id that rank 0 made; both mpirun exit 0 promptly;
 *   - two plain processes over shared memory.
 * Each time: the averaged gradients are the same bits on both ranks and equal (a + b) / 2 in float32, the doubles'
 * mean is right, and an odd-sized broadcast (three shared-memory chunks) brings rank 0's floats.
 * The MPI cases are skipped, saying why, when the addon was built without MPI or mpirun / ompi-server are missing.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadNativeAddon } from '../src/node/native/addon';
import { nativeCpuEngine } from '../src/node/native';
import { repoRoot } from './shared';

const native = loadNativeAddon();
const RUN_TS = path.join(repoRoot, 'bin/run-ts.mjs');
const RANK = path.join(repoRoot, 'test/fixtures/mpi/rank.ts');

const onPath = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const mpiSkip = !native.ok
  ? `the native addon does not load: ${native.reason}`
  : !native.addon.mpiInfo().available
    ? 'the addon was built without MPI (install libopenmpi-dev and openmpi-bin, then npm run build:native)'
    : !onPath('mpirun')
      ? 'mpirun is not on PATH (install openmpi-bin)'
      : null;
const openMpi = !mpiSkip && /^Open MPI/.test(native.ok ? (native.addon.mpiInfo().version ?? '') : '');
const portSkip =
  mpiSkip ??
  (!openMpi
    ? 'the mpi:port: case runs on Open MPI'
    : !onPath('ompi-server')
      ? 'ompi-server is not on PATH (openmpi-bin)'
      : null);

// Open MPI refuses to run as root without these (CI runs as root); mpirun's own flags below say the same
const MPI_ENV = { ...process.env, OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1' };
// every rank's threads may use every core (mpirun binds each process to one core by default)
const MPIRUN_FLAGS = ['--allow-run-as-root', '--bind-to', 'none'];

interface Ran {
  code: number | null;
  signal: string | null;
  out: string;
  ms: number;
}

/** Runs a process (in a process group of its own, so that a hung one is ended with its children). */
function run(cmd: string, args: string[], timeoutMs: number, env: NodeJS.ProcessEnv = process.env): Promise<Ran> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: repoRoot, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, out, ms: Date.now() - t0 });
    });
  });
}

interface RankOut {
  ok: boolean;
  error?: string;
  rank: number;
  world: number;
  id: string;
  n: number;
  mine: string;
  grads: string;
  means: number[];
  bcastOk: boolean;
  wrongWorld?: string | null;
}

const floats = (b64: string) => {
  const b = Buffer.from(b64, 'base64');
  return new Float32Array(b.buffer, b.byteOffset, b.length / 4);
};

const readOut = (file: string): RankOut => {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as RankOut;
  } catch {
    throw new Error(`${file} was not written`);
  }
};

/** The checks every transport must pass with two ranks. */
function checkPair(r0: RankOut, r1: RankOut, idPrefix: string): void {
  expect(r0.ok, r0.error).toBe(true);
  expect(r1.ok, r1.error).toBe(true);
  expect([r0.rank, r1.rank, r0.world, r1.world]).toEqual([0, 1, 2, 2]);
  expect(r0.id.startsWith(idPrefix), r0.id).toBe(true);
  expect(r1.id).toBe(r0.id);
  expect(r0.n % 2, 'an odd count, so that the shares are padded').toBe(1);
  // the same bits on both ranks
  expect(Buffer.from(r0.grads, 'base64').equals(Buffer.from(r1.grads, 'base64'))).toBe(true);
  // and exactly the float32 mean: with two ranks, (a + b) rounded once, then halved (exact)
  const g = floats(r0.grads);
  const a = floats(r0.mine);
  const b = floats(r1.mine);
  let wrong = 0;
  for (let i = 0; i < g.length; i++) if (g[i] !== Math.fround(Math.fround(a[i]! + b[i]!) * 0.5)) wrong++;
  expect(wrong, 'elements that are not the mean').toBe(0);
  expect(r0.means).toEqual([0.75, 0.0015]);
  expect(r1.means).toEqual(r0.means);
  expect(r0.bcastOk && r1.bcastOk, 'the broadcast brought rank 0 values').toBe(true);
}

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-comm-mpi-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function writeJob(name: string, job: Record<string, unknown>): string {
  const file = path.join(dir, `${name}.json`);
  fs.writeFileSync(file, JSON.stringify(job));
  return file;
}

describe.skipIf(!native.ok)('broadcast over shared memory (native-cpu)', () => {
  it('two plain processes: the mean gradients, the doubles and an odd-sized broadcast', async () => {
    const idFile = path.join(dir, 'shm.id');
    const runs = await Promise.all(
      [0, 1].map((rank) =>
        run(
          process.execPath,
          [
            RUN_TS,
            RANK,
            writeJob(`shm-${rank}`, {
              mode: 'shm',
              rank,
              world: 2,
              idFile,
              out: path.join(dir, `shm-out-${rank}.json`),
            }),
          ],
          30_000,
        ),
      ),
    );
    for (const r of runs) expect(r.code, r.out).toBe(0);
    checkPair(readOut(path.join(dir, 'shm-out-0.json')), readOut(path.join(dir, 'shm-out-1.json')), 'shm:');
  }, 40_000);
});

describe.skipIf(!!mpiSkip)(`data parallel over MPI${mpiSkip ? ` (skipped: ${mpiSkip})` : ''}`, () => {
  it('the engine reports the MPI it was built with', () => {
    const engine = nativeCpuEngine();
    const notes = engine.info().notes.join('\n');
    expect(notes).toMatch(/^MPI: (Open MPI|MPICH|\S)/m);
    expect(engine.info().detail).toMatch(/MPI: /);
  });

  it.skipIf(!openMpi)('an mpi:port: id outside mpirun is refused at once, saying what Open MPI needs', () => {
    const env = process.env;
    if (env.OMPI_COMM_WORLD_SIZE || env.PMIX_RANK || env.SLURM_PROCID) return; // the test itself runs under a launcher
    const engine = nativeCpuEngine();
    expect(() => engine.dataParallel.newId('mpi')).toThrow(/ompi-server.*without mpirun/s);
  });

  it('mpi:world: two ranks under one mpirun -np 2', async () => {
    const out = path.join(dir, 'world-out-RANK.json');
    const r = await run(
      'mpirun',
      [
        ...MPIRUN_FLAGS,
        '--oversubscribe',
        '-np',
        '2',
        process.execPath,
        RUN_TS,
        RANK,
        writeJob('world', { mode: 'world', out }),
      ],
      40_000,
      MPI_ENV,
    );
    expect(r.signal, `mpirun hung:\n${r.out}`).toBeNull();
    expect(r.code, r.out).toBe(0);
    const [r0, r1] = [0, 1].map((k) => readOut(out.replace('RANK', String(k)))) as [RankOut, RankOut];
    checkPair(r0, r1, 'mpi:world');
    // the world passed must be MPI's: the error names both
    expect(r0.wrongWorld).toMatch(/rank 0 of world 3, but MPI says this process is rank 0 of 2/);
  }, 50_000);

  it.skipIf(!!portSkip)(
    `mpi:port: two ranks, each under its own mpirun -np 1 --ompi-server${portSkip ? ` (skipped: ${portSkip})` : ''}`,
    async () => {
      const uri = path.join(dir, 'ompi-server.uri');
      const server = spawn('ompi-server', ['--no-daemonize', '--report-uri', uri], {
        env: MPI_ENV,
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let serverErr = '';
      server.stderr.on('data', (d) => (serverErr += d));
      try {
        for (let i = 0; i < 200 && !(fs.existsSync(uri) && fs.readFileSync(uri, 'utf8').trim()); i++)
          await new Promise((res) => setTimeout(res, 25));
        expect(fs.existsSync(uri), `ompi-server wrote no URI: ${serverErr}`).toBe(true);
        const idFile = path.join(dir, 'port.id');
        const runs = await Promise.all(
          [0, 1].map((rank) =>
            run(
              'mpirun',
              [
                ...MPIRUN_FLAGS,
                '-np',
                '1',
                '--ompi-server',
                `file:${uri}`,
                process.execPath,
                RUN_TS,
                RANK,
                writeJob(`port-${rank}`, {
                  mode: 'port',
                  rank,
                  world: 2,
                  idFile,
                  out: path.join(dir, `port-out-${rank}.json`),
                }),
              ],
              40_000,
              MPI_ENV,
            ),
          ),
        );
        for (const r of runs) {
          expect(r.signal, `mpirun hung:\n${r.out}`).toBeNull();
          expect(r.code, r.out).toBe(0);
          // the teardown does not wait for the connected peer (MPI_Comm_disconnect would, for ~20 s)
          expect(r.ms).toBeLessThan(15_000);
        }
        checkPair(readOut(path.join(dir, 'port-out-0.json')), readOut(path.join(dir, 'port-out-1.json')), 'mpi:port:');
      } finally {
        server.kill('SIGTERM');
      }
    },
    50_000,
  );
});
