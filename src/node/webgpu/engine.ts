/**
 * The native-webgpu engine: GPT-2 in WGSL on any WebGPU adapter Dawn finds (Metal, Vulkan, D3D12). Each model has
 * its own device. No data parallel: a run on this engine has one process.
 */
import { ErrorCode, StudioError } from '../../shared/errors';
import type { GPTConfig } from '../../core/model/config';
import type { NamedTensors } from '../../core/tensors';
import type { Engine, EngineInfo, Model } from '../../core/engine/types';
import { mib, requestDevice, webgpuRuntime, type AdapterFacts, type WebGpuRuntime } from './gpu';
import { WebGpuModel, type WebGpuModelOptions } from './model';

export type WebGpuOptions = WebGpuModelOptions;

/** Options from the environment: GPT2_STUDIO_WEBGPU_MAX_BINDING (bytes), GPT2_STUDIO_WEBGPU_LOSE_AFTER (passes). */
export function webgpuOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): WebGpuOptions {
  const o: WebGpuOptions = {};
  const num = (name: string): number | undefined => {
    const v = env[name];
    if (v === undefined || v === '') return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1)
      throw new StudioError(
        ErrorCode.BAD_ARGUMENT,
        `${name} = "${v}" is not a positive integer.`,
        `Set it to a whole number, or unset it.`,
      );
    return n;
  };
  o.maxBindingBytes = num('GPT2_STUDIO_WEBGPU_MAX_BINDING');
  o.loseAfter = num('GPT2_STUDIO_WEBGPU_LOSE_AFTER');
  return o;
}

/** "Vulkan, 128 MiB per binding, 4 GiB per buffer, 32 KiB workgroup memory, shader-f16" */
export function describeLimits(f: AdapterFacts): string {
  const l = f.limits;
  return [
    `${mib(l.maxStorageBufferBindingSize)} per binding`,
    `${mib(l.maxBufferSize)} per buffer`,
    `${Math.round(l.maxComputeWorkgroupStorageSize / 1024)} KiB workgroup memory`,
    f.shaderF16 ? 'shader-f16' : 'no shader-f16',
  ].join(', ');
}

export class WebGpuEngine implements Engine {
  readonly name = 'native-webgpu';

  constructor(
    private readonly rt: WebGpuRuntime,
    private readonly opts: WebGpuOptions = {},
    private readonly notes: string[] = [],
  ) {}

  get precision(): 'fp32' | 'fp16' {
    return this.opts.precision ?? 'fp32';
  }

  get adapter(): AdapterFacts {
    return this.rt.facts;
  }

  info(): EngineInfo {
    const f = this.rt.facts;
    const notes = [...this.notes, `limits: ${describeLimits(f)}`];
    if (this.precision === 'fp16' && !f.shaderF16)
      return {
        name: this.name,
        available: false,
        detail: `${f.name} (${f.backend})`,
        notes: [`precision fp16 needs the shader-f16 feature, which ${f.name} lacks; use precision fp32`],
      };
    if (f.software)
      notes.push(
        'a software (CPU) renderer: correct but slow, so "auto" never picks it; choose it with --engine native-webgpu',
      );
    notes.push(
      this.precision === 'fp16'
        ? 'fp16 matmul operands with fp32 accumulation and fp32 master weights; one process per run (no data parallel)'
        : `fp32 matmuls with fp32 master weights${f.shaderF16 ? ' (precision fp16 is available: shader-f16)' : ''}; one process per run (no data parallel)`,
    );
    return {
      name: this.name,
      available: true,
      detail: `${f.name} (${f.backend}${f.software ? ', software' : ''})`,
      notes,
      facts: {
        engine: this.name,
        backend: f.backend.toLowerCase(),
        build: `${f.name}; ${describeLimits(f)}`,
        precision: this.precision,
      },
    };
  }

  async createModel(config: GPTConfig, weights: NamedTensors): Promise<Model> {
    if (this.precision === 'fp16' && !this.rt.facts.shaderF16) {
      throw new StudioError(
        ErrorCode.ENGINE_UNAVAILABLE,
        `native-webgpu cannot compute in fp16: ${this.rt.facts.name} has no shader-f16 feature.`,
        'Set precision to fp32 (or auto).',
      );
    }
    let device;
    try {
      device = await requestDevice(this.rt, { timestamps: this.opts.profile, f16: this.precision === 'fp16' });
    } catch (e) {
      throw new StudioError(
        ErrorCode.ENGINE_UNAVAILABLE,
        `native-webgpu could not open a device on ${this.rt.facts.name}: ${e instanceof Error ? e.message : String(e)}`,
        'Use --engine native-cpu.',
      );
    }
    try {
      return new WebGpuModel(device, config, weights, this.rt.facts.limits.maxStorageBufferBindingSize, this.opts);
    } catch (e) {
      device.destroy();
      throw e;
    }
  }
}

/** The native-webgpu engine on this machine's adapter, or a StudioError (ENGINE_UNAVAILABLE) that says why not. */
export async function webgpuEngine(opts: WebGpuOptions = {}, notes: string[] = []): Promise<WebGpuEngine> {
  const rt = await webgpuRuntime();
  return new WebGpuEngine(rt, { ...webgpuOptionsFromEnv(), ...opts }, notes);
}
