/**
 * How native-webgpu is chosen: software adapters are recognised from what they say of themselves, each platform
 * asks Dawn for its own backend, and "auto" never picks a software adapter.
 */
import { describe, expect, it } from 'vitest';
import { defaultBackend, isSoftwareAdapter } from '../src/node/webgpu/gpu';
import { describeLimits } from '../src/node/webgpu/engine';
import { getEngine } from '../src/node/engines';
import { webgpuRuntime } from '../src/node/webgpu/gpu';
import { webgpuSkip } from './support/webgpu';

describe('native-webgpu selection', () => {
  it('recognises software adapters and leaves hardware ones alone', () => {
    // what Dawn reports for Mesa's lavapipe on this machine
    expect(
      isSoftwareAdapter({
        vendor: 'mesa',
        architecture: 'software',
        device: 'llvmpipe-llvm-15-0-6-256-bits-',
        description: 'llvmpipe: Mesa 25.0.7-2~bpo12+1 (LLVM 15.0.6) 0.0.1',
      }),
    ).toBe(true);
    expect(isSoftwareAdapter({ vendor: 'google', device: 'SwiftShader Device (Subzero)' })).toBe(true);
    expect(isSoftwareAdapter({ vendor: 'microsoft', description: 'Microsoft Basic Render Driver' })).toBe(true);
    expect(isSoftwareAdapter({ vendor: 'unknown', isFallbackAdapter: true })).toBe(true);
    expect(isSoftwareAdapter({ vendor: 'apple', architecture: 'metal-3', description: 'Apple M2' })).toBe(false);
    expect(isSoftwareAdapter({ vendor: 'amd', architecture: 'rdna-3', description: 'AMD Radeon RX 7900 XTX' })).toBe(
      false,
    );
    expect(
      isSoftwareAdapter({ vendor: 'intel', architecture: 'xe-lpg', description: 'Intel(R) Arc(TM) Graphics' }),
    ).toBe(false);
  });

  it("asks Dawn for each platform's own backend", () => {
    expect(defaultBackend('darwin')).toBe('metal');
    expect(defaultBackend('win32')).toBe('d3d12');
    expect(defaultBackend('linux')).toBe('vulkan');
  });

  it('describes the limits it sizes its work by', () => {
    const line = describeLimits({
      name: 'x',
      vendor: '',
      architecture: '',
      backend: 'Vulkan',
      software: false,
      shaderF16: true,
      timestampQuery: false,
      limits: {
        maxStorageBufferBindingSize: 128 * 2 ** 20,
        maxBufferSize: 2 ** 32 - 1,
        maxComputeWorkgroupStorageSize: 32768,
        maxComputeInvocationsPerWorkgroup: 1024,
        maxComputeWorkgroupsPerDimension: 65535,
        maxStorageBuffersPerShaderStage: 16,
      },
    });
    expect(line).toBe('128 MiB per binding, 4.0 GiB per buffer, 32 KiB workgroup memory, shader-f16');
  });

  it('"auto" passes over a software adapter and says so', async (ctx) => {
    const skip = await webgpuSkip();
    if (skip) return ctx.skip();
    const rt = await webgpuRuntime();
    if (!rt.facts.software) return ctx.skip(); // a hardware adapter: auto may rightly pick it
    const engine = await getEngine('auto');
    expect(engine.name).not.toBe('native-webgpu');
    expect(engine.info().notes.join('\n')).toMatch(
      /native-webgpu: .* is a software renderer, which "auto" never picks/,
    );
  }, 60_000);
});
