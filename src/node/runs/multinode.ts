/**
 * Multi-node data parallel: one run whose ranks span several machines ("nodes"), each with its own workspace.
 *
 *   - Node 0 owns the run: its record, checkpoints, evaluations and samples live in node 0's workspace. Its studio
 *     hosts the rendezvous (train/rendezvous.ts) at --master-addr:--master-port and publishes there what the other
 *     nodes need: the run's config, the communicator to make, a resume's trainer state.
 *   - Every other node joins the rendezvous, checks its copy of the dataset (the manifest's hash must equal node
 *     0's, before step 0), records the run in its own workspace under a name of its own (its steps and log), starts
 *     its share of the ranks, and sends node 0 a heartbeat with its step and tok/s.
 *   - The ranks exchange gradients over NCCL (GPU ranks) or MPI (CPU ranks): rank 0 makes the communicator, and
 *     its id travels over the rendezvous. Under mpirun (or srun with PMI), CPU ranks use the job's MPI_COMM_WORLD;
 *     otherwise each rank runs under its own `mpirun -np 1` with node 0's ompi-server, so that they can connect.
 *   - Rank 0 broadcasts the starting weights (and a resume's optimizer state): only node 0 needs the checkpoint.
 *   - A node that is lost (its connection drops, or no heartbeat for GPT2_STUDIO_NODE_TIMEOUT_MS) ends the run with
 *     its name; node 0 lost ends every other node's share. Stop and pause reach every rank through the trainer's
 *     vote, so they act on every node.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ErrorCode, StudioError, toPlainError } from '../../shared/errors';
import type { RunConfig } from '../../shared/run-config';
import type { Run, RunNode } from '../../shared/records';
import type { TrainerState } from '../../core/train/trainer';
import type { Studio } from '../studio';
import { checkpointDirName, checkpointsDir, listCheckpointSteps, readCheckpointState } from '../checkpoints/files';
import { runDirOf } from '../train/paths';
import { Workspace } from '../workspace';
import { getEngine } from '../engines';
import { spawnGroup, WORKER_ENTRY, type WorkerSpawner } from '../train/launcher';
import type { CommKind } from '../train/protocol';
import { RendezvousClient, RendezvousServer, type NodeState } from '../train/rendezvous';
import { describeTopology, type Topology } from '../train/topology';
import { mpirunWorkerSpawner, startOmpiServer } from '../train/mpi-spawn';

/** Node 0: per run, resolves once the rendezvous has closed (every other node done, or after a grace). */
const closing = new Map<string, Promise<void>>();

/** Node 0: waits until the other nodes of the run are done with the rendezvous (call it before the process exits). */
export async function nodesClosed(runId: string): Promise<void> {
  await closing.get(runId);
  closing.delete(runId);
}

/** What node 0 publishes for the other nodes under the key "run". */
interface RunInfo {
  runId: string;
  name: string;
  config: RunConfig;
  commKind: CommKind;
  /** ompi-server's URI, when CPU ranks connect through it */
  ompiServer?: string;
  trainer?: TrainerState;
  manifest: string | null;
  world: number;
}

/** How long node 0 waits for the other nodes to join, and they for node 0's decisions. */
function joinTimeoutMs(): number {
  const v = Number(process.env.GPT2_STUDIO_RDZV_TIMEOUT_MS);
  return Number.isFinite(v) && v > 0 ? v : 300_000;
}

/**
 * A dataset's identity across machines: the sha256 over its files' names, splits, sizes, token counts and
 * hashes, as its manifest lists them (not the times or paths of its preparation). null when it is not there.
 */
export function manifestHash(home: string, dataset: string): string | null {
  const file = path.join(new Workspace(home).dataset(dataset), 'manifest.json');
  let m: { files?: { file: string; split?: string; tokens?: number; bytes: number; sha256: string }[] };
  try {
    m = JSON.parse(fs.readFileSync(file, 'utf8')) as typeof m;
  } catch {
    return null;
  }
  const files = (m.files ?? [])
    .map((f) => [f.file, f.split ?? '', f.tokens ?? -1, f.bytes, f.sha256].join('\t'))
    .sort()
    .join('\n');
  return crypto.createHash('sha256').update(files).digest('hex');
}

