/**
 * Multi-node data parallel on one machine, over loopback: two "nodes" are two CLI processes with their own
 * workspaces. Each launcher (torchrun-style flags, mpirun, Slurm's variables set by hand) gives the run one process
 * gives, within float rounding; a killed node is named on node 0 and the run resumes from its checkpoint on one node;
 * a node with another dataset is refused before step 0; a wrong master port fails with a clear error.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli/main';
import { readCheckpoint } from '../src/node/checkpoints/files';
import { Studio } from '../src/node/studio';
import { loadNativeAddon } from '../src/node/native/addon';
import { hasFixture, repoRoot, sharedPath } from './shared';

const CLI = path.join(repoRoot, 'bin/gpt2-studio.mjs');
const native = loadNativeAddon();
const mpirun = spawnSync('mpirun', ['--version'], { encoding: 'utf8' }).status === 0;
const mpiBuilt = native.ok && native.addon.mpiInfo().available;
const ROOT_ENV = { OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1' };

interface Proc {
  child: ChildProcess;
  events: Record<string, unknown>[];
  stderr: string;
  exit: Promise<number | null>;
}

/** Runs the CLI (or `cmd` with args) with --json output, collecting its events and stderr. */
function start(cmd: string, args: string[], env: Record<string, string> = {}): Proc {
  const child = spawn(cmd, args, {
    env: { ...process.env, ...ROOT_ENV, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const p: Proc = { child, events: [], stderr: '', exit: Promise.resolve(null) };
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        p.events.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // not an event (mpirun's own lines)
      }
    }
  });
  child.stderr!.on('data', (d: Buffer) => (p.stderr += d.toString()));
  p.exit = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  return p;
}

const cli = (args: string[], env: Record<string, string> = {}) => start(process.execPath, [CLI, ...args], env);
const losses = (p: Proc) =>
  p.events.filter((e) => e.event === 'run-step').map((e) => [e.step as number, e.loss as number] as const);
const runIdOf = (p: Proc) => p.events.find((e) => e.event === 'run')?.runId as string;

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** The largest difference between two runs' final weights. */
function weightDiff(homeA: string, runA: string, homeB: string, runB: string, step: number): number {
  const dir = (h: string, r: string) => path.join(h, 'runs', r, 'checkpoints', `step_${String(step).padStart(6, '0')}`);
  const a = readCheckpoint(dir(homeA, runA)).weights;
  const b = readCheckpoint(dir(homeB, runB)).weights;
  let max = 0;
  for (const [name, t] of a) {
    const u = b.get(name)!.data;
    for (let i = 0; i < t.data.length; i++) max = Math.max(max, Math.abs(t.data[i]! - u[i]!));
  }
  return max;
}

