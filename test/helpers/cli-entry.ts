/**
 * Runs `prepare` or `datasets` in a plain Node process through tsx (node bin/run-ts.mjs test/helpers/cli-entry.ts
 * prepare ...), as bin/gpt2-studio.mjs will once main.ts dispatches them: the tokenizer workers must start there too.
 */
import { datasetsCommand, prepareCommand } from '../../src/cli/prepare';
import { toPlainError } from '../../src/shared/errors';

const [cmd, ...rest] = process.argv.slice(2);
const io = { out: (s: string) => void process.stdout.write(s), err: (s: string) => void process.stderr.write(s) };
try {
  process.exitCode = cmd === 'prepare' ? await prepareCommand(rest, io) : await datasetsCommand(rest, io);
} catch (e) {
  const p = toPlainError(e);
  process.stderr.write(`error: ${p.message}\nhint: ${p.hint}\n`);
  process.exitCode = p.code === 'BAD_ARGUMENT' ? 2 : 1;
}
