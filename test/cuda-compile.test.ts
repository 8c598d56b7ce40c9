/**
 * The CUDA engine (native/cuda/gpt2_cuda.cu, which includes the engine's .cuh files) compiles wherever nvcc is, even
 * without cuBLAS, NCCL or a GPU: the stub headers of native/test/stubs declare the library functions it calls. Both builds are checked, without and
 * with NCCL (-DGPT2_USE_NCCL), and each object is checked to call what that build should call. Skipped without nvcc
 * (CUDA_HOME, PATH, or /usr/local/cuda/bin/nvcc).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from './shared';

function findNvcc(): string | null {
  const homes = [process.env.CUDA_HOME, process.env.CUDA_PATH].filter((h): h is string => !!h);
  for (const h of homes) if (fs.existsSync(path.join(h, 'bin', 'nvcc'))) return path.join(h, 'bin', 'nvcc');
  const onPath = spawnSync('sh', ['-c', 'command -v nvcc'], { encoding: 'utf8' });
  if (onPath.status === 0 && onPath.stdout.trim()) return onPath.stdout.trim();
  return fs.existsSync('/usr/local/cuda/bin/nvcc') ? '/usr/local/cuda/bin/nvcc' : null;
}

const nvcc = findNvcc();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cuda-compile-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Compiles the engine to an object file; returns the object's bytes (its symbol names are in there as text). */
function compile(name: string, flags: string[]): string {
  const obj = path.join(tmp, `${name}.o`);
  const args = [
    '-std=c++17',
    '-arch=sm_90',
    ...flags,
    '-c',
    'native/cuda/gpt2_cuda.cu',
    '-I',
    'native/test/stubs',
    '-o',
    obj,
  ];
  const r = spawnSync(nvcc!, args, { cwd: repoRoot, encoding: 'utf8', timeout: 230_000 });
  expect(r.status, `nvcc ${args.join(' ')}\n${r.stdout}${r.stderr}`).toBe(0);
  return fs.readFileSync(obj).toString('latin1');
}

describe.skipIf(!nvcc)('native/cuda/gpt2_cuda.cu compiles with nvcc', () => {
  it('without NCCL: cuBLAS (SGEMM and the BF16 GemmEx) and the shared-memory communicator', () => {
    const o = compile('shm', []);
    for (const s of [
      'gpt2_forward_backward',
      'gpt2_allreduce_grads',
      'gpt2_comm_create',
      'cublasGemmEx',
      'cublasSgemm',
      'allreduce_mean',
    ])
      expect(o).toContain(s);
    expect(o).not.toContain('ncclAllReduce');
  }, 240_000);

  it('with -DGPT2_USE_NCCL: also NCCL', () => {
    const o = compile('nccl', ['-DGPT2_USE_NCCL']);
    for (const s of [
      'gpt2_allreduce_grads',
      'gpt2_comm_allreduce_mean',
      'ncclAllReduce',
      'ncclCommInitRankConfig',
      'ncclGetUniqueId',
      'allreduce_mean',
    ])
      expect(o).toContain(s);
  }, 240_000);
});