/** The communicator CPU or GPU ranks use across nodes (GPT2_STUDIO_COMM overrides it). */
async function chooseComm(t: Topology, config: RunConfig): Promise<CommKind> {
  const forced = process.env.GPT2_STUDIO_COMM;
  if (forced === 'shm' || forced === 'nccl' || forced === 'mpi' || forced === 'mpi-world') return forced;
  const engine =
    config.engine === 'auto' ? (await getEngine('auto', { precision: config.precision })).name : config.engine;
  if (engine === 'native-cuda') return 'nccl';
  if (engine !== 'native-cpu')
    throw new StudioError(
      ErrorCode.ENGINE_UNAVAILABLE,
      `A multi-node run needs the native-cpu or native-cuda engine; this run's engine is ${engine}.`,
      'Set engine to native-cpu or native-cuda (gpt2-studio engines lists what this machine has).',
    );
  // mpirun and srun with PMI put every process in one MPI job already
  const pmi = process.env.PMIX_RANK !== undefined || process.env.PMI_RANK !== undefined;
  if (t.launcher === 'mpirun' || (t.launcher === 'slurm' && pmi)) return 'mpi-world';
  return 'mpi';
}

function nodeOf(s: NodeState): RunNode {
  return {
    node: s.node,
    host: s.host,
    ranks: s.ranks,
    status: s.status,
    joinedAt: s.joinedAt,
    lastHeartbeat: s.lastHeartbeat,
    step: s.step,
    tokPerSec: s.tokPerSec,
  };
}

function ranksOf(t: Topology): number[] {
  return Array.from({ length: t.nprocPerNode }, (_, i) => t.firstRank + i);
}

/** The spawner of this node's ranks for a communicator kind. */
async function spawnerFor(kind: CommKind, base: WorkerSpawner, ompiServer: string | undefined): Promise<WorkerSpawner> {
  if (kind !== 'mpi') return base;
  if (!ompiServer) throw new StudioError(ErrorCode.INTERNAL, 'MPI ranks without an ompi-server URI.', 'Start again.');
  return mpirunWorkerSpawner(WORKER_ENTRY, { ompiServerUri: ompiServer });
}

/**
 * Node 0: hosts the rendezvous, waits for every node (checking their datasets), starts its ranks, and follows the
 * nodes' heartbeats until the run ends. Resolves once the run has started; `ended` resolves when the rendezvous is
 * closed.
 */
