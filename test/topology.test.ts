/**
 * resolveTopology: where a process stands in a multi-node run, from torchrun-style flags, mpirun's environment
 * (Open MPI, MPICH/Hydra) or Slurm's; the errors name the flag or variable, its value and the fix; Slurm's
 * compressed host lists; describeTopology's one line.
 */
import { describe, expect, it } from 'vitest';
import { StudioError } from '../src/shared/errors';
import {
  describeTopology,
  expandSlurmHostList,
  firstSlurmHost,
  resolveTopology,
  type Topology,
  type TopologyFlags,
} from '../src/node/train/topology';

/** The StudioError resolveTopology throws (the test fails when it throws nothing, or something else). */
function errorOf(flags: TopologyFlags, env: NodeJS.ProcessEnv = {}): StudioError {
  try {
    resolveTopology(flags, env);
  } catch (e) {
    expect(e).toBeInstanceOf(StudioError);
    return e as StudioError;
  }
  throw new Error('resolveTopology did not throw');
}

describe('resolveTopology: a plain run', () => {
  it('is null without flags or a launcher, whatever MASTER_ADDR / MASTER_PORT say', () => {
    expect(resolveTopology({}, {})).toBeNull();
    expect(resolveTopology({}, { MASTER_ADDR: '10.0.0.1', MASTER_PORT: '1234' })).toBeNull();
  });

  it('is null under mpirun -np 1 and in a single-task Slurm shell', () => {
    expect(resolveTopology({}, { OMPI_COMM_WORLD_RANK: '0', OMPI_COMM_WORLD_SIZE: '1' })).toBeNull();
    expect(resolveTopology({}, { SLURM_PROCID: '0', SLURM_NTASKS: '1', SLURM_JOB_NODELIST: 'n1' })).toBeNull();
    // Slurm's allocation without a task (salloc's shell sets no SLURM_PROCID)
    expect(resolveTopology({}, { SLURM_NTASKS: '4', SLURM_JOB_NODELIST: 'n[1-4]' })).toBeNull();
  });
});

describe('resolveTopology: torchrun-style flags', () => {
  it('reads every flag (numbers or the strings a CLI parser gives)', () => {
    const t = resolveTopology(
      { nnodes: '2', nodeRank: '1', nprocPerNode: 4, masterAddr: 'head', masterPort: '29555' },
      {},
    );
    expect(t).toEqual<Topology>({
      launcher: 'flags',
      nnodes: 2,
      nodeRank: 1,
      nprocPerNode: 4,
      worldSize: 8,
      firstRank: 4,
      localRank: 0,
      masterAddr: 'head',
      masterPort: 29555,
    });
  });

  it('defaults: one process per node at 127.0.0.1:29500, or MASTER_ADDR / MASTER_PORT; a flag beats the variable', () => {
    const t = resolveTopology({ nnodes: 2, nodeRank: 0 }, {})!;
    expect([t.nprocPerNode, t.worldSize, t.masterAddr, t.masterPort]).toEqual([1, 2, '127.0.0.1', 29500]);
    const e = resolveTopology({ nnodes: 2, nodeRank: 0 }, { MASTER_ADDR: '10.1.2.3', MASTER_PORT: '4000' })!;
    expect([e.masterAddr, e.masterPort]).toEqual(['10.1.2.3', 4000]);
    const f = resolveTopology({ nnodes: 2, nodeRank: 0, masterPort: 5000 }, { MASTER_PORT: '4000' })!;
    expect(f.masterPort).toBe(5000);
  });

  it('one node: --nproc-per-node alone, and an IPv6 address in brackets', () => {
    const t = resolveTopology({ nprocPerNode: 2, masterAddr: '[::1]' }, {})!;
    expect([t.nnodes, t.nodeRank, t.worldSize, t.masterAddr]).toEqual([1, 0, 2, '::1']);
  });

  it('refuses a node rank out of range, or missing, naming the flag, the value and the fix', () => {
    const e = errorOf({ nnodes: 2, nodeRank: 2 });
    expect(e.code).toBe('BAD_ARGUMENT');
    expect(e.message).toContain('--node-rank 2');
    expect(e.message).toContain('--nnodes 2');
    expect(e.hint).toMatch(/from 0 to 1/);
    expect(errorOf({ nnodes: 3 }).message).toMatch(/--nnodes 3 needs --node-rank/);
  });

  it('refuses what is not a whole number, and a port out of range', () => {
    expect(errorOf({ nnodes: '2.5', nodeRank: 0 }).message).toContain('--nnodes 2.5 is not a whole number');
    expect(errorOf({ nnodes: 0 }).message).toContain('--nnodes 0');
    expect(errorOf({ nnodes: 2, nodeRank: -1 }).message).toContain('--node-rank -1');
    expect(errorOf({ nprocPerNode: 'four' }).message).toContain('--nproc-per-node four');
    const port = errorOf({ nnodes: 2, nodeRank: 0, masterPort: 70000 });
    expect(port.message).toContain('--master-port 70000');
    expect(port.hint).toMatch(/1 to 65535/);
    expect(errorOf({ nnodes: 2, nodeRank: 0, masterPort: 0 }).message).toContain('--master-port 0');
    expect(errorOf({ nnodes: 2, nodeRank: 0 }, { MASTER_PORT: 'http' }).message).toContain('MASTER_PORT=http');
    expect(errorOf({ nnodes: 2, nodeRank: 0, masterAddr: 'two words' }).message).toContain('--master-addr two words');
  });
});

