/**
 * native-webgpu against the PyTorch fixture (test/support/fixture-suite.ts), on whatever adapter Dawn finds here
 * (lavapipe in CI).
 */
import { webgpuEngine } from '../src/node/webgpu/engine';
import { webgpuSkip } from './support/webgpu';
import { fixtureSuite } from './support/fixture-suite';

const skip = await webgpuSkip();
fixtureSuite('native-webgpu engine against the PyTorch fixture (gpt2-tiny)', () => webgpuEngine(), skip);
