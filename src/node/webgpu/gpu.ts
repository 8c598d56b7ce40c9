/**
 * The WebGPU adapter of the native-webgpu engine: Dawn through the optional `webgpu` package (Metal on macOS,
 * Vulkan on Linux, D3D12 on Windows), what it is (name, backend, software or not, limits), and a device with the
 * adapter's largest buffer limits.
 */
import { createRequire } from 'node:module';
import { ErrorCode, StudioError } from '../../shared/errors';

/* eslint-disable @typescript-eslint/no-explicit-any -- the WebGPU objects come from an optional package */
export type Gpu = any;

/** The backend Dawn is asked for on each platform (GPT2_STUDIO_WEBGPU_BACKEND overrides it). */
export function defaultBackend(platform: NodeJS.Platform = process.platform): string {
  return platform === 'darwin' ? 'metal' : platform === 'win32' ? 'd3d12' : 'vulkan';
}

const BACKEND_NAMES: Record<string, string> = {
  metal: 'Metal',
  vulkan: 'Vulkan',
  d3d12: 'D3D12',
  d3d11: 'D3D11',
  opengl: 'OpenGL',
  opengles: 'OpenGL ES',
  null: 'null',
};

/** The limits the engine sizes its work by. */
export interface WebGpuLimits {
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
  maxComputeWorkgroupStorageSize: number;
  maxComputeInvocationsPerWorkgroup: number;
  maxComputeWorkgroupsPerDimension: number;
  maxStorageBuffersPerShaderStage: number;
}

export interface AdapterFacts {
  /** e.g. "llvmpipe: Mesa 25.0.7 (LLVM 15.0.6)", "Apple M2" */
  name: string;
  vendor: string;
  architecture: string;
  /** Metal, Vulkan, D3D12 */
  backend: string;
  /** a CPU renderer (lavapipe / llvmpipe, SwiftShader, WARP): correct, but never picked by "auto" */
  software: boolean;
  shaderF16: boolean;
  timestampQuery: boolean;
  limits: WebGpuLimits;
}

const SOFTWARE = /llvmpipe|lavapipe|swiftshader|microsoft basic render|warp/i;

/** Whether an adapter is a software renderer, from what it says of itself. */
export function isSoftwareAdapter(info: {
  vendor?: string;
  architecture?: string;
  device?: string;
  description?: string;
  isFallbackAdapter?: boolean;
}): boolean {
  if (info.isFallbackAdapter) return true;
  if ((info.architecture ?? '').toLowerCase() === 'software') return true;
  return SOFTWARE.test(`${info.device ?? ''} ${info.description ?? ''} ${info.vendor ?? ''}`);
}

export interface WebGpuRuntime {
  gpu: Gpu;
  adapter: Gpu;
  facts: AdapterFacts;
  /** whether `adapter` has given its device */
  used: boolean;
}

interface DawnModule {
  create(flags: string[]): Gpu;
  globals: Record<string, unknown>;
}

let dawn: { mod: DawnModule } | { error: string } | null = null;

function loadDawn(): DawnModule {
  if (!dawn) {
    try {
      // the package is ESM, but its native part is a CommonJS addon: load it the way the package does
      const require = createRequire(import.meta.url);
      const pkgJson = require.resolve('webgpu/package.json');
      const dir = pkgJson.slice(0, -'package.json'.length);
      const arch = process.platform === 'darwin' ? 'universal' : process.arch;
      const mod = require(`${dir}dist/${process.platform}-${arch}/dawn.node`) as DawnModule;
      Object.assign(globalThis, mod.globals); // GPUBufferUsage, GPUMapMode, ... as in a browser
      dawn = { mod };
    } catch (e) {
      const code = (e as { code?: string }).code;
      dawn = {
        error:
          code === 'MODULE_NOT_FOUND' && /webgpu\/package\.json/.test(String(e))
            ? 'the optional "webgpu" package is not installed'
            : `the "webgpu" package did not load: ${(e instanceof Error ? e.message : String(e)).split('\n')[0]}`,
      };
    }
  }
  if ('error' in dawn)
    throw new StudioError(
      ErrorCode.ENGINE_UNAVAILABLE,
      `The native-webgpu engine is not available: ${dawn.error}.`,
      'Run npm ci (the "webgpu" package is an optional dependency), or use --engine native-cpu.',
    );
  return dawn.mod;
}

