/**
 * What an attempt of a run actually ran on: the engine and its build, the model shape, the host and the studio.
 * The training worker gathers it when its model is built; the service stores it on the run, one entry per attempt.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { EngineInfo } from '../../core/engine/types';
import { paramCount, type GPTConfig } from '../../core/model/config';
import type { HostFacts, RunAttempt } from '../../shared/run-facts';

/** The repository (or installed package) root: the folder holding the studio's package.json. */
function packageRoot(): string | null {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return null;
}

let studioCache: { version: string; commit: string | null } | undefined;

/** The studio's version (package.json) and the git commit it runs from, when it runs from a checkout. */
export function studioBuild(): { version: string; commit: string | null } {
  if (studioCache) return studioCache;
  const root = packageRoot();
  let version = 'unknown';
  let commit: string | null = null;
  if (root) {
    try {
      version = String(
        (JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version?: unknown }).version ??
          'unknown',
      );
    } catch {
      // an unreadable package.json leaves the version unknown
    }
    if (fs.existsSync(path.join(root, '.git'))) {
      try {
        commit =
          execFileSync('git', ['rev-parse', 'HEAD'], {
            cwd: root,
            encoding: 'utf8',
            timeout: 3000,
            stdio: ['ignore', 'pipe', 'ignore'],
          }).trim() || null;
        const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], {
          cwd: root,
          encoding: 'utf8',
          timeout: 3000,
          stdio: ['ignore', 'pipe', 'ignore'],
        }).trim();
        if (commit && dirty) commit += '+changes';
      } catch {
        // no git on this machine: no commit
      }
    }
  }
  studioCache = { version, commit };
  return studioCache;
}

/** NVIDIA GPU names, from nvidia-smi where it is installed (an empty list elsewhere). */
function gpuNames(): string[] {
  try {
    const out = execFileSync('nvidia-smi', ['--query-gpu=name', '--format=csv,noheader'], {
      encoding: 'utf8',
      timeout: 5000,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    return out
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean);
  } catch {
    return [];
  }
}

/** This machine: CPU model, cores, memory, GPUs, OS. */
export function hostFacts(): HostFacts {
  const cpus = os.cpus();
  return {
    hostname: os.hostname(),
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: os.availableParallelism(),
    memBytes: os.totalmem(),
    gpus: gpuNames(),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
  };
}

/** The facts of one attempt, from the engine that was built and the model it trains. */
export function attemptFacts(
  info: EngineInfo,
  mc: GPTConfig,
  o: { fromStep: number; worldSize: number; initFrom: string; startedAt?: number },
): RunAttempt {
  const f = info.facts ?? { engine: info.name, backend: 'unknown', build: info.detail, precision: 'fp32' };
  const b = studioBuild();
  return {
    startedAt: o.startedAt ?? Date.now(),
    fromStep: o.fromStep,
    engine: f.engine,
    backend: f.backend,
    build: f.build,
    threads: f.threads ?? null,
    precision: f.precision,
    worldSize: o.worldSize,
    model: {
      n_layer: mc.nLayer,
      n_head: mc.nHead,
      n_embd: mc.nEmbd,
      block_size: mc.blockSize,
      vocab_size: mc.vocabSize,
      params: paramCount(mc),
    },
    initFrom: o.initFrom,
    host: hostFacts(),
    studioVersion: b.version,
    commit: b.commit,
  };
}
