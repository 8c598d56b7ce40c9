/**
 * Training presets: resources/presets/<name>.json, each {title, description, config}. The desktop package ships
 * them as extra resources; from the repository they are read in place.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCode, StudioError } from '../../shared/errors';
import type { TrainingPreset } from '../../shared/api/runs';
export type { TrainingPreset };

/**
 * The presets folder: GPT2_STUDIO_PRESETS, else resources/presets of the repository, found upwards from this module
 * (src/node/runs/ from the sources, out/main/ in the built app).
 */
export function presetsDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.GPT2_STUDIO_PRESETS) return path.resolve(env.GPT2_STUDIO_PRESETS);
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = path.join(dir, 'resources', 'presets');
    if (fs.existsSync(candidate)) return candidate;
    dir = path.dirname(dir);
  }
  return fileURLToPath(new URL('../../../resources/presets', import.meta.url));
}

function readPreset(file: string): TrainingPreset {
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new StudioError(ErrorCode.BAD_CONFIG, `Preset ${file} is not valid JSON.`, 'Fix or remove the file.', {
      cause: e,
    });
  }
  const p = raw as Partial<TrainingPreset>;
  if (typeof p.config !== 'object' || p.config === null) {
    throw new StudioError(
      ErrorCode.BAD_CONFIG,
      `Preset ${file} has no "config" object.`,
      'A preset is {"title", "description", "config": {...run config...}}.',
    );
  }
  const name = path.basename(file, '.json');
  return {
    name,
    title: p.title ?? name,
    description: p.description ?? '',
    config: p.config as Record<string, unknown>,
  };
}

export function listPresets(dir = presetsDir()): TrainingPreset[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => readPreset(path.join(dir, f)));
}

export function getPreset(name: string, dir = presetsDir()): TrainingPreset {
  const all = listPresets(dir);
  const p = all.find((x) => x.name === name);
  if (!p)
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `Unknown preset "${name}".`,
      `Presets: ${all.map((x) => x.name).join(', ')}.`,
    );
  return structuredClone(p);
}
