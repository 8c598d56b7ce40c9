import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const nodeBuiltins = [
  'node:*',
  'fs',
  'fs/*',
  'path',
  'os',
  'child_process',
  'worker_threads',
  'crypto',
  'http',
  'https',
  'url',
  'stream',
  'net',
  'util',
];

export default tseslint.config(
  {
    ignores: [
      '.tmp/**',
      'node_modules/**',
      'out/**',
      'dist/**',
      'native/build/**',
      'coverage/**',
      'test-results/**',
      'playwright-report/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'error',
    },
  },
  {
    // Rules that read the types (each file through its tsconfig): a promise nobody awaits or catches, a switch that
    // misses a case of its union.
    files: ['**/*.ts', '**/*.tsx'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      // an async handler on a JSX attribute is React's usual way; a promise where a condition is expected is not
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { attributes: false } }],
      '@typescript-eslint/switch-exhaustiveness-check': ['error', { considerDefaultExhaustiveForUnions: true }],
    },
  },
  {
    files: ['bin/**/*.mjs', 'scripts/**/*.mjs', 'eslint.config.js'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
  },
  {
    // Pure TypeScript: imports only src/shared and TF.js.
    files: ['src/core/**/*.ts'],
    ignores: ['**/*.test.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: nodeBuiltins,
              message: 'src/core is pure TypeScript: no Node built-ins. Put file or process work in src/node.',
            },
            { group: ['electron', 'electron/*'], message: 'src/core must not import Electron.' },
            {
              group: ['**/node/**', '**/main/**', '**/preload/**', '**/renderer/**', '**/cli/**'],
              message: 'src/core imports only src/shared and TF.js.',
            },
            { group: ['react', 'react-dom', 'react/*'], message: 'src/core has no DOM or React.' },
          ],
        },
      ],
    },
  },
  {
    // Shared by every process, the renderer included: it stands alone. Type-only imports are refused too, so that the
    // renderer's typecheck never reads a file of src/node or src/core.
    files: ['src/shared/**/*.ts'],
    ignores: ['**/*.test.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: nodeBuiltins,
              message: 'src/shared is used by every process, the renderer included: no Node built-ins.',
            },
            {
              group: [
                'electron',
                'electron/*',
                '**/core/**',
                '**/node/**',
                '**/main/**',
                '**/preload/**',
                '**/renderer/**',
                '**/cli/**',
              ],
              message:
                'src/shared imports only src/shared and plain packages (zod), type-only imports included: declare a type that crosses the boundary here.',
            },
          ],
        },
      ],
    },
  },
  {
    // The renderer: src/shared and browser packages only.
    files: ['src/renderer/**/*.{ts,tsx}'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: nodeBuiltins,
              message: 'The renderer runs in a browser: no Node built-ins. Ask the Studio service through the client.',
            },
            {
              group: ['electron', 'electron/*'],
              message: 'The renderer reaches Electron only through the preload API.',
            },
            {
              group: ['**/core/**', '**/node/**', '**/main/**', '**/preload/**', '**/cli/**'],
              message: 'The renderer imports only src/shared and browser packages.',
            },
          ],
        },
      ],
    },
  },
);
