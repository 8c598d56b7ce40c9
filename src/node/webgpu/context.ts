/**
 * The command plumbing of the native-webgpu engine: compiled pipelines, a ring of uniform blocks written once per
 * submission, dispatches recorded into one compute pass per command encoder, reads back through staging buffers, and
 * the device's errors and loss turned into StudioErrors.
 */
import { ErrorCode, StudioError } from '../../shared/errors';
import type { Gpu } from './gpu';
import type { KernelSource } from './kernels';

/** A storage binding: a whole buffer, or a byte range of one. */
export interface Binding {
  buffer: Gpu;
  offset?: number;
  size?: number;
}

/** Uniform blocks per submission (each in its own 256-byte slot); a fuller submission is split. */
const SLOTS = 4096;
const SLOT_BYTES = 256;
/** Workgroups per grid dimension (WebGPU's guaranteed maximum). */
export const MAX_GRID = 65535;

/** Storage usage of every buffer the engine makes. */
export const STORAGE = 0x80 | 0x4 | 0x8; // STORAGE | COPY_SRC | COPY_DST

/** What one dispatch cost, when profiling (timestamp queries). */
export interface KernelTime {
  name: string;
  ms: number;
}

export class GpuContext {
  private readonly pipelines = new Map<string, Gpu>();
  private readonly arena: Gpu;
  private readonly arenaData = new ArrayBuffer(SLOTS * SLOT_BYTES);
  private readonly arenaView = new DataView(this.arenaData);
  private slot = 0;
  private encoder: Gpu = null;
  private pass: Gpu = null;
  /** the first validation or out-of-memory error the device reported, said at the next read */
  private error: string | null = null;
  /** why the device was lost, once it is */
  lostReason: string | null = null;
  /** the largest storage binding made so far, in bytes (tests check it never passes the limit) */
  maxBoundBytes = 0;
  /** dispatches recorded so far */
  dispatches = 0;
  // profiling: one timestamp pair per dispatch
  private readonly profile: { query: Gpu; resolve: Gpu; names: string[]; capacity: number } | null = null;
  readonly times: KernelTime[] = [];

  constructor(
    readonly device: Gpu,
    /** the most bytes one storage binding may hold (the adapter's limit, or less when asked) */
    readonly maxBinding: number,
    profile = false,
  ) {
    this.arena = device.createBuffer({ size: SLOTS * SLOT_BYTES, usage: 0x40 | 0x8 }); // UNIFORM | COPY_DST
    device.addEventListener?.('uncapturederror', (ev: Gpu) => {
      this.error ??= String(ev?.error?.message ?? ev?.error ?? 'unknown error').split('\n')[0]!;
    });
    device.lost.then((info: Gpu) => {
      this.lostReason ??= `${info?.reason ?? 'unknown'}${info?.message ? `: ${info.message}` : ''}`;
    });
    if (profile) {
      const capacity = 2048; // dispatches per submission: two timestamps each, 4096 queries at most
      this.profile = {
        query: device.createQuerySet({ type: 'timestamp', count: capacity * 2 }),
        resolve: device.createBuffer({ size: capacity * 16, usage: 0x200 | 0x4 }), // QUERY_RESOLVE | COPY_SRC
        names: [],
        capacity,
      };
    }
  }

  /** Throws when the device is gone, so no call records work that will never run. */
  check(): void {
    if (this.lostReason !== null) {
      throw new StudioError(
        ErrorCode.DEVICE_LOST,
        `The WebGPU device was lost (${this.lostReason}).`,
        'The driver reset or the GPU was removed. Resume the run from its last checkpoint; if it happens again, update the graphics driver or use --engine native-cpu.',
      );
    }
    if (this.error !== null) {
      const e = this.error;
      this.error = null;
      const oom = /out of memory|OutOfMemory|allocation/i.test(e);
      throw new StudioError(
        oom ? ErrorCode.OUT_OF_MEMORY : ErrorCode.INTERNAL,
        `native-webgpu: the device reported: ${e}`,
        oom
          ? 'Lower batch_size or the model size, or close other programs using the GPU.'
          : 'Report this with the command that caused it; --engine native-cpu is the fallback.',
      );
    }
  }

