/**
 * Model commands: import (GPT-2 weights into the workspace's models/ folder, where every page of the app offers
 * them) and models (what is there: imported weights and checkpoints).
 */
import { ErrorCode, StudioError } from '../shared/errors';
import { Studio } from '../node/studio';
import { resolveHome } from '../node/workspace';
import { parse, type CliIo } from './common';

const opts = {
  home: { type: 'string' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

/** gpt2-studio import PATH [--name N] [--home DIR] [--json] */
export async function importCommand(argv: string[], io: CliIo): Promise<number> {
  const [src, ...rest] = argv;
  if (!src || src.startsWith('-')) {
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      'import needs a path.',
      'Usage: gpt2-studio import PATH [--name N], with PATH a .safetensors file or a folder holding model.safetensors.',
    );
  }
  const a = parse(rest, { ...opts, name: { type: 'string' } }, 'import');
  const studio = new Studio({ home: resolveHome({ flag: a.home }) });
  try {
    const m = await studio.invoke('models-import', { path: src, name: a.name });
    if (a.json) io.out(JSON.stringify(m) + '\n');
    else
      io.out(
        `imported ${src} as ${m.key}: ${m.params.toLocaleString('en-US')} parameters, ${m.nLayer} layers, context ${m.blockSize} (commands take it as --weights ${m.key})\n`,
      );
    return 0;
  } finally {
    studio.close();
  }
}

/** gpt2-studio models [--home DIR] [--json] */
export async function modelsCommand(argv: string[], io: CliIo): Promise<number> {
  const a = parse(argv, opts, 'models');
  const studio = new Studio({ home: resolveHome({ flag: a.home }) });
  try {
    const list = await studio.invoke('models-list');
    if (a.json) io.out(JSON.stringify(list) + '\n');
    else if (list.length === 0)
      io.out(`No models in ${studio.home}. Import GPT-2 weights with "gpt2-studio import PATH", or train a run.\n`);
    else {
      for (const m of list)
        io.out(`${m.key.padEnd(40)} ${m.params.toLocaleString('en-US').padStart(14)} params  ${m.label}\n`);
      io.out('(a name above works as --weights NAME in sample, score, info and hellaswag)\n');
    }
    return 0;
  } finally {
    studio.close();
  }
}
