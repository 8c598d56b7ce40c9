/**
 * HellaSwag throughput (examples/s, four rows per example as one batch) on the fixture model and on a
 * gpt2-shaped (124M) random model, for each available engine. No peer: engines are compared with each other.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseHellaswag, runHellaswag } from '../src/core/evals/hellaswag';
import { presetConfig } from '../src/core/model/config';
import { initWeights } from '../src/core/model/init';
import { describeEngines, getEngine } from '../src/node/engines';
import { loadGpt2Weights } from '../src/node/models/weights';
import { printResult } from './lib';

const shared = path.resolve(
  process.env.GPT2_STUDIO_SHARED ?? path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'shared'),
);
const data = path.join(shared, 'data', 'hellaswag_val_1000.jsonl');

async function main(): Promise<void> {
  if (!fs.existsSync(data)) {
    process.stderr.write(`[bench] hellaswag: ${data} not found; set GPT2_STUDIO_SHARED\n`);
    return;
  }
  const examples = parseHellaswag(fs.readFileSync(data, 'utf8')).examples;
  const engines = (await describeEngines()).filter((e) => e.available).map((e) => e.name);
  const models = [
    {
      id: 'fixture',
      n: 40,
      load: () => {
        const w = loadGpt2Weights(path.join(shared, 'fixtures', 'gpt2-tiny'));
        return { config: w.config, weights: w.tensors };
      },
    },
    {
      id: 'gpt2-random',
      n: 4,
      load: () => {
        const c = presetConfig('gpt2');
        return { config: c, weights: initWeights(c, 1) };
      },
    },
  ];
  for (const m of models) {
    const { config, weights } = m.load();
    for (const name of engines) {
      const engine = await getEngine(name);
      const model = await engine.createModel(config, weights);
      try {
        await runHellaswag(model, examples, { limit: 1 }); // warm-up
        const t0 = performance.now();
        const r = await runHellaswag(model, examples.slice(1), { limit: m.n });
        const sec = (performance.now() - t0) / 1000;
        printResult({
          name: `hellaswag-${m.id}-${name}`,
          figure: r.summary.n / sec,
          unit: 'examples/s',
          peer: null,
          peerFigure: null,
          ratio: null,
          config: { examples: r.summary.n, engine: engine.info().detail },
        });
      } finally {
        model.dispose();
      }
    }
  }
}

await main();
