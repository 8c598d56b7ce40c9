/** gpt2-studio report RUN_ID [--out FILE] [--home DIR]: a run's report, one HTML page that stands alone. */
import fs from 'node:fs';
import path from 'node:path';
import { ErrorCode, StudioError } from '../shared/errors';
import { Studio } from '../node/studio';
import { resolveHome } from '../node/workspace';
import { parse, type CliIo } from './common';

export async function reportCommand(argv: string[], io: CliIo): Promise<number> {
  const [id, ...rest] = argv;
  if (!id || id.startsWith('-'))
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      'report needs a run id.',
      'Usage: gpt2-studio report RUN_ID [--out FILE] ("gpt2-studio runs" lists the ids).',
    );
  const a = parse(
    rest,
    { home: { type: 'string' }, out: { type: 'string' }, help: { type: 'boolean', short: 'h', default: false } },
    'report',
  );
  if (a.help) {
    io.out('gpt2-studio report RUN_ID [--out FILE|DIR|-] [--home DIR]\n');
    return 0;
  }
  const studio = new Studio({ home: resolveHome({ flag: a.home }) });
  try {
    const { html, fileName } = await studio.invoke('runs-report', { id });
    // "-" writes the page to stdout (to pipe it); a folder gets the report's own file name
    if (a.out === '-') {
      io.out(html);
      return 0;
    }
    let file = path.resolve(a.out ?? fileName);
    if (fs.existsSync(file) && fs.statSync(file).isDirectory()) file = path.join(file, fileName);
    const dir = path.dirname(file);
    if (!fs.existsSync(dir))
      throw new StudioError(
        ErrorCode.FILE_NOT_FOUND,
        `The folder ${dir} for --out ${a.out} does not exist.`,
        'Create it first, or pass --out with a file in an existing folder.',
      );
    fs.writeFileSync(file, html);
    io.out(`wrote the report of run ${id} to ${file}\n`);
    return 0;
  } finally {
    studio.close();
  }
}
