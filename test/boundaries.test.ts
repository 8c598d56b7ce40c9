/**
 * The layers hold: src/shared and src/renderer import nothing of src/node or src/core, not even types (so the web
 * typecheck never reads a node file). Shown by linting planted imports with the project's own lint config.
 */
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

// the planted files exist only here, so the rules that read types (through the tsconfig projects) are left out
const eslint = new ESLint({
  cwd: process.cwd(),
  overrideConfig: {
    languageOptions: { parserOptions: { projectService: false } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'off',
      '@typescript-eslint/await-thenable': 'off',
      '@typescript-eslint/no-misused-promises': 'off',
      '@typescript-eslint/switch-exhaustiveness-check': 'off',
    },
  },
});

async function errors(filePath: string, code: string): Promise<string[]> {
  const [r] = await eslint.lintText(code, { filePath });
  return r!.messages.filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message);
}

describe('import boundaries', () => {
  it.each([
    ['src/shared/planted.ts', "import type { Run } from '../node/store';\nexport type X = Run;\n"],
    ['src/shared/planted.ts', "import type { Model } from '../core/engine/types';\nexport type X = Model;\n"],
    ['src/shared/api/planted.ts', "import { listPresets } from '../../node/presets';\nexport const x = listPresets;\n"],
    ['src/renderer/planted.ts', "import type { Studio } from '../node/studio';\nexport type X = Studio;\n"],
    [
      'src/renderer/features/run/planted.ts',
      "import { formatStep } from '../../../core/train/trainer';\nexport const x = formatStep;\n",
    ],
  ])(
    'refuses a planted import in %s',
    async (file, code) => {
      expect((await errors(file, code)).length).toBe(1);
    },
    60_000,
  );

  it('accepts imports within the allowed layers', async () => {
    expect(
      await errors('src/shared/planted.ts', "import type { Run } from './records';\nexport type X = Run;\n"),
    ).toEqual([]);
    expect(
      await errors('src/renderer/planted.ts', "import type { Run } from '../shared/records';\nexport type X = Run;\n"),
    ).toEqual([]);
  }, 60_000);
});