describe.skipIf(!mpirun || !mpiBuilt || !hasFixture('data/tinyshakespeare.txt'))(
  'multi-node data parallel over loopback (native-cpu ranks over MPI)',
  () => {
    let dir: string;
    let cfg: string;
    const homes: Record<string, string> = {};
    let ref: { home: string; runId: string; losses: (readonly [number, number])[] };
    /** A fresh workspace holding the prepared dataset. */
    const home = (name: string) => {
      const h = path.join(dir, name);
      fs.mkdirSync(path.join(h, 'datasets'), { recursive: true });
      fs.cpSync(path.join(homes.base!, 'datasets', 'tinyshakespeare'), path.join(h, 'datasets', 'tinyshakespeare'), {
        recursive: true,
      });
      homes[name] = h;
      return h;
    };
    const config = (patch: Record<string, unknown> = {}) => {
      const f = path.join(dir, `config-${Object.keys(patch).join('-') || 'base'}.json`);
      fs.writeFileSync(
        f,
        JSON.stringify({
          model: { n_layer: 2, n_head: 2, n_embd: 64, block_size: 64 },
          dataset: 'tinyshakespeare',
          engine: 'native-cpu',
          total_batch_size: 1024,
          batch_size: 8,
          seq_len: 64,
          max_steps: 6,
          warmup_steps: 2,
          max_lr: 3e-3,
          eval_interval: 0,
          hellaswag_interval: 0,
          sample_interval: 0,
          checkpoint_interval: 3,
          keep_last: 0,
          seed: 7,
          ...patch,
        }),
      );
      return f;
    };

    beforeAll(async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-nodes-'));
      homes.base = path.join(dir, 'base');
      const quiet = { out: () => {}, err: () => {} };
      expect(
        await main(
          ['prepare', 'tinyshakespeare', '--file', sharedPath('data/tinyshakespeare.txt'), '--home', homes.base],
          quiet,
        ),
      ).toBe(0);
      cfg = config();
      // the reference: one process, the same total batch
      const h = home('ref');
      const one = cli(['train', '--config', cfg, '--home', h, '--json']);
      expect(await one.exit, one.stderr).toBe(0);
      ref = { home: h, runId: runIdOf(one), losses: losses(one) };
      expect(ref.losses).toHaveLength(6);
    }, 120_000);
    afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

    const expectSameRun = (node0: Proc, h0: string) => {
      const got = losses(node0);
      expect(got.map(([s]) => s)).toEqual(ref.losses.map(([s]) => s));
      got.forEach(([s, l], i) => expect(Math.abs(l - ref.losses[i]![1]), `loss at step ${s}`).toBeLessThan(2e-6));
      const diff = weightDiff(ref.home, ref.runId, h0, runIdOf(node0), 6);
      if (process.env.GPT2_STUDIO_DP_REPORT) console.log(`max weight difference after 6 steps: ${diff}`);
      expect(diff).toBeLessThan(2e-6);
    };

    it('torchrun-style flags: two nodes give the run of one process', async () => {
      const port = String(await freePort());
      const flags = (r: number) => ['--nnodes', '2', '--node-rank', String(r), '--master-addr', '127.0.0.1'];
      const h0 = home('flags0');
      const node0 = cli(['train', '--config', cfg, '--home', h0, '--json', ...flags(0), '--master-port', port]);
      const node1 = cli(['train', '--home', home('flags1'), '--json', ...flags(1), '--master-port', port]);
      expect(await node0.exit, node0.stderr).toBe(0);
      expect(await node1.exit, node1.stderr).toBe(0);
      expectSameRun(node0, h0);
      // node 1 recorded its share in its own workspace: the same steps
      expect(losses(node1).map(([s]) => s)).toEqual([0, 1, 2, 3, 4, 5]);
      // node 0's record lists both nodes, ended with the run
      const studio = new Studio({ home: h0 });
      try {
        const run = await studio.invoke('runs-get', { id: runIdOf(node0) });
        // (node 1's step is its last heartbeat's: at most one a second)
        expect(run.nodes.map((n) => [n.node, n.ranks, n.status])).toEqual([
          [0, [0], 'left'],
          [1, [1], 'left'],
        ]);
        expect(run.nodes[0]!.step).toBe(5);
        expect(run.nodes[1]!.step).toBeGreaterThanOrEqual(0);
      } finally {
        studio.close();
      }
    }, 120_000);

    it('mpirun: two processes of one MPI job give the run of one process', async () => {
      const port = String(await freePort());
      const h = path.join(dir, 'mpi');
      home('mpi0');
      home('mpi1');
      const job = start(
        'mpirun',
        [
          '--allow-run-as-root',
          '--oversubscribe',
          '--bind-to',
          'none',
          '-np',
          '2',
          '-x',
          'MASTER_PORT',
          'sh',
          '-c',
          `exec "${process.execPath}" "${CLI}" train --config "${cfg}" --home "${h}$OMPI_COMM_WORLD_RANK" --json`,
        ],
        { MASTER_PORT: port },
      );
      expect(await job.exit, job.stderr).toBe(0);
      // both processes print to the same stdout: node 0's run is the one with checkpoints in mpi0
      const id = fs.readdirSync(path.join(`${h}0`, 'runs'))[0]!;
      const node0: Proc = { ...job, events: job.events.filter((e) => e.runId === id) };
      expectSameRun(node0, `${h}0`);
    }, 120_000);

    it("Slurm: a 2-task allocation's variables, set by hand, give the run of one process", async () => {
      const port = String(await freePort());
      const slurm = (id: number) => ({
        SLURM_PROCID: String(id),
        SLURM_NTASKS: '2',
        SLURM_LOCALID: String(id),
        SLURM_JOB_NODELIST: 'localhost',
        MASTER_PORT: port,
      });
      const h0 = home('slurm0');
      const node0 = cli(['train', '--config', cfg, '--home', h0, '--json'], slurm(0));
      const node1 = cli(['train', '--config', cfg, '--home', home('slurm1'), '--json'], slurm(1));
      expect(await node0.exit, node0.stderr).toBe(0);
      expect(await node1.exit, node1.stderr).toBe(0);
      expectSameRun(node0, h0);
    }, 120_000);

    it('a killed node is named on node 0 within 30 s, and the run resumes from its checkpoint on one node', async () => {
      const port = String(await freePort());
      const long = config({ max_steps: 16, checkpoint_interval: 2 });
      const flags = (r: number) => ['--nnodes', '2', '--node-rank', String(r), '--master-port', port];
      const h0 = home('kill0');
      const node0 = cli(['train', '--config', long, '--home', h0, '--json', ...flags(0)]);
      const node1 = cli(['train', '--home', home('kill1'), '--json', ...flags(1)]);
      await new Promise<void>((resolve) => {
        const t = setInterval(() => {
          if (losses(node0).some(([s]) => s >= 4)) {
            clearInterval(t);
            resolve();
          }
        }, 100);
      });
      const killedAt = Date.now();
      process.kill(-node1.child.pid!, 'SIGKILL'); // the whole node: its CLI and its ranks
      expect(await node0.exit).toBe(1);
      const named = Date.now() - killedAt;
      if (process.env.GPT2_STUDIO_DP_REPORT) console.log(`node 0 ended ${named} ms after node 1 was killed`);
      expect(named).toBeLessThan(30_000);
      // --json prints the run's end as an event on stdout
      expect(JSON.stringify(node0.events)).toMatch(/Node 1 \(.+\) was lost at step \d+/);
      const runId = runIdOf(node0);
      const last = fs
        .readdirSync(path.join(h0, 'runs', runId, 'checkpoints'))
        .sort()
        .at(-1);
      expect(last).toMatch(/^step_\d{6}$/);
      // one node, one rank: total_batch_size 1024 still divides
      const again = cli(['resume', runId, '--home', h0, '--json', '--nnodes', '1', '--nproc-per-node', '1']);
      expect(await again.exit, again.stderr).toBe(0);
      const steps = losses(again).map(([s]) => s);
      expect(steps.at(-1)).toBe(15);
      expect(steps[0]).toBe(Number(last!.slice(5)));
    }, 180_000);

    it('a stop on node 0 (Ctrl-C) stops every node at the same step, and the run resumes on two nodes to its end', async () => {
      const port = String(await freePort());
      const cfg30 = config({ max_steps: 30, checkpoint_interval: 0 });
      const flags = (r: number) => ['--nnodes', '2', '--node-rank', String(r), '--master-port', port];
      const h0 = home('stop0');
      const h1 = home('stop1');
      const node0 = cli(['train', '--config', cfg30, '--home', h0, '--json', ...flags(0)]);
      const node1 = cli(['train', '--home', h1, '--json', ...flags(1)]);
      await new Promise<void>((resolve) => {
        const t = setInterval(() => {
          if (losses(node0).length >= 2) {
            clearInterval(t);
            resolve();
          }
        }, 100);
      });
      const runId = runIdOf(node0);
      // Ctrl-C on node 0: a stop (a checkpoint after the current step)
      process.kill(node0.child.pid!, 'SIGINT');
      expect(await node0.exit, node0.stderr).toBe(0);
      expect(await node1.exit, node1.stderr).toBe(0);
      const status = (p: Proc) => p.events.filter((e) => e.event === 'run-status').at(-1)?.status;
      expect(status(node0)).toBe('stopped');
      expect(status(node1)).toBe('stopped');
      const stoppedAt = losses(node0).length;
      expect(losses(node1)).toHaveLength(stoppedAt);
      expect(stoppedAt).toBeLessThan(30);
      // node 1 needs no run id: it joins whatever node 0 resumes
      const again0 = cli(['resume', runId, '--home', h0, '--json', ...flags(0)]);
      const again1 = cli(['resume', '--home', h1, '--json', ...flags(1)]);
      expect(await again0.exit, again0.stderr).toBe(0);
      expect(await again1.exit, again1.stderr).toBe(0);
      expect(losses(again0).map(([s]) => s)).toEqual([...Array(30).keys()].slice(stoppedAt));
      expect(losses(again1).map(([s]) => s)).toEqual([...Array(30).keys()].slice(stoppedAt));
    }, 120_000);

    it('a node whose dataset differs is refused before step 0, with its name', async () => {
      const port = String(await freePort());
      const h1 = home('other1');
      const mf = path.join(h1, 'datasets', 'tinyshakespeare', 'manifest.json');
      const m = JSON.parse(fs.readFileSync(mf, 'utf8')) as { files: { bytes: number }[] };
      m.files[0]!.bytes += 1; // another preparation of the "same" dataset
      fs.writeFileSync(mf, JSON.stringify(m));
      const flags = (r: number) => ['--nnodes', '2', '--node-rank', String(r), '--master-port', port];
      const node0 = cli(['train', '--config', cfg, '--home', home('other0'), '--json', ...flags(0)]);
      const node1 = cli(['train', '--home', h1, '--json', ...flags(1)]);
      expect(await node0.exit).toBe(1);
      expect(await node1.exit).toBe(1);
      expect(node0.stderr).toMatch(/node 1 \(.+\) has a different dataset "tinyshakespeare"/);
      expect(node1.stderr).toMatch(/different dataset/);
      expect(losses(node0)).toHaveLength(0);
    }, 60_000);

    it('a wrong master port fails with a clear error after the rendezvous timeout', async () => {
      const port = String(await freePort());
      const node1 = cli(
        ['train', '--home', home('lonely'), '--nnodes', '2', '--node-rank', '1', '--master-port', port],
        { GPT2_STUDIO_RDZV_TIMEOUT_MS: '2000' },
      );
      expect(await node1.exit).toBe(1);
      expect(node1.stderr).toMatch(new RegExp(`No rendezvous at 127\\.0\\.0\\.1:${port} after 2 s`));
    }, 30_000);
  },
);