describe('resolveTopology: mpirun', () => {
  const ompi = (rank: number, size: number, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
    OMPI_COMM_WORLD_RANK: String(rank),
    OMPI_COMM_WORLD_SIZE: String(size),
    OMPI_COMM_WORLD_LOCAL_RANK: String(rank),
    OMPI_COMM_WORLD_LOCAL_SIZE: String(size),
    ...extra,
  });

  it("Open MPI: each process is one node of one rank; the master from MASTER_ADDR or the flags' default", () => {
    const t = resolveTopology({}, ompi(2, 4))!;
    expect(t).toEqual<Topology>({
      launcher: 'mpirun',
      nnodes: 4,
      nodeRank: 2,
      nprocPerNode: 1,
      worldSize: 4,
      firstRank: 2,
      localRank: 2,
      masterAddr: '127.0.0.1',
      masterPort: 29500,
    });
    const m = resolveTopology({ masterPort: 29600 }, ompi(0, 2, { MASTER_ADDR: 'head' }))!;
    expect([m.masterAddr, m.masterPort]).toEqual(['head', 29600]);
  });

  it('MPICH / Hydra: PMI_RANK and PMI_SIZE', () => {
    const t = resolveTopology({}, { PMI_RANK: '1', PMI_SIZE: '3', MPI_LOCALRANKID: '1', MPI_LOCALNRANKS: '3' })!;
    expect([t.launcher, t.nodeRank, t.nnodes, t.localRank]).toEqual(['mpirun', 1, 3, 1]);
  });

  it('accepts flags that agree with the environment, and names both when they contradict it', () => {
    expect(resolveTopology({ nnodes: 4, nodeRank: 2 }, ompi(2, 4))!.nodeRank).toBe(2);
    const n = errorOf({ nnodes: 8 }, ompi(2, 4));
    expect(n.message).toContain('--nnodes 8');
    expect(n.message).toContain('OMPI_COMM_WORLD_SIZE=4');
    const r = errorOf({ nodeRank: 0 }, ompi(2, 4));
    expect(r.message).toContain('--node-rank 0');
    expect(r.message).toContain('OMPI_COMM_WORLD_RANK=2');
    expect(errorOf({ nprocPerNode: 2 }, ompi(2, 4)).message).toContain('--nproc-per-node 2');
  });

  it('processes on several hosts need to be told where node 0 is', () => {
    const e = errorOf({}, ompi(1, 4, { OMPI_COMM_WORLD_LOCAL_SIZE: '2' }));
    expect(e.message).toContain('OMPI_COMM_WORLD_LOCAL_SIZE=2');
    expect(e.hint).toContain('MASTER_ADDR');
    expect(resolveTopology({}, ompi(1, 4, { OMPI_COMM_WORLD_LOCAL_SIZE: '2', MASTER_ADDR: 'h0' }))!.masterAddr).toBe(
      'h0',
    );
  });

  it('refuses a damaged environment, naming the variable', () => {
    expect(errorOf({}, { OMPI_COMM_WORLD_RANK: 'x', OMPI_COMM_WORLD_SIZE: '2' }).message).toContain(
      'OMPI_COMM_WORLD_RANK=x',
    );
    expect(errorOf({}, ompi(4, 4)).message).toContain('OMPI_COMM_WORLD_RANK=4 is not below OMPI_COMM_WORLD_SIZE=4');
  });
});

