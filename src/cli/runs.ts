/**
 * Run commands: train, resume, stop, runs, export. Each works on the same workspace the app uses, through the
 * Studio service (so a CLI run is recorded in SQLite and appears in the app).
 */
import { hfTokenizerFiles } from '../core/hf-tokenizer';
import fs from 'node:fs';
import path from 'node:path';
import { ErrorCode, StudioError } from '../shared/errors';
import { DEFAULT_WARMUP_STEPS, setConfigValue } from '../shared/run-config';
import type { StudioEvents } from '../shared/contract';
import { formatStep } from '../core/train/trainer';
import { checkpointDirName, checkpointsDir, listCheckpointSteps, readCheckpoint } from '../node/checkpoints/files';
import { getPreset } from '../node/runs/presets';
import { Studio } from '../node/studio';
import { runDirOf } from '../node/train/paths';
import { exportGpt2Weights } from '../node/models/weights';
import { resolveHome } from '../node/workspace';
import { num, parse, type CliIo } from './common';
import { followRun, leadRun, nodesClosed } from '../node/runs/multinode';
import { describeTopology, resolveTopology, type Topology } from '../node/train/topology';

const homeOpt = {
  home: { type: 'string' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

function readConfigFile(file: string): Record<string, unknown> {
  const p = path.resolve(file);
  if (!fs.existsSync(p))
    throw new StudioError(
      ErrorCode.FILE_NOT_FOUND,
      `Config file ${p} does not exist.`,
      'Pass --config with a JSON run config, or --preset NAME.',
    );
  try {
    const v = JSON.parse(fs.readFileSync(p, 'utf8'));
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not a JSON object');
    // a preset file ({title, description, config}) works as a config file too
    return (v.config && typeof v.config === 'object' ? v.config : v) as Record<string, unknown>;
  } catch (e) {
    throw new StudioError(
      ErrorCode.BAD_CONFIG,
      `Config file ${p} is not a JSON object: ${(e as Error).message}.`,
      'Write the run config as JSON (see resources/presets for examples).',
    );
  }
}

/**
 * Subscribes to a run's events, calls `begin` (which starts its worker), and prints the events until the worker
 * ends; Ctrl-C asks it to checkpoint and stop. Returns the exit code.
 */
async function follow(
  studio: Studio,
  id: string | null,
  io: CliIo,
  json: boolean,
  begin: () => Promise<unknown>,
): Promise<number> {
  // a node other than 0 of a multi-node run learns its run's id only once begin() has made it
  let runId = id;
  const out = (name: string, payload: object) => io.out(JSON.stringify({ event: name, ...payload }) + '\n');
  const mine = <K extends keyof StudioEvents>(name: K, print: (p: StudioEvents[K]) => void) =>
    studio.on(name, (p) => {
      if (runId === null || (p as { runId: string }).runId !== runId) return;
      if (json) out(name, p);
      else print(p);
    });
  const subs = [
    mine('run-step', (p) => io.out(formatStep(p) + '\n')),
    // evaluations are printed through the run's log lines (validation loss, HellaSwag accuracy)
    mine('run-eval', () => {}),
    // the guard's actions are printed through the run's log lines too
    mine('run-guard', () => {}),
    // the end-of-text token is a marker, not output: a base model ends a document there and begins another
    mine('run-sample', (p) =>
      p.samples.forEach((s, i) => io.out(`sample ${i}: ${s.split('<|endoftext|>').join(' ⟨end of text⟩ ')}\n`)),
    ),
    mine('run-checkpoint', (p) => io.out(`checkpoint: step ${p.step} -> ${p.path}\n`)),
    mine('run-log', (p) => (p.level === 'info' ? io.out(`${p.message}\n`) : io.err(`${p.level}: ${p.message}\n`))),
    mine('run-status', (p) => {
      if (p.error) io.err(`error: ${p.error.message}\n${p.error.hint ? `hint: ${p.error.hint}\n` : ''}`);
      io.out(`run ${runId}: ${p.status}\n`);
    }),
  ];
  let interrupts = 0;
  let stopping = false; // asked to stop already (the output was closed)
  const onSigint = () => {
    interrupts++;
    if (interrupts === 1) {
      io.err(
        stopping
          ? '\na stop is already under way: the run saves a checkpoint after the current step (Ctrl-C again to abort without one)\n'
          : '\nstopping: the run saves a checkpoint after the current step (Ctrl-C again to abort without one)\n',
      );
      if (!stopping && runId) studio.invoke('runs-stop', { id: runId }).catch(() => {});
      stopping = true;
    } else {
      io.err('aborting\n');
      process.exit(130);
    }
  };
  process.on('SIGINT', onSigint);
  // whoever read the output has gone ("| head"): stop as after one Ctrl-C, so that the run keeps a checkpoint
  const offClosed = io.onOutputClosed?.(() => {
    if (stopping) return;
    stopping = true;
    io.err('output closed: the run saves a checkpoint after the current step, then stops\n');
    if (runId) studio.invoke('runs-stop', { id: runId }).catch(() => {});
  });
  try {
    const began = await begin();
    if (runId === null) {
      runId = began as string;
      if (json) out('run', { runId, home: studio.home });
      else io.out(`run ${runId} in ${studio.home}\n`);
    }
    const run = await studio.waitRun(runId);
    return run.status === 'done' || run.status === 'stopped' || run.status === 'paused' ? 0 : 1;
  } finally {
    process.off('SIGINT', onSigint);
    offClosed?.();
    for (const u of subs) u();
  }
}

/** gpt2-studio train (--config FILE | --preset NAME) [--set key=value ...] [--name N] [--home DIR] [--json] */
export async function trainCommand(argv: string[], io: CliIo): Promise<number> {
  const a = parse(
    argv,
    {
      ...homeOpt,
      config: { type: 'string' },
      preset: { type: 'string' },
      set: { type: 'string', multiple: true },
      name: { type: 'string' },
      force: { type: 'boolean' },
      ...nodeOpts,
    },
    'train',
  );
  if (a.help) {
    io.out(
      'gpt2-studio train (--config FILE | --preset NAME) [--set key=value ...] [--name N] [--home DIR] [--json] [--force]\n',
    );
    io.out("  --force  start even when the plan says the run does not fit in this machine's memory\n");
    io.out(NODE_HELP);
    return 0;
  }
  const topology = resolveTopology(nodeFlags(a), process.env);
  if (topology && topology.nodeRank > 0) return followNode(topology, a.home, a.json, io);
  if ((a.config === undefined) === (a.preset === undefined)) {
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      'train needs exactly one of --config FILE or --preset NAME.',
      'Presets: nano, micro, gpt2-124m, gpt2-medium (resources/presets).',
    );
  }
  const config = a.config !== undefined ? readConfigFile(a.config) : getPreset(a.preset!).config;
  for (const kv of a.set ?? []) {
    const i = kv.indexOf('=');
    if (i <= 0)
      throw new StudioError(
        ErrorCode.BAD_ARGUMENT,
        `--set ${kv} is not key=value.`,
        'Example: --set max_steps=100 --set model.n_layer=2',
      );
    // a relative init_path is taken in the workspace, here as in config files, presets and the app
    setConfigValue(config, kv.slice(0, i), kv.slice(i + 1));
  }
  // a shorter run asked for on the command line keeps its warmup inside it, unless the warmup was asked for too
  const setKeys = new Set((a.set ?? []).map((kv) => kv.slice(0, kv.indexOf('='))));
  if (setKeys.has('max_steps') && !setKeys.has('warmup_steps') && typeof config.max_steps === 'number') {
    const warmup = typeof config.warmup_steps === 'number' ? config.warmup_steps : DEFAULT_WARMUP_STEPS;
    if (warmup > config.max_steps && Number.isInteger(config.max_steps) && config.max_steps > 0) {
      config.warmup_steps = config.max_steps;
      io.err(
        `note: warmup_steps lowered from ${warmup} to ${config.max_steps} to fit max_steps (set warmup_steps to choose another)\n`,
      );
    }
  }
  if (topology) {
    // every rank on every node: the run's world_size
    if (setKeys.has('world_size') && Number(config.world_size) !== topology.worldSize)
      throw new StudioError(
        ErrorCode.BAD_ARGUMENT,
        `--set world_size=${String(config.world_size)} contradicts --nnodes ${topology.nnodes} x --nproc-per-node ${topology.nprocPerNode} = ${topology.worldSize} ranks.`,
        'Leave world_size out: a multi-node run counts its ranks from the nodes.',
      );
    config.world_size = topology.worldSize;
  }
  const studio = new Studio({ home: resolveHome({ flag: a.home }) });
  try {
    const input = { config, preset: a.preset, name: a.name, start: false, force: a.force === true };
    // a multi-node run: this machine's memory holds only its own ranks
    const run = topology
      ? await studio.runs.create(input, { ranksHere: topology.nprocPerNode })
      : await studio.invoke('runs-create', input);
    if (a.json) io.out(JSON.stringify({ event: 'run', runId: run.id, home: studio.home, config: run.config }) + '\n');
    else io.out(`run ${run.id} in ${studio.home}\n`);
    const code = await follow(studio, run.id, io, a.json, () =>
      topology && topology.nnodes > 1 ? leadRun(studio, run.id, topology) : studio.invoke('runs-start', { id: run.id }),
    );
    await nodesClosed(run.id);
    return code;
  } finally {
    studio.close();
  }
}

/** The torchrun-style flags of train and resume (see train/topology.ts; mpirun and srun set their own variables). */
const nodeOpts = {
  nnodes: { type: 'string' },
  'node-rank': { type: 'string' },
  'nproc-per-node': { type: 'string' },
  'master-addr': { type: 'string' },
  'master-port': { type: 'string' },
} as const;

const NODE_HELP = `multi-node (every node runs the same command, node 0 first; see the README's "Multi-node training"):
  --nnodes N --node-rank R --nproc-per-node P --master-addr HOST --master-port PORT
  under mpirun or srun the ranks come from OMPI_COMM_WORLD_* / PMI_* / SLURM_* instead
`;

function nodeFlags(a: {
  nnodes?: string;
  'node-rank'?: string;
  'nproc-per-node'?: string;
  'master-addr'?: string;
  'master-port'?: string;
}) {
  return {
    nnodes: num(a.nnodes, 'nnodes', { int: true, min: 1 }),
    nodeRank: num(a['node-rank'], 'node-rank', { int: true, min: 0 }),
    nprocPerNode: num(a['nproc-per-node'], 'nproc-per-node', { int: true, min: 1 }),
    masterAddr: a['master-addr'],
    masterPort: num(a['master-port'], 'master-port', { int: true, min: 1 }),
  };
}

/** A node other than 0: joins the run node 0 leads, recorded in this node's workspace. */
async function followNode(t: Topology, home: string | undefined, json: boolean, io: CliIo): Promise<number> {
  const studio = new Studio({ home: resolveHome({ flag: home }) });
  try {
    io.err(`${describeTopology(t)}: waiting for node 0\n`);
    return await follow(studio, null, io, json, () => followRun(studio, t));
  } finally {
    studio.close();
  }
}

/** gpt2-studio resume RUN_ID [--home DIR] [--json] */
export async function resumeCommand(argv: string[], io: CliIo): Promise<number> {
  // a node other than 0 needs no run id: it joins whatever node 0 resumes
  if (argv[0]?.startsWith('-')) {
    const f = parse(argv, { ...homeOpt, ...nodeOpts }, 'resume');
    const t = resolveTopology(nodeFlags(f), process.env);
    if (t && t.nodeRank > 0) return followNode(t, f.home, f.json, io);
  }
  const [id, ...rest] = argv;
  if (!id || id.startsWith('-'))
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      'resume needs a run id.',
      'Usage: gpt2-studio resume RUN_ID [--home DIR]. List runs with "gpt2-studio runs".',
    );
  const a = parse(rest, { ...homeOpt, ...nodeOpts }, 'resume');
  const topology = resolveTopology(nodeFlags(a), process.env);
  if (topology && topology.nodeRank > 0) return followNode(topology, a.home, a.json, io);
  const studio = new Studio({ home: resolveHome({ flag: a.home }) });
  try {
    await studio.invoke('runs-get', { id });
    if (a.json) io.out(JSON.stringify({ event: 'run', runId: id, home: studio.home }) + '\n');
    // one node: its ranks resume here alone (world_size may change when total_batch_size still divides)
    if (topology && topology.nnodes === 1) studio.runs.resize(id, topology.worldSize);
    const code = await follow(studio, id, io, a.json, () =>
      topology && topology.nnodes > 1 ? leadRun(studio, id, topology) : studio.invoke('runs-resume', { id }),
    );
    await nodesClosed(id);
    return code;
  } finally {
    studio.close();
  }
}

