/**
 * npm run bench: runs every benchmark, each in its own process so that one's memory and threads do not skew
 * the next. Each prints one JSON line per figure (see bench/lib.ts). Arguments after `--` go to every benchmark;
 * `--only NAME[,NAME]` picks some (train-tfjs, native, dp, tokenize, trainer-overhead, hellaswag, responsiveness, eta,
 * webgpu).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const BENCHES = [
  'train-tfjs',
  'native',
  'dp',
  'tokenize',
  'trainer-overhead',
  'hellaswag',
  'responsiveness',
  'eta',
  'webgpu',
];

const argv = process.argv.slice(2);
const onlyAt = argv.indexOf('--only');
const onlyArg = onlyAt >= 0 ? argv[onlyAt + 1] : undefined;
if (onlyAt >= 0 && onlyArg === undefined) throw new Error('--only needs a value: NAME[,NAME]');
const only = onlyArg !== undefined ? onlyArg.split(',') : null;
const rest = onlyAt >= 0 ? [...argv.slice(0, onlyAt), ...argv.slice(onlyAt + 2)] : argv;
const runTs = fileURLToPath(new URL('../bin/run-ts.mjs', import.meta.url));

let failed = 0;
for (const name of BENCHES) {
  if (only && !only.includes(name)) continue;
  const file = fileURLToPath(new URL(`./${name}.ts`, import.meta.url));
  if (!existsSync(file)) continue;
  process.stderr.write(`[bench] ${name}\n`);
  const r = spawnSync(process.execPath, [runTs, file, ...rest], { stdio: 'inherit' });
  if (r.status !== 0) {
    failed++;
    process.stderr.write(`[bench] ${name} failed (exit ${r.status ?? r.signal})\n`);
  }
}
process.exitCode = failed ? 1 : 0;
