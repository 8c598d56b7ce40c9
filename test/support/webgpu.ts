/** Whether the native-webgpu engine can run here: undefined when it can, else why not (the tests then skip). */
import { webgpuRuntime } from '../../src/node/webgpu/gpu';

export async function webgpuSkip(): Promise<string | undefined> {
  try {
    await webgpuRuntime();
    // CI installs lavapipe: there the engine must run, so an absent adapter fails instead of skipping
    return undefined;
  } catch (e) {
    if (process.env.CI) throw e;
    return e instanceof Error ? e.message : String(e);
  }
}
