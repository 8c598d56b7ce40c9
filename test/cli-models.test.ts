import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../src/cli/main';
import { hasFixture, sharedPath } from './shared';

async function run(argv: string[]) {
  let out = '';
  let err = '';
  const code = await main(argv, { out: (s) => (out += s), err: (s) => (err += s) });
  return { code, out, err };
}

describe.skipIf(!hasFixture('fixtures/gpt2-tiny/model.safetensors'))('gpt2-studio import / models', () => {
  it('imports the fixture into the workspace and lists it; a bad file is refused with its name', async () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-cli-models-'));
    try {
      const empty = await run(['models', '--home', home]);
      expect(empty.out).toContain('No models in');
      const imp = await run(['import', sharedPath('fixtures/gpt2-tiny'), '--name', 'tiny', '--home', home]);
      expect(imp.code).toBe(0);
      expect(imp.out).toContain('1,637,792 parameters');
      const list = await run(['models', '--home', home, '--json']);
      expect(JSON.parse(list.out).map((m: { key: string }) => m.key)).toEqual(['model:tiny']);
      const bad = await run(['import', sharedPath('fixtures/bad-inputs/st_empty.safetensors'), '--home', home]);
      expect(bad.code).not.toBe(0);
      expect(bad.err).toContain('st_empty.safetensors');
      expect(bad.err).toContain('hint:');
      const none = await run(['import', '--home', home]);
      expect(none.err).toContain('import needs a path');

      // the names that "models" prints work as --weights in the other commands
      expect(imp.out).toContain('--weights model:tiny');
      const info = await run(['info', '--weights', 'model:tiny', '--home', home, '--json']);
      expect(info.code, info.err).toBe(0);
      expect(JSON.parse(info.out).parameters).toBe(1_637_792);
      const sample = await run([
        'sample',
        '--weights',
        'model:tiny',
        '--home',
        home,
        '--engine',
        'tfjs',
        '--num',
        '1',
        '--max-new-tokens',
        '4',
        '--json',
      ]);
      expect(sample.code, sample.err).toBe(0);
      expect(JSON.parse(sample.out).samples[0].tokens).toHaveLength(4);
      const missing = await run(['info', '--weights', 'model:nope', '--home', home]);
      expect(missing.code).not.toBe(0);
      expect(missing.err).toContain('No imported model "nope"');
      const noCkpt = await run(['info', '--weights', 'ckpt:run-x:5', '--home', home]);
      expect(noCkpt.err).toContain('run run-x has no checkpoint at step 5');
    } finally {
      fs.rmSync(home, { recursive: true, force: true });
    }
  });
});
