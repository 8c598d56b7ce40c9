import os from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts', 'bench/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // two test files at once even on two cores: many of them wait on the processes they start (workers, mpirun,
    // compilers), which leaves a core idle under one file at a time
    maxWorkers: Math.max(2, os.availableParallelism() - 1),
  },
});
