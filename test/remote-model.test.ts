/**
 * Models in a worker thread: the same numbers as the model in this thread, KV-cache decoding included; a bad
 * target fails the open with its own error; dispose ends the worker.
 */
import { describe, expect, it } from 'vitest';
import { getEngine } from '../src/node/engines';
import { openRemoteModel } from '../src/node/generation/remote-model';
import { loadGpt2Weights } from '../src/node/models/weights';
import { StudioError } from '../src/shared/errors';
import { hasFixture, sharedPath } from './shared';

const TINY = 'fixtures/gpt2-tiny';

describe.skipIf(!hasFixture(`${TINY}/model.safetensors`))('RemoteModel', () => {
  it('computes what the same engine computes in this thread: logits, token losses, KV-cache decoding', async () => {
    const w = loadGpt2Weights(sharedPath(TINY));
    const engine = await getEngine('auto');
    const local = await engine.createModel(w.config, w.tensors);
    const remote = await openRemoteModel('/nonexistent-home', { weightsPath: sharedPath(TINY) }, engine.name);
    try {
      expect(remote.model.engine).toBe(local.engine);
      expect(remote.config).toEqual(local.config);
      const inputs = Int32Array.from([50256, 464, 2068, 7586, 21831, 18045]);
      const targets = Int32Array.from([464, 2068, 7586, 21831, 18045, 625]);
      expect(Array.from(await remote.model.logits(inputs, 1, 6))).toEqual(Array.from(await local.logits(inputs, 1, 6)));
      expect(Array.from(await remote.model.tokenLosses({ B: 1, T: 6, inputs, targets }))).toEqual(
        Array.from(await local.tokenLosses({ B: 1, T: 6, inputs, targets })),
      );
      const rc = remote.model.createCache(1, 16);
      const lc = local.createCache(1, 16);
      expect(Array.from(await remote.model.decodeStep(rc, inputs, 6))).toEqual(
        Array.from(await local.decodeStep(lc, inputs, 6)),
      );
      expect(Array.from(await remote.model.decodeStep(rc, Int32Array.of(625), 1))).toEqual(
        Array.from(await local.decodeStep(lc, Int32Array.of(625), 1)),
      );
      expect(rc.length).toBe(7);
      rc.dispose();
      lc.dispose();
      expect(() => remote.model.zeroGrad()).toThrow(/not available on a model opened for inference/);
    } finally {
      local.dispose();
      remote.model.dispose();
    }
    // after dispose, the worker is gone: a call fails with a clear error instead of hanging
    await new Promise((r) => setTimeout(r, 200));
    await expect(remote.model.logits(Int32Array.of(1), 1, 1)).rejects.toThrow(/model worker stopped/);
  });

  it('fails the open with the loader error, which names the file', async () => {
    const bad = sharedPath('fixtures/bad-inputs/st_header_not_json.safetensors');
    const err = await openRemoteModel('/nonexistent-home', { weightsPath: bad }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StudioError);
    expect((err as StudioError).message).toContain('st_header_not_json.safetensors');
    expect((err as StudioError).hint).not.toBe('');
  });
});