  buffer(bytes: number, what: string): Gpu {
    this.check();
    const size = Math.max(16, Math.ceil(bytes / 16) * 16);
    try {
      return this.device.createBuffer({ size, usage: STORAGE });
    } catch (e) {
      throw new StudioError(
        ErrorCode.OUT_OF_MEMORY,
        `native-webgpu could not allocate ${what} (${(bytes / 2 ** 20).toFixed(1)} MiB): ${e instanceof Error ? e.message : String(e)}`,
        'Lower batch_size or the model size.',
      );
    }
  }

  private pipeline(k: KernelSource): Gpu {
    let p = this.pipelines.get(k.name);
    if (!p) {
      const module = this.device.createShaderModule({ code: k.code, label: k.name });
      p = this.device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' }, label: k.name });
      this.pipelines.set(k.name, p);
    }
    return p;
  }

  private begin(): void {
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    if (!this.pass && !this.profile) this.pass = this.encoder.beginComputePass();
  }

  private endPass(): void {
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
  }

  /** Records one dispatch of `k` over `grid` workgroups. */
  dispatch(
    k: KernelSource,
    values: Record<string, number>,
    bindings: Binding[],
    grid: [number, number?, number?],
  ): void {
    this.check();
    if (bindings.length !== k.bindings.length)
      throw new Error(`${k.name}: ${bindings.length} bindings given, ${k.bindings.length} declared`);
    const [gx, gy = 1, gz = 1] = grid;
    if (gx === 0 || gy === 0 || gz === 0) return;
    if (gx > MAX_GRID || gy > MAX_GRID || gz > MAX_GRID)
      throw new Error(`${k.name}: grid ${grid.join('x')} is too large`);
    if (this.slot === SLOTS || (this.profile && this.profile.names.length === this.profile.capacity)) this.flush();
    this.begin();
    const off = this.slot * SLOT_BYTES;
    k.uniform.pack(this.arenaView, off, values);
    this.slot++;
    const pipe = this.pipeline(k);
    const entries = [{ binding: 0, resource: { buffer: this.arena, offset: off, size: k.uniform.bytes } }];
    bindings.forEach((b, i) => {
      const size = b.size ?? b.buffer.size - (b.offset ?? 0);
      if (size > this.maxBinding)
        throw new Error(`${k.name}: a binding of ${size} bytes passes the ${this.maxBinding}-byte limit`);
      if (size > this.maxBoundBytes) this.maxBoundBytes = size;
      entries.push({ binding: i + 1, resource: { buffer: b.buffer, offset: b.offset ?? 0, size } });
    });
    const group = this.device.createBindGroup({ layout: pipe.getBindGroupLayout(0), entries });
    let pass = this.pass;
    if (this.profile) {
      const i = this.profile.names.length;
      this.profile.names.push(k.name);
      pass = this.encoder.beginComputePass({
        timestampWrites: {
          querySet: this.profile.query,
          beginningOfPassWriteIndex: 2 * i,
          endOfPassWriteIndex: 2 * i + 1,
        },
      });
    }
    pass.setPipeline(pipe);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(gx, gy, gz);
    if (this.profile) pass.end();
    this.dispatches++;
  }

  /** Records a dispatch of an elementwise kernel over n items (256 per workgroup, on a 2-D grid). */
  dispatchFlat(k: KernelSource, values: Record<string, number>, bindings: Binding[], n: number, perGroup = 256): void {
    const groups = Math.ceil(n / perGroup);
    const gx = Math.min(groups, MAX_GRID);
    this.dispatch(k, values, bindings, [gx, Math.ceil(groups / gx)]);
  }

