/**
 * Where this process stands in a multi-node run, from its CLI flags and its environment. Pure: nothing here reads
 * the process, so every case is a unit test.
 *
 * Three ways to start the nodes of a run:
 *   - torchrun-style flags on every host: --nnodes N --node-rank R --nproc-per-node P --master-addr HOST
 *     --master-port PORT. Node R runs ranks R*P .. R*P+P-1 of N*P.
 *   - mpirun (Open MPI's OMPI_COMM_WORLD_*, or MPICH/Hydra's PMI_RANK / PMI_SIZE): each process mpirun starts is
 *     a node of one rank.
 *   - Slurm (srun): SLURM_PROCID / SLURM_NTASKS; each task is a node of one rank, and the rendezvous is on the
 *     first host of the step's (or job's) node list.
 * The rendezvous (node 0's studio) is at --master-addr / MASTER_ADDR (default 127.0.0.1, or the first Slurm host)
 * and --master-port / MASTER_PORT (default 29500).
 */
import { ErrorCode, StudioError } from '../../shared/errors';

export interface TopologyFlags {
  nnodes?: number | string;
  nodeRank?: number | string;
  nprocPerNode?: number | string;
  masterAddr?: string;
  masterPort?: number | string;
}

export interface Topology {
  launcher: 'flags' | 'mpirun' | 'slurm';
  nnodes: number;
  nodeRank: number;
  nprocPerNode: number;
  worldSize: number;
  /** the first global rank of this node: nodeRank * nprocPerNode */
  firstRank: number;
  /**
   * this process's index among the processes the launcher started on this host (OMPI_COMM_WORLD_LOCAL_RANK,
   * MPI_LOCALRANKID, SLURM_LOCALID; 0 with flags): which GPU a one-rank "node" takes when several share a host
   */
  localRank: number;
  masterAddr: string;
  masterPort: number;
}

export const DEFAULT_MASTER_ADDR = '127.0.0.1';
export const DEFAULT_MASTER_PORT = 29500;

/** The flags as a person types them, for error messages. */
const FLAG: Record<keyof TopologyFlags, string> = {
  nnodes: '--nnodes',
  nodeRank: '--node-rank',
  nprocPerNode: '--nproc-per-node',
  masterAddr: '--master-addr',
  masterPort: '--master-port',
};

function bad(message: string, hint: string): StudioError {
  return new StudioError(ErrorCode.BAD_ARGUMENT, message, hint);
}

/** A whole number >= min from a flag or an environment variable; `shown` names it in the error ("--nnodes 2.5"). */
function intOf(v: number | string, shown: string, min: number, hint: string): number {
  const n = typeof v === 'number' ? v : /^\s*\d+\s*$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < min)
    throw bad(`${shown} is not a whole number${min > 0 ? ` of at least ${min}` : ' (0 or more)'}.`, hint);
  return n;
}

const flagShown = (k: keyof TopologyFlags, v: unknown) => `${FLAG[k]} ${String(v)}`;
const envShown = (name: string, v: unknown) => `${name}=${String(v)}`;

function portOf(v: number | string, shown: string, fix: string): number {
  const p = intOf(v, shown, 1, fix);
  if (p > 65535) throw bad(`${shown} is not a port (1..65535).`, fix);
  return p;
}

function addrOf(v: string, shown: string): string {
  const a = v.trim();
  if (!a || /\s/.test(a))
    throw bad(`${shown} is not a host name or address.`, 'Give the host name or IP address of node 0, e.g. 10.0.0.1.');
  // "[::1]" as people write IPv6 in URLs: the socket wants it bare
  return a.startsWith('[') && a.endsWith(']') ? a.slice(1, -1) : a;
}

/** The rendezvous address: the flag, then MASTER_ADDR, then the launcher's guess, then 127.0.0.1. */
function masterOf(
  flags: TopologyFlags,
  env: NodeJS.ProcessEnv,
  fallbackAddr: () => string = () => DEFAULT_MASTER_ADDR,
): { masterAddr: string; masterPort: number; addrGiven: boolean } {
  const portFix = 'Use a free TCP port from 1 to 65535, the same on every node (e.g. --master-port 29500).';
  let masterAddr: string;
  let addrGiven = false;
  if (flags.masterAddr !== undefined) {
    masterAddr = addrOf(flags.masterAddr, flagShown('masterAddr', flags.masterAddr));
    addrGiven = true;
  } else if (env.MASTER_ADDR) {
    masterAddr = addrOf(env.MASTER_ADDR, envShown('MASTER_ADDR', env.MASTER_ADDR));
    addrGiven = true;
  } else masterAddr = fallbackAddr();
  let masterPort = DEFAULT_MASTER_PORT;
  if (flags.masterPort !== undefined)
    masterPort = portOf(flags.masterPort, flagShown('masterPort', flags.masterPort), portFix);
  else if (env.MASTER_PORT) masterPort = portOf(env.MASTER_PORT, envShown('MASTER_PORT', env.MASTER_PORT), portFix);
  return { masterAddr, masterPort, addrGiven };
}

