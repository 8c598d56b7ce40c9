/**
 * What ran: one entry per attempt of a run (its first start, and each resume), recorded by the training worker
 * when the model is built. Shared by the service, the CLI and the renderer.
 */

export interface HostFacts {
  hostname: string;
  /** CPU model name */
  cpu: string;
  /** logical cores available to the process */
  cores: number;
  memBytes: number;
  /** GPU names, where the machine reports them */
  gpus: string[];
  os: string;
}

export interface RunAttempt {
  /** ms since the epoch */
  startedAt: number;
  /** the step the attempt started at (0, or the checkpoint it resumed from) */
  fromStep: number;
  /** the engine that ran: native-cpu, native-cuda or tfjs (never "auto") */
  engine: string;
  /** GEMM or TF.js backend: blas, builtin, cublas, wasm, tensorflow, cpu ... */
  backend: string;
  /** build details: compiler, SIMD, BLAS, CUDA arch, TF.js version */
  build: string;
  threads: number | null;
  /** matmul precision: fp32, tf32, bf16 */
  precision: string;
  worldSize: number;
  /** the shape trained: from the weights or checkpoint when init_from is not scratch */
  model: { n_layer: number; n_head: number; n_embd: number; block_size: number; vocab_size: number; params: number };
  initFrom: string;
  host: HostFacts;
  studioVersion: string;
  /** the git commit the studio ran from ("+changes" when the checkout had uncommitted changes); null outside git */
  commit: string | null;
}

/** "native-cpu (blas, 2 threads, fp32)" */
export function engineLabel(a: Pick<RunAttempt, 'engine' | 'backend' | 'threads' | 'precision'>): string {
  const parts = [a.backend];
  if (a.threads) parts.push(`${a.threads} thread${a.threads === 1 ? '' : 's'}`);
  parts.push(a.precision);
  return `${a.engine} (${parts.join(', ')})`;
}

/** "4L·4H·128C, 7.27M params" */
export function shapeLabel(m: RunAttempt['model']): string {
  const p = m.params >= 1e6 ? `${(m.params / 1e6).toFixed(2)}M` : m.params.toLocaleString('en-US');
  return `${m.n_layer}L·${m.n_head}H·${m.n_embd}C, ${p} params`;
}

/** Whether the attempts ran on more than one engine configuration (a resume on another engine). */
export function mixedEngines(attempts: readonly RunAttempt[]): boolean {
  return new Set(attempts.map((a) => `${a.engine}|${a.backend}|${a.precision}`)).size > 1;
}