let runtime: Promise<WebGpuRuntime> | null = null;

/** The adapter, asked for once per process. */
export function webgpuRuntime(env: NodeJS.ProcessEnv = process.env): Promise<WebGpuRuntime> {
  if (!runtime) {
    runtime = (async () => {
      const mod = loadDawn();
      const backend = env.GPT2_STUDIO_WEBGPU_BACKEND || defaultBackend();
      const flags = [`backend=${backend}`];
      if (env.GPT2_STUDIO_WEBGPU_ADAPTER) flags.push(`adapter=${env.GPT2_STUDIO_WEBGPU_ADAPTER}`);
      if (env.GPT2_STUDIO_WEBGPU_TOGGLES) flags.push(`enable-dawn-features=${env.GPT2_STUDIO_WEBGPU_TOGGLES}`);
      const gpu = mod.create(flags);
      const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
      if (!adapter) {
        const hint =
          process.platform === 'linux'
            ? 'Install a Vulkan driver (mesa-vulkan-drivers from bookworm-backports gives the lavapipe CPU renderer; a GPU needs its vendor Vulkan driver), or use --engine native-cpu.'
            : 'Update the graphics driver, or use --engine native-cpu.';
        throw new StudioError(
          ErrorCode.ENGINE_UNAVAILABLE,
          `The native-webgpu engine is not available: no ${BACKEND_NAMES[backend] ?? backend} adapter was found.`,
          hint,
        );
      }
      const info = adapter.info ?? {};
      const l = adapter.limits;
      const facts: AdapterFacts = {
        name: String(info.description || info.device || info.vendor || 'unknown adapter').trim(),
        vendor: String(info.vendor ?? ''),
        architecture: String(info.architecture ?? ''),
        backend: BACKEND_NAMES[backend] ?? backend,
        software: isSoftwareAdapter(info),
        shaderF16: adapter.features.has('shader-f16'),
        timestampQuery: adapter.features.has('timestamp-query'),
        limits: {
          maxStorageBufferBindingSize: Number(l.maxStorageBufferBindingSize),
          maxBufferSize: Number(l.maxBufferSize),
          maxComputeWorkgroupStorageSize: Number(l.maxComputeWorkgroupStorageSize),
          maxComputeInvocationsPerWorkgroup: Number(l.maxComputeInvocationsPerWorkgroup),
          maxComputeWorkgroupsPerDimension: Number(l.maxComputeWorkgroupsPerDimension),
          maxStorageBuffersPerShaderStage: Number(l.maxStorageBuffersPerShaderStage),
        },
      };
      return { gpu, adapter, facts, used: false };
    })();
    runtime.catch(() => {
      runtime = null; // a later call may try again (a driver installed meanwhile)
    });
  }
  return runtime;
}

/**
 * A device with the adapter's largest buffer and binding limits (the defaults are far below what GPUs have). An
 * adapter gives one device, so each device comes from a fresh adapter of the same kind.
 */
export async function requestDevice(
  rt: WebGpuRuntime,
  want: { timestamps?: boolean; f16?: boolean } = {},
): Promise<Gpu> {
  const l = rt.facts.limits;
  const adapter = rt.used ? await rt.gpu.requestAdapter({ powerPreference: 'high-performance' }) : rt.adapter;
  rt.used = true;
  if (!adapter) throw new Error('the adapter is no longer available');
  const requiredFeatures: string[] = [];
  if (want.timestamps && rt.facts.timestampQuery) requiredFeatures.push('timestamp-query');
  if (want.f16 && rt.facts.shaderF16) requiredFeatures.push('shader-f16');
  return adapter.requestDevice({
    requiredFeatures,
    requiredLimits: {
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
    },
  });
}

/** "128 MiB" */
export function mib(bytes: number): string {
  return bytes >= 2 ** 30
    ? `${(bytes / 2 ** 30).toFixed(bytes % 2 ** 30 ? 1 : 0)} GiB`
    : `${Math.round(bytes / 2 ** 20)} MiB`;
}