/** What a launcher's environment says: this process's rank, the number of processes, and its index on its host. */
interface LauncherEnv {
  launcher: 'mpirun' | 'slurm';
  /** how the environment names the rank and the size, for messages */
  rankVar: string;
  sizeVar: string;
  rank: number;
  size: number;
  localRank: number;
  /** how many processes run on this host, when the launcher says */
  localSize: number | null;
  localSizeVar: string | null;
  /** Slurm: the node list the rendezvous host comes from */
  nodeList?: { name: string; value: string };
}

function envInt(env: NodeJS.ProcessEnv, name: string, min: number): number | null {
  const v = env[name];
  if (v === undefined || v === '') return null;
  return intOf(v, envShown(name, v), min, `${name} is set by the launcher: start this process with it.`);
}

/** Open MPI, MPICH/Hydra or Slurm, from the environment; null when none launched this process (or only one). */
function launcherEnv(env: NodeJS.ProcessEnv): LauncherEnv | null {
  const ompi = envInt(env, 'OMPI_COMM_WORLD_RANK', 0);
  const ompiSize = envInt(env, 'OMPI_COMM_WORLD_SIZE', 1);
  // Open MPI's mpirun puts these in the environment of what it starts (srun's direct launch does not)
  if (ompi !== null && ompiSize !== null)
    return {
      launcher: 'mpirun',
      rankVar: 'OMPI_COMM_WORLD_RANK',
      sizeVar: 'OMPI_COMM_WORLD_SIZE',
      rank: ompi,
      size: ompiSize,
      localRank: envInt(env, 'OMPI_COMM_WORLD_LOCAL_RANK', 0) ?? 0,
      localSize: envInt(env, 'OMPI_COMM_WORLD_LOCAL_SIZE', 1),
      localSizeVar: 'OMPI_COMM_WORLD_LOCAL_SIZE',
    };
  const slurmRank = envInt(env, 'SLURM_PROCID', 0);
  const slurmSize = envInt(env, 'SLURM_NTASKS', 1);
  const pmi = envInt(env, 'PMI_RANK', 0);
  const pmiSize = envInt(env, 'PMI_SIZE', 1);
  // srun with --mpi=pmi2 sets PMI_RANK too, equal to SLURM_PROCID; Hydra's mpirun inside a Slurm job leaves the
  // batch step's SLURM_PROCID beside its own PMI_RANK, which then differ: PMI is the truth there
  const slurm = slurmRank !== null && slurmSize !== null;
  const pmiAgrees = pmi === null || (pmi === slurmRank && pmiSize === slurmSize);
  if (slurm && pmiAgrees) {
    const nodeList = ['SLURM_STEP_NODELIST', 'SLURM_JOB_NODELIST', 'SLURM_NODELIST']
      .map((name) => ({ name, value: env[name] ?? '' }))
      .find((l) => l.value !== '');
    return {
      launcher: 'slurm',
      rankVar: 'SLURM_PROCID',
      sizeVar: 'SLURM_NTASKS',
      rank: slurmRank,
      size: slurmSize,
      localRank: envInt(env, 'SLURM_LOCALID', 0) ?? 0,
      localSize: null,
      localSizeVar: null,
      nodeList,
    };
  }
  if (pmi !== null && pmiSize !== null)
    return {
      launcher: 'mpirun',
      rankVar: 'PMI_RANK',
      sizeVar: 'PMI_SIZE',
      rank: pmi,
      size: pmiSize,
      localRank: envInt(env, 'MPI_LOCALRANKID', 0) ?? 0,
      localSize: envInt(env, 'MPI_LOCALNRANKS', 1),
      localSizeVar: 'MPI_LOCALNRANKS',
    };
  return null;
}

/**
 * Where this process stands, or null for a plain single-node run (no multi-node flag and no launcher that started
 * more than one process). MASTER_ADDR / MASTER_PORT alone do not make a multi-node run: they are defaults only.
 * Throws a StudioError (BAD_ARGUMENT) naming the flag or variable, its value and the fix.
 */