  /** Zeroes a buffer (or a range of it), in order with the dispatches. */
  clear(buffer: Gpu, offset = 0, size?: number): void {
    this.check();
    this.begin();
    this.endPass();
    this.encoder.clearBuffer(buffer, offset, size);
  }

  /** Writes data to a buffer after everything recorded so far. */
  write(buffer: Gpu, byteOffset: number, data: ArrayBufferView): void {
    this.flush();
    this.device.queue.writeBuffer(buffer, byteOffset, data.buffer, data.byteOffset, data.byteLength);
  }

  /** Submits what was recorded. */
  flush(): void {
    this.check();
    if (!this.encoder) return;
    this.endPass();
    let pendingNames: string[] = [];
    if (this.profile && this.profile.names.length > 0) {
      const n = this.profile.names.length;
      this.encoder.resolveQuerySet(this.profile.query, 0, 2 * n, this.profile.resolve, 0);
      pendingNames = this.profile.names.splice(0);
    }
    if (this.slot > 0) this.device.queue.writeBuffer(this.arena, 0, this.arenaData, 0, this.slot * SLOT_BYTES);
    const cmd = this.encoder.finish();
    this.encoder = null;
    this.slot = 0;
    this.device.queue.submit([cmd]);
    if (pendingNames.length > 0) this.collectTimes(pendingNames);
  }

  private profileReads: Promise<void> = Promise.resolve();
  private collectTimes(names: string[]): void {
    const prof = this.profile!;
    const bytes = names.length * 16;
    const staging = this.device.createBuffer({ size: bytes, usage: 0x1 | 0x8 }); // MAP_READ | COPY_DST
    const enc = this.device.createCommandEncoder();
    enc.copyBufferToBuffer(prof.resolve, 0, staging, 0, bytes);
    this.device.queue.submit([enc.finish()]);
    this.profileReads = this.profileReads.then(async () => {
      await staging.mapAsync(1);
      const t = new BigUint64Array(staging.getMappedRange().slice(0));
      staging.unmap();
      staging.destroy();
      names.forEach((name, i) => this.times.push({ name, ms: Number(t[2 * i + 1]! - t[2 * i]!) / 1e6 }));
    });
  }

  /** Waits for the timings of every profiled dispatch submitted so far. */
  async profiled(): Promise<KernelTime[]> {
    this.flush();
    await this.profileReads;
    return this.times;
  }

  /** Reads `bytes` bytes of `buffer` from `offset` once everything recorded has run. */
  async read(buffer: Gpu, offset: number, bytes: number): Promise<ArrayBuffer> {
    this.flush();
    const size = Math.ceil(bytes / 4) * 4;
    const staging = this.device.createBuffer({ size, usage: 0x1 | 0x8 }); // MAP_READ | COPY_DST
    const enc = this.device.createCommandEncoder();
    enc.copyBufferToBuffer(buffer, offset, staging, 0, size);
    this.device.queue.submit([enc.finish()]);
    try {
      await staging.mapAsync(1);
    } catch (e) {
      staging.destroy();
      this.check();
      throw new StudioError(
        ErrorCode.INTERNAL,
        `native-webgpu could not read a result back: ${e instanceof Error ? e.message : String(e)}`,
        'Report this with the command that caused it; --engine native-cpu is the fallback.',
      );
    }
    const out = staging.getMappedRange().slice(0, bytes) as ArrayBuffer;
    staging.unmap();
    staging.destroy();
    this.check();
    return out;
  }

  async readF32(buffer: Gpu, offsetFloats: number, count: number): Promise<Float32Array> {
    return new Float32Array(await this.read(buffer, offsetFloats * 4, count * 4));
  }

  /** Loses the device on purpose (tests of a lost device): the reason is set at once, as a driver reset would. */
  simulateLoss(): void {
    this.lostReason ??= 'destroyed: a device loss was simulated (GPT2_STUDIO_WEBGPU_LOSE_AFTER)';
    this.device.destroy();
  }

  destroy(): void {
    this.pass = null;
    this.encoder = null;
    this.device.destroy();
  }
}
