import * as tf from '@tensorflow/tfjs';
import { ErrorCode, StudioError } from '../shared/errors';
import type { Engine, EngineInfo } from '../core/engine/types';
import { TfjsEngine } from '../core/engine/tfjs';

/** TF.js backends, fastest first. The two native ones are optional dependencies that need libtensorflow. */
export const TFJS_BACKENDS = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;
export type TfjsBackendName = (typeof TFJS_BACKENDS)[number];

const BACKEND_PACKAGE: Record<TfjsBackendName, string> = {
  'tensorflow-gpu': '@tensorflow/tfjs-node-gpu',
  tensorflow: '@tensorflow/tfjs-node',
  wasm: '@tensorflow/tfjs-backend-wasm',
  cpu: '@tensorflow/tfjs-backend-cpu',
};

export interface BackendChoice {
  backend: TfjsBackendName;
  /** for every backend above the chosen one: why it was not used */
  notes: string[];
}

let chosen: BackendChoice | null = null;

function reason(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.split('\n')[0].slice(0, 200);
}

async function tryBackend(name: TfjsBackendName): Promise<string | null> {
  try {
    if (name === 'tensorflow-gpu' || name === 'tensorflow') {
      const pkg = BACKEND_PACKAGE[name];
      try {
        await import(pkg);
      } catch (e) {
        const code = (e as { code?: string }).code;
        return code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND'
          ? `${pkg} is not installed (an optional dependency: it needs libtensorflow, which its install step downloads)`
          : `${pkg} failed to load: ${reason(e)}`;
      }
    } else if (name === 'wasm') {
      await import('@tensorflow/tfjs-backend-wasm');
    }
    const ok = await tf.setBackend(name);
    if (!ok) return `TF.js could not initialize the ${name} backend`;
    await tf.ready();
    return null;
  } catch (e) {
    return `${BACKEND_PACKAGE[name]}: ${reason(e)}`;
  }
}

/**
 * Picks the TF.js backend: the one asked for (flag, else GPT2_STUDIO_TFJS_BACKEND), else the fastest that loads,
 * in the order tensorflow-gpu, tensorflow, wasm, cpu. Says why each faster one was passed over.
 */
export async function selectTfjsBackend(pref?: string, env: NodeJS.ProcessEnv = process.env): Promise<BackendChoice> {
  const want = pref ?? env.GPT2_STUDIO_TFJS_BACKEND;
  if (chosen && (!want || want === chosen.backend)) return chosen;
  tf.enableProdMode();
  if (want) {
    if (!(TFJS_BACKENDS as readonly string[]).includes(want)) {
      throw new StudioError(ErrorCode.BAD_ARGUMENT, `Unknown TF.js backend "${want}".`, `Use one of: ${TFJS_BACKENDS.join(', ')}.`);
    }
    const why = await tryBackend(want as TfjsBackendName);
    if (why) throw new StudioError(ErrorCode.ENGINE_UNAVAILABLE, `The TF.js backend "${want}" is not available: ${why}.`, `Leave the backend unset to pick the fastest available one.`);
    chosen = { backend: want as TfjsBackendName, notes: [`backend ${want} was requested`] };
    return chosen;
  }
  const notes: string[] = [];
  for (const b of TFJS_BACKENDS) {
    const why = await tryBackend(b);
    if (!why) {
      chosen = { backend: b, notes };
      return chosen;
    }
    notes.push(`${b}: ${why}`);
  }
  throw new StudioError(ErrorCode.ENGINE_UNAVAILABLE, `No TF.js backend could start: ${notes.join('; ')}.`, 'Reinstall the project dependencies (npm ci).');
}

export const ENGINE_NAMES = ['tfjs', 'native-cpu', 'native-cuda'] as const;

/** The engine by name (default: the fastest available; today that is tfjs). */
export async function getEngine(name = 'auto', opts: { backend?: string } = {}): Promise<Engine> {
  if (name === 'auto' || name === 'tfjs') {
    const choice = await selectTfjsBackend(opts.backend);
    return new TfjsEngine(choice.notes);
  }
  if (name === 'native-cpu' || name === 'native-cuda') {
    throw new StudioError(
      ErrorCode.ENGINE_UNAVAILABLE,
      `The ${name} engine is not part of this build.`,
      'Use --engine tfjs (the default).',
    );
  }
  throw new StudioError(ErrorCode.BAD_ARGUMENT, `Unknown engine "${name}".`, `Use one of: auto, ${ENGINE_NAMES.join(', ')}.`);
}

/** Every engine with its availability and the reasons, for `gpt2-studio engines` and Settings. */
export async function describeEngines(): Promise<EngineInfo[]> {
  const out: EngineInfo[] = [];
  try {
    out.push((await getEngine('tfjs')).info());
  } catch (e) {
    out.push({ name: 'tfjs', available: false, detail: '', notes: [reason(e)] });
  }
  for (const n of ['native-cpu', 'native-cuda']) {
    out.push({ name: n, available: false, detail: '', notes: ['not part of this build yet'] });
  }
  return out;
}
