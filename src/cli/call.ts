/**
 * gpt2-studio call NAME [JSON] [--home DIR]: answers any request of the service, as the app and the browser send
 * them (the same handler, the same validation of its argument), and prints the reply as JSON. `gpt2-studio call
 * list` prints the request names. Useful for scripts: `gpt2-studio call runs-get '{"id": "run-..."}'`.
 */
import { ErrorCode, StudioError } from '../shared/errors';
import { Studio } from '../node/studio';
import { resolveHome } from '../node/workspace';
import { parse, type CliIo } from './common';

export async function callCommand(argv: string[], io: CliIo): Promise<number> {
  const positionals: string[] = [];
  let i = 0;
  for (; i < argv.length && !argv[i]!.startsWith('--') && positionals.length < 2; i++) positionals.push(argv[i]!);
  const a = parse(argv.slice(i), { home: { type: 'string' } }, 'call');
  const [name, json] = positionals;
  if (!name) {
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      'call needs a request name and at most one JSON argument.',
      'Usage: gpt2-studio call NAME [JSON] [--home DIR]; "gpt2-studio call list" prints the names.',
    );
  }
  const studio = new Studio({ home: resolveHome({ flag: a.home }) });
  try {
    if (name === 'list') {
      io.out(studio.registry.names().join('\n') + '\n');
      return 0;
    }
    let arg: unknown;
    if (json !== undefined) {
      try {
        arg = JSON.parse(json);
      } catch (e) {
        throw new StudioError(
          ErrorCode.BAD_ARGUMENT,
          `The argument of "${name}" is not JSON: ${(e as Error).message}.`,
          `Quote it for the shell, e.g. gpt2-studio call ${name} '{"id": "..."}'.`,
        );
      }
    }
    const value = await studio.registry.call(studio, name, arg);
    io.out(JSON.stringify(value ?? null, null, 2) + '\n');
    return 0;
  } finally {
    await studio.shutdown();
  }
}