export function resolveTopology(flags: TopologyFlags, env: NodeJS.ProcessEnv): Topology | null {
  const given = (Object.keys(FLAG) as (keyof TopologyFlags)[]).filter((k) => flags[k] !== undefined);
  const le = launcherEnv(env);
  if (le && le.rank >= le.size)
    throw bad(
      `${envShown(le.rankVar, le.rank)} is not below ${envShown(le.sizeVar, le.size)}.`,
      'These variables come from the launcher: start the process through it (mpirun or srun), not by hand.',
    );
  // one process (mpirun -np 1, a single-task salloc shell) is a plain run, or the flags' run
  if (le && le.size > 1) return fromLauncher(le, flags, env);
  if (given.length === 0) return null;
  return fromFlags(flags, env);
}

function fromFlags(flags: TopologyFlags, env: NodeJS.ProcessEnv): Topology {
  const nnodes =
    flags.nnodes === undefined
      ? 1
      : intOf(
          flags.nnodes,
          flagShown('nnodes', flags.nnodes),
          1,
          'Give the number of hosts in the run, the same on every host (e.g. --nnodes 2).',
        );
  const rankHint = `Give each host its own --node-rank from 0 to ${nnodes - 1}: 0 on the host at --master-addr, which hosts the rendezvous.`;
  let nodeRank = 0;
  if (flags.nodeRank !== undefined)
    nodeRank = intOf(flags.nodeRank, flagShown('nodeRank', flags.nodeRank), 0, rankHint);
  else if (nnodes > 1)
    throw bad(`--nnodes ${nnodes} needs --node-rank: which of the ${nnodes} hosts this is.`, rankHint);
  if (nodeRank >= nnodes)
    throw bad(
      `--node-rank ${nodeRank} is out of range for --nnodes ${nnodes} (node ranks are 0..${nnodes - 1}).`,
      rankHint,
    );
  const nprocPerNode =
    flags.nprocPerNode === undefined
      ? 1
      : intOf(
          flags.nprocPerNode,
          flagShown('nprocPerNode', flags.nprocPerNode),
          1,
          'Give the number of ranks (processes) per host, the same on every host (e.g. --nproc-per-node 8 for 8 GPUs).',
        );
  const { masterAddr, masterPort } = masterOf(flags, env);
  return {
    launcher: 'flags',
    nnodes,
    nodeRank,
    nprocPerNode,
    worldSize: nnodes * nprocPerNode,
    firstRank: nodeRank * nprocPerNode,
    localRank: 0,
    masterAddr,
    masterPort,
  };
}

function fromLauncher(le: LauncherEnv, flags: TopologyFlags, env: NodeJS.ProcessEnv): Topology {
  const via = le.launcher === 'slurm' ? 'srun' : 'mpirun';
  // flags may repeat what the launcher says, never contradict it
  const clash = (k: keyof TopologyFlags, mine: number, theirs: string) => {
    const v = flags[k];
    if (v === undefined) return;
    const n = intOf(v, flagShown(k, v), 0, `Drop ${FLAG[k]}: ${via} says it.`);
    if (n !== mine)
      throw bad(
        `${flagShown(k, v)} contradicts ${theirs}: under ${via}, every process it starts is one node of one rank.`,
        `Drop ${FLAG[k]} (${via} says it), or start the run without ${via} and give every host the torchrun-style flags.`,
      );
  };
  clash('nnodes', le.size, envShown(le.sizeVar, le.size));
  clash('nodeRank', le.rank, envShown(le.rankVar, le.rank));
  clash('nprocPerNode', 1, `${envShown(le.sizeVar, le.size)} processes of one rank each`);

  // Slurm's rank 0 runs on the first host of the step's node list
  const list = le.nodeList;
  const fallback = () => (list ? firstSlurmHost(list.value, list.name) : DEFAULT_MASTER_ADDR);
  const { masterAddr, masterPort, addrGiven } = masterOf(flags, env, fallback);
  // mpirun does not say where rank 0 runs: 127.0.0.1 reaches it only when every process is on this host
  if (!addrGiven && !le.nodeList && le.localSize !== null && le.localSize < le.size)
    throw bad(
      `${via} started ${le.size} processes on several hosts (${envShown(le.localSizeVar!, le.localSize)} here), and nothing says where node 0's rendezvous is.`,
      `Give the host of rank 0: --master-addr HOST, or MASTER_ADDR for every process (mpirun -x MASTER_ADDR=HOST ...).`,
    );
  return {
    launcher: le.launcher,
    nnodes: le.size,
    nodeRank: le.rank,
    nprocPerNode: 1,
    worldSize: le.size,
    firstRank: le.rank,
    localRank: le.localRank,
    masterAddr,
    masterPort,
  };
}