export async function leadRun(studio: Studio, runId: string, t: Topology): Promise<Run> {
  const runs = studio.runs;
  const log = (level: 'info' | 'warn' | 'error', m: string) => runs.note(runId, level, m);
  let run = runs.get(runId);
  if ((run.config as { world_size?: number }).world_size !== t.worldSize) run = runs.resize(runId, t.worldSize);
  const config = runs.validate(run.config, { shapeFromInit: false });
  const server = await RendezvousServer.listen(t.masterAddr, t.masterPort);
  let resolveClosed!: () => void;
  closing.set(runId, new Promise<void>((r) => (resolveClosed = r)));
  let ompi: { uri: string; stop(): void } | null = null;
  let ompiDir: string | null = null;
  const cleanup = () => {
    server.close();
    ompi?.stop();
    if (ompiDir) fs.rmSync(ompiDir, { recursive: true, force: true });
  };
  try {
    log('info', describeTopology(t));
    const commKind = await chooseComm(t, config);
    if (commKind === 'mpi') {
      ompiDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-ompi-'));
      ompi = await startOmpiServer(ompiDir);
      // the URI is read: the folder of its file is no longer needed
      fs.rmSync(ompiDir, { recursive: true, force: true });
      ompiDir = null;
    }
    const mine = manifestHash(studio.home, config.dataset);
    // the checkpoint RunManager.start resumes from: its trainer state goes to every other rank
    const runDir = runDirOf(studio.home, runId);
    const last = listCheckpointSteps(runDir).at(-1);
    const trainer =
      last !== undefined
        ? readCheckpointState(path.join(checkpointsDir(runDir), checkpointDirName(last))).trainer
        : undefined;
    const info: RunInfo = {
      runId,
      name: run.name,
      config,
      commKind,
      ompiServer: ompi?.uri,
      trainer,
      manifest: mine,
      world: t.worldSize,
    };
    server.set('run', info);
    server.setLocal({ node: 0, host: os.hostname(), ranks: ranksOf(t) });
    const publish = () => runs.setNodes(runId, server.nodes().map(nodeOf));
    server.onJoin(publish);
    server.onHeartbeat(publish);
    // a node lost before the ranks start ends the wait for it at once
    let started = false;
    let rejectEarly!: (e: Error) => void;
    const lostEarly = new Promise<never>((_, reject) => (rejectEarly = reject));
    lostEarly.catch(() => {});
    const offEarly = server.onLost((n, reason) => {
      if (!started)
        rejectEarly(
          new StudioError(
            ErrorCode.PEER_FAILED,
            `Multi-node run ${runId}: node ${n.node} (${n.host}) was lost before step 0: ${reason}.`,
            'Start that node again with the same flags, then this one.',
          ),
        );
    });

    // before step 0: every node's dataset must be node 0's
    log('info', `waiting for ${t.nnodes - 1} more node${t.nnodes > 2 ? 's' : ''} at ${t.masterAddr}:${t.masterPort}`);
    for (let k = 1; k < t.nnodes; k++) {
      let got: { hash: string | null; host: string };
      try {
        got = (await Promise.race([server.get(`manifest/${k}`, joinTimeoutMs()), lostEarly])) as typeof got;
      } catch (e) {
        if (e instanceof StudioError && /was lost before step 0/.test(e.message)) throw e;
        throw new StudioError(
          ErrorCode.PEER_FAILED,
          `Multi-node run ${runId}: node ${k} did not join the rendezvous at ${t.masterAddr}:${t.masterPort} within ${Math.round(joinTimeoutMs() / 1000)} s.`,
          `Start it with --node-rank ${k} and the same --nnodes, --master-addr and --master-port (or raise GPT2_STUDIO_RDZV_TIMEOUT_MS).`,
        );
      }
      if (got.hash !== mine) {
        const why =
          got.hash === null
            ? `node ${k} (${got.host}) has no dataset "${config.dataset}"`
            : `node ${k} (${got.host}) has a different dataset "${config.dataset}" (manifest ${got.hash.slice(0, 12)}, node 0 has ${String(mine).slice(0, 12)})`;
        const err = new StudioError(
          ErrorCode.BAD_CONFIG,
          `Multi-node run ${runId}: ${why}.`,
          `Every node needs the same prepared dataset: copy node 0's datasets/${config.dataset} folder to that node's workspace, or prepare it there with the same source and options.`,
        );
        throw err;
      }
    }
    server.set('go', true);
    started = true;
    offEarly();
    publish();

    const spawn = await spawnerFor(commKind, runs.spawner, ompi?.uri);
    runs.start(runId, () => ({
      worker: spawnGroup(spawn, t.worldSize, {
        first: 0,
        local: t.nprocPerNode,
        onCommId: (id, engine) => server.set('comm', { id, engine }),
      }),
      start: {
        commKind,
        nodes: { nnodes: t.nnodes, nodeRank: 0, first: 0, local: t.nprocPerNode, localBase: t.localRank, trainer },
      },
    }));
    // node 0's own row follows its steps
    let lastTok: number | null = null;
    const offStep = studio.on('run-step', (p) => {
      if (p.runId !== runId) return;
      lastTok = p.tokensPerSec;
      server.setLocal({ node: 0, host: os.hostname(), ranks: ranksOf(t), step: p.step, tokPerSec: lastTok });
      publish();
    });
    server.onLost((n, reason) => {
      publish();
      runs.fail(runId, {
        code: ErrorCode.PEER_FAILED,
        message: `Node ${n.node} (${n.host}, ranks ${n.ranks.join(', ')}) was lost at step ${n.step ?? 0}: ${reason}.`,
        hint: `Resume from the last checkpoint on the nodes that are left: gpt2-studio resume ${runId} --nnodes N ... (total_batch_size must divide by the new number of ranks).`,
      });
    });
    void runs.wait(runId).then((r) => {
      offStep();
      // the run is over for every node (they stop at the same step, or are stopped with it): the table says so
      try {
        runs.setNodes(
          runId,
          server.nodes().map((n) => nodeOf(n.status === 'running' ? { ...n, status: 'left' } : n)),
        );
      } catch {
        // the studio is closing
      }
      // the other nodes end by themselves (the trainer's vote, or their ranks failing); tell them the outcome
      server.set('end', { status: r.status });
      if (r.status === 'failed' || r.status === 'interrupted') server.abort(r.error?.message ?? r.status);
      // the rendezvous stays up until every other node has said it is done (or 15 s): a node that saw it close
      // first would take it for node 0's loss
      const until = Date.now() + 15_000;
      const poll = setInterval(() => {
        if (Date.now() < until && server.nodes().some((n) => n.node !== 0 && n.status === 'running')) return;
        clearInterval(poll);
        cleanup();
        resolveClosed();
      }, 100);
    });
    return runs.get(runId);
  } catch (e) {
    // the other nodes hear why before the rendezvous closes
    server.abort(e instanceof Error ? e.message : String(e));
    await new Promise((r) => setTimeout(r, 300));
    cleanup();
    resolveClosed();
    throw e;
  }
}