/** gpt2-studio stop RUN_ID [--home DIR] */
export async function stopCommand(argv: string[], io: CliIo): Promise<number> {
  const [id, ...rest] = argv;
  if (!id || id.startsWith('-'))
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      'stop needs a run id.',
      'Usage: gpt2-studio stop RUN_ID [--home DIR].',
    );
  const a = parse(rest, homeOpt, 'stop');
  const studio = new Studio({ home: resolveHome({ flag: a.home }) });
  try {
    await studio.invoke('runs-stop', { id });
    io.out(`asked run ${id} to stop: it saves a checkpoint after its current step, then ends\n`);
    return 0;
  } finally {
    studio.close();
  }
}

/** gpt2-studio runs [--home DIR] [--json] */
export async function runsCommand(argv: string[], io: CliIo): Promise<number> {
  const a = parse(argv, homeOpt, 'runs');
  const studio = new Studio({ home: resolveHome({ flag: a.home }) });
  try {
    const runs = await studio.invoke('runs-list');
    if (a.json) {
      io.out(JSON.stringify(runs) + '\n');
      return 0;
    }
    if (runs.length === 0) {
      io.out(`no runs in ${studio.home}\n`);
      return 0;
    }
    io.out(
      `${'id'.padEnd(26)} ${'status'.padEnd(11)} ${'steps'.padStart(7)} ${'tokens'.padStart(13)} ${'best val'.padStart(8)}  name\n`,
    );
    for (const r of runs) {
      const best = r.bestValLoss === null || r.bestValLoss === undefined ? '-' : r.bestValLoss.toFixed(4);
      io.out(
        `${r.id.padEnd(26)} ${r.status.padEnd(11)} ${String(r.stepsDone).padStart(7)} ${r.tokensSeen.toLocaleString('en-US').padStart(13)} ${best.padStart(8)}  ${r.name}\n`,
      );
    }
    return 0;
  } finally {
    studio.close();
  }
}