/** One line for the logs: "node 1 of 2 (ranks 1..1 of 2) via torchrun-style flags, rendezvous 127.0.0.1:29555". */
export function describeTopology(t: Topology): string {
  const via = t.launcher === 'flags' ? 'torchrun-style flags' : t.launcher === 'slurm' ? 'Slurm (srun)' : 'mpirun';
  const host = t.masterAddr.includes(':') ? `[${t.masterAddr}]` : t.masterAddr;
  const last = t.firstRank + t.nprocPerNode - 1;
  return `node ${t.nodeRank} of ${t.nnodes} (ranks ${t.firstRank}..${last} of ${t.worldSize}) via ${via}, rendezvous ${host}:${t.masterPort}`;
}

// ---- Slurm host lists ----

/**
 * The parts of one host-list entry: literal text and bracket groups ("gpu-[01-02]x[a]" has three parts). Ranges
 * keep the zero padding of their first bound, as Slurm does ("[009-011]": 009, 010, 011).
 */
type Part = string | string[];

function listError(list: string, name: string, why: string): StudioError {
  return bad(
    `${name}=${list} is not a Slurm host list (${why}).`,
    'Slurm sets it for the job: start the process with srun inside the job, or give --master-addr (or MASTER_ADDR) yourself.',
  );
}

/** Splits a host list at the commas outside brackets. */
function entriesOf(list: string, name: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of list) {
    if (ch === '[') depth++;
    else if (ch === ']') depth--;
    if (depth < 0 || depth > 1) throw listError(list, name, 'unbalanced brackets');
    if (ch === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (depth !== 0) throw listError(list, name, 'unbalanced brackets');
  out.push(cur);
  const entries = out.map((e) => e.trim());
  if (entries.some((e) => e === '')) throw listError(list, name, 'an empty host');
  return entries;
}

/** Expands one bracket group's contents ("01-04,07") lazily: `limit` caps how many values are made. */
function expandGroup(body: string, list: string, name: string, limit: number): string[] {
  const out: string[] = [];
  for (const item of body.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(item.trim());
    if (!m) throw listError(list, name, `"[${body}]" is not a list of numbers and ranges`);
    const lo = m[1]!;
    const hi = m[2] ?? lo;
    const a = Number(lo);
    const b = Number(hi);
    if (b < a) throw listError(list, name, `the range ${lo}-${hi} runs backwards`);
    const width = lo.length;
    for (let n = a; n <= b && out.length < limit; n++) out.push(String(n).padStart(width, '0'));
    if (out.length >= limit) break;
  }
  return out;
}

function partsOf(entry: string, list: string, name: string, limit: number): Part[] {
  const parts: Part[] = [];
  const re = /\[([^\]]*)\]/g;
  let last = 0;
  for (let m = re.exec(entry); m; m = re.exec(entry)) {
    if (m.index > last) parts.push(entry.slice(last, m.index));
    parts.push(expandGroup(m[1]!, list, name, limit));
    last = m.index + m[0].length;
  }
  if (last < entry.length) parts.push(entry.slice(last));
  return parts;
}

/** The hosts of one entry of a list (no comma outside brackets), at most `limit`; the last group varies fastest. */
function expandEntry(entry: string, list: string, name: string, limit: number): string[] {
  let acc = [''];
  for (const p of partsOf(entry, list, name, limit)) {
    const next: string[] = [];
    for (const a of acc) {
      for (const v of typeof p === 'string' ? [p] : p) {
        next.push(a + v);
        if (next.length >= limit) break;
      }
      if (next.length >= limit) break;
    }
    acc = next;
  }
  return acc;
}

/**
 * Expands a Slurm host list ("node[01-04,07],gpu-a[1-2]", "n1,n2", "host-[009-011]") in Slurm's order. `name` is
 * the variable it came from, for errors. At most `limit` hosts (100 000 by default) are made.
 */
export function expandSlurmHostList(list: string, name = 'SLURM_JOB_NODELIST', limit = 100_000): string[] {
  const hosts: string[] = [];
  for (const entry of entriesOf(list.trim(), name)) {
    for (const h of expandEntry(entry, list, name, limit - hosts.length)) hosts.push(h);
    if (hosts.length >= limit) break;
  }
  return hosts;
}

/** The first host of a Slurm host list, without expanding the rest. */
export function firstSlurmHost(list: string, name = 'SLURM_JOB_NODELIST'): string {
  return expandEntry(entriesOf(list.trim(), name)[0]!, list, name, 1)[0]!;
}