/**
 * A node other than 0: joins node 0's rendezvous, checks its dataset, records the run in this workspace, and runs
 * its share of the ranks. Returns the id of the run in this workspace.
 */
export async function followRun(studio: Studio, t: Topology): Promise<string> {
  const runs = studio.runs;
  const client = await RendezvousClient.connect(t.masterAddr, t.masterPort, {
    node: { nodeRank: t.nodeRank, host: os.hostname(), ranks: ranksOf(t) },
  });
  let localId: string | null = null;
  // before this node's run exists, an abort or a lost node 0 ends the waits at once
  let rejectWait!: (e: Error) => void;
  const ended = new Promise<never>((_, reject) => (rejectWait = reject));
  ended.catch(() => {});
  const wait = (k: string) => Promise.race([client.get(k, joinTimeoutMs()), ended]);
  const end = (message: string, hint: string) => {
    if (localId) runs.fail(localId, { code: ErrorCode.PEER_FAILED, message, hint });
    else rejectWait(new StudioError(ErrorCode.PEER_FAILED, message, hint));
  };
  client.onAbort((reason) => end(`node 0 ended the run: ${reason}`, 'See node 0 for why.'));
  // node 0 says when the run has ended; its rendezvous closing after that is no loss
  let over = false;
  void client.get('end', 2 ** 31 - 1).then(
    () => (over = true),
    () => {},
  );
  client.onLost((reason) => {
    if (!over)
      end(`Multi-node: ${reason}.`, 'Resume the run on node 0, then start this node again with the same flags.');
  });
  try {
    const info = (await wait('run')) as RunInfo;
    if (info.world !== t.worldSize)
      throw new StudioError(
        ErrorCode.BAD_ARGUMENT,
        `This node counts ${t.worldSize} ranks in all, but node 0's run has ${info.world}.`,
        'Start every node with the same --nnodes and --nproc-per-node.',
      );
    client.set(`manifest/${t.nodeRank}`, { hash: manifestHash(studio.home, info.config.dataset), host: os.hostname() });
    await wait('go');
    const comm = (await wait('comm')) as { id: string; engine: string };
    // the weights come from rank 0, so this node's record starts from scratch in the same shape (node 0's
    // init_path names a file on node 0)
    const { init_path: _initPath, ...rest } = info.config;
    const run = await studio.invoke('runs-create', {
      config: { ...rest, init_from: 'scratch' },
      name: `${info.name} · node ${t.nodeRank}`,
      tags: ['multi-node', `of:${info.runId}`],
      start: false,
      force: true,
    });
    localId = run.id;
    runs.note(
      run.id,
      'info',
      `node ${t.nodeRank} of run ${info.runId} (owned by node 0 at ${t.masterAddr}:${t.masterPort}); ranks ${ranksOf(t).join(', ')}`,
    );
    const spawn = await spawnerFor(info.commKind, runs.spawner, info.ompiServer);
    runs.start(run.id, () => ({
      worker: spawnGroup(spawn, t.worldSize, { first: t.firstRank, local: t.nprocPerNode }),
      start: {
        commId: comm.id,
        engine: comm.engine,
        commKind: info.commKind,
        nodes: {
          nnodes: t.nnodes,
          nodeRank: t.nodeRank,
          first: t.firstRank,
          local: t.nprocPerNode,
          localBase: t.localRank,
          trainer: info.trainer,
        },
      },
    }));
    // heartbeats: at every step (at most one a second) and every 5 s between steps
    let step: number | null = null;
    let tok: number | null = null;
    let sent = 0;
    const beat = () => {
      sent = Date.now();
      client.heartbeat({ step: step ?? 0, tokPerSec: tok });
    };
    const offStep = studio.on('run-step', (p) => {
      if (p.runId !== localId) return;
      step = p.step;
      tok = p.tokensPerSec;
      if (Date.now() - sent >= 1000) beat();
    });
    const timer = setInterval(beat, 5_000);
    timer.unref();
    void runs.wait(run.id).then(() => {
      offStep();
      clearInterval(timer);
      client.leave();
      client.close();
    });
    return run.id;
  } catch (e) {
    client.close();
    throw e instanceof StudioError ? e : new StudioError(ErrorCode.INTERNAL, toPlainError(e).message, 'Start again.');
  }
}