/** gpt2-studio export RUN_ID [--step N] --out model.safetensors|DIR [--home DIR] */
export async function exportCommand(argv: string[], io: CliIo): Promise<number> {
  const [id, ...rest] = argv;
  if (!id || id.startsWith('-'))
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      'export needs a run id.',
      'Usage: gpt2-studio export RUN_ID [--step N] --out model.safetensors',
    );
  const a = parse(rest, { ...homeOpt, step: { type: 'string' }, out: { type: 'string' } }, 'export');
  if (!a.out)
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      'export needs --out.',
      'Pass --out model.safetensors (a config.json is written beside it) or --out FOLDER.',
    );
  const home = resolveHome({ flag: a.home });
  const runDir = runDirOf(home, id);
  const steps = listCheckpointSteps(runDir);
  if (steps.length === 0)
    throw new StudioError(
      ErrorCode.NOT_FOUND,
      `Run ${id} has no checkpoints in ${checkpointsDir(runDir)}.`,
      'Checkpoints are written every checkpoint_interval steps and when a run stops.',
    );
  const step = num(a.step, 'step', { int: true, min: 0 }) ?? steps[steps.length - 1]!;
  if (!steps.includes(step))
    throw new StudioError(
      ErrorCode.NOT_FOUND,
      `Run ${id} has no checkpoint at step ${step}.`,
      `Checkpoints: ${steps.join(', ')}.`,
    );
  const ck = readCheckpoint(path.join(checkpointsDir(runDir), checkpointDirName(step)));
  const out = path.resolve(a.out);
  const isFile = out.endsWith('.safetensors');
  const dir = isFile ? path.dirname(out) : out;
  const written = exportGpt2Weights(dir, ck.state.modelConfig, ck.weights);
  if (isFile && written.modelFile !== out) fs.renameSync(written.modelFile, out);
  const file = isFile ? out : written.modelFile;
  // a folder is a whole HF GPT-2 folder: the tokenizer files go beside the weights, as the app's export writes them
  const tokenizer: string[] = [];
  if (!isFile) {
    for (const [name, text] of Object.entries(hfTokenizerFiles({ modelMaxLength: ck.state.modelConfig.blockSize }))) {
      fs.writeFileSync(path.join(dir, name), text);
      tokenizer.push(name);
    }
  }
  if (a.json) io.out(JSON.stringify({ runId: id, step, file, config: written.configFile, tokenizer }) + '\n');
  else
    io.out(
      `exported run ${id} step ${step} to ${file} (config: ${written.configFile}` +
        (tokenizer.length ? `; tokenizer: ${tokenizer.join(', ')}` : '') +
        ')\n',
    );
  return 0;
}