describe('resolveTopology: Slurm', () => {
  const slurm = (rank: number, size: number, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
    SLURM_PROCID: String(rank),
    SLURM_NTASKS: String(size),
    SLURM_LOCALID: '1',
    SLURM_JOB_NODELIST: 'gpu-[009-011],cpu1',
    ...extra,
  });

  it("each task is one node of one rank, with the rendezvous on the node list's first host", () => {
    expect(resolveTopology({}, slurm(3, 4))).toEqual<Topology>({
      launcher: 'slurm',
      nnodes: 4,
      nodeRank: 3,
      nprocPerNode: 1,
      worldSize: 4,
      firstRank: 3,
      localRank: 1,
      masterAddr: 'gpu-009',
      masterPort: 29500,
    });
  });

  it("prefers the step's node list, then the job's, then SLURM_NODELIST; MASTER_ADDR and the flags win", () => {
    expect(resolveTopology({}, slurm(0, 2, { SLURM_STEP_NODELIST: 'step[2-3]' }))!.masterAddr).toBe('step2');
    const legacy = slurm(0, 2, { SLURM_NODELIST: 'old[5-6]' });
    delete legacy.SLURM_JOB_NODELIST;
    expect(resolveTopology({}, legacy)!.masterAddr).toBe('old5');
    expect(resolveTopology({}, slurm(0, 2, { MASTER_ADDR: 'm' }))!.masterAddr).toBe('m');
    const f = resolveTopology({ masterAddr: 'f', masterPort: 1234 }, slurm(0, 2, { MASTER_PORT: '999' }))!;
    expect([f.masterAddr, f.masterPort]).toEqual(['f', 1234]);
    // a damaged list does not matter when the address is given
    expect(resolveTopology({ masterAddr: 'f' }, slurm(0, 2, { SLURM_JOB_NODELIST: 'n[1-' }))!.masterAddr).toBe('f');
  });

  it('names a damaged node list, and flags that contradict the tasks', () => {
    const e = errorOf({}, slurm(0, 2, { SLURM_JOB_NODELIST: 'n[1-' }));
    expect(e.message).toContain('SLURM_JOB_NODELIST=n[1-');
    const c = errorOf({ nnodes: 3 }, slurm(0, 2));
    expect(c.message).toContain('--nnodes 3');
    expect(c.message).toContain('SLURM_NTASKS=2');
  });

  it('srun with PMI (PMI_RANK = SLURM_PROCID) is Slurm; Hydra inside a batch job (they differ) is mpirun', () => {
    expect(resolveTopology({}, slurm(1, 2, { PMI_RANK: '1', PMI_SIZE: '2' }))!.launcher).toBe('slurm');
    const hydra = resolveTopology({}, slurm(0, 1, { PMI_RANK: '3', PMI_SIZE: '4', MASTER_ADDR: 'h' }))!;
    expect([hydra.launcher, hydra.nodeRank, hydra.nnodes]).toEqual(['mpirun', 3, 4]);
  });

  it('mpirun inside a Slurm job is mpirun', () => {
    const t = resolveTopology({}, slurm(0, 4, { OMPI_COMM_WORLD_RANK: '1', OMPI_COMM_WORLD_SIZE: '2' }))!;
    expect([t.launcher, t.nodeRank, t.nnodes]).toEqual(['mpirun', 1, 2]);
  });
});

describe('Slurm host lists', () => {
  it('expands ranges and lists, keeping zero padding', () => {
    expect(expandSlurmHostList('node[01-04,07],gpu-a[1-2]')).toEqual([
      'node01',
      'node02',
      'node03',
      'node04',
      'node07',
      'gpu-a1',
      'gpu-a2',
    ]);
    expect(expandSlurmHostList('n1,n2')).toEqual(['n1', 'n2']);
    expect(expandSlurmHostList('host-[009-011]')).toEqual(['host-009', 'host-010', 'host-011']);
    expect(expandSlurmHostList('a[8-10]')).toEqual(['a8', 'a9', 'a10']);
    expect(expandSlurmHostList('r[1-2]n[1-2].x')).toEqual(['r1n1.x', 'r1n2.x', 'r2n1.x', 'r2n2.x']);
    expect(expandSlurmHostList('single')).toEqual(['single']);
  });

  it('takes the first host without expanding a huge list', () => {
    expect(firstSlurmHost('big[0000001-9999999],other')).toBe('big0000001');
    expect(firstSlurmHost('x,y[1-2]')).toBe('x');
    expect(expandSlurmHostList('big[1-9999999]', 'L', 3)).toEqual(['big1', 'big2', 'big3']);
  });

  it('refuses a list that is not one, naming the variable', () => {
    for (const bad of ['n[1-2', 'n1-2]', 'n[a-b]', 'n[3-1]', 'a,,b', 'n[]', 'n[[1]]']) {
      expect(() => expandSlurmHostList(bad, 'SLURM_STEP_NODELIST')).toThrow(/SLURM_STEP_NODELIST=/);
    }
  });
});

describe('describeTopology', () => {
  it('says it in one line', () => {
    const t = resolveTopology({ nnodes: 2, nodeRank: 1, masterPort: 29555 }, {})!;
    expect(describeTopology(t)).toBe(
      'node 1 of 2 (ranks 1..1 of 2) via torchrun-style flags, rendezvous 127.0.0.1:29555',
    );
    const s = resolveTopology({}, { SLURM_PROCID: '0', SLURM_NTASKS: '2', SLURM_NODELIST: 'h[1-2]' })!;
    expect(describeTopology(s)).toBe('node 0 of 2 (ranks 0..0 of 2) via Slurm (srun), rendezvous h1:29500');
    const v6 = resolveTopology({ nnodes: 2, nodeRank: 0, nprocPerNode: 4, masterAddr: '::1' }, {})!;
    expect(describeTopology(v6)).toBe('node 0 of 2 (ranks 0..3 of 8) via torchrun-style flags, rendezvous [::1]:29500');
  });
});
