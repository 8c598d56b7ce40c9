import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root. */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** The shared fixtures folder: GPT2_STUDIO_SHARED, else ../shared beside the repository. */
export const sharedDir = path.resolve(process.env.GPT2_STUDIO_SHARED ?? path.join(repoRoot, '..', 'shared'));

export function sharedPath(rel: string): string {
  return path.join(sharedDir, rel);
}

export const hasFixture = (rel: string): boolean => existsSync(sharedPath(rel));
