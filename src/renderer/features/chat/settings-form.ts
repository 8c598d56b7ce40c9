/**
 * The sampling settings form of the Chat page: text fields, parsed and checked as the service checks them, so
 * that a bad value is explained next to its field instead of failing the send.
 */
import { DEFAULT_SAMPLING_SETTINGS, type SamplingSettings } from '../../../shared/models';

export type SamplingField = keyof SamplingSettings;
export type SettingsForm = Record<SamplingField, string>;

export const SAMPLING_FIELDS: readonly SamplingField[] = ['temperature', 'topK', 'topP', 'maxTokens', 'seed'];

export const FIELD_LABEL: Record<SamplingField, string> = {
  temperature: 'Temperature',
  topK: 'Top-k',
  topP: 'Top-p',
  maxTokens: 'Max tokens',
  seed: 'Seed',
};

export function formOf(s: SamplingSettings): SettingsForm {
  return {
    temperature: String(s.temperature),
    topK: String(s.topK),
    topP: String(s.topP),
    maxTokens: String(s.maxTokens),
    seed: String(s.seed),
  };
}

export const DEFAULT_FORM: SettingsForm = formOf(DEFAULT_SAMPLING_SETTINGS);

export interface ParsedForm {
  /** the settings, when every field is valid */
  settings: SamplingSettings | null;
  errors: Partial<Record<SamplingField, string>>;
}

const MAX_SEED = 4_294_967_295;

/**
 * Parses every field; an error says what is wrong with the value and what is accepted. `contextTokens`, the chosen
 * model's context (block_size), bounds max tokens as the service does: a value above it is refused at send, so it
 * is marked here first.
 */
export function parseForm(f: SettingsForm, contextTokens?: number): ParsedForm {
  const errors: Partial<Record<SamplingField, string>> = {};
  const num = (field: SamplingField): number => {
    const raw = f[field].trim();
    if (raw === '') {
      errors[field] = 'Required.';
      return NaN;
    }
    const v = Number(raw);
    if (!Number.isFinite(v)) errors[field] = `“${raw}” is not a number.`;
    return v;
  };
  const temperature = num('temperature');
  if (!errors.temperature && (temperature < 0 || temperature > 10))
    errors.temperature = `${temperature} is outside 0 to 10 (0 = greedy).`;
  const topK = num('topK');
  if (!errors.topK && (!Number.isInteger(topK) || topK < 0 || topK > 100_000))
    errors.topK = `${topK} must be a whole number from 0 (off) to 100000.`;
  const topP = num('topP');
  if (!errors.topP && !(topP > 0 && topP <= 1)) errors.topP = `${topP} must be above 0 and at most 1 (1 = off).`;
  const maxTokens = num('maxTokens');
  if (!errors.maxTokens && (!Number.isInteger(maxTokens) || maxTokens < 1 || maxTokens > 100_000))
    errors.maxTokens = `${maxTokens} must be a whole number from 1 to 100000.`;
  else if (!errors.maxTokens && contextTokens !== undefined && maxTokens > contextTokens) {
    errors.maxTokens = `${maxTokens} is more than the model's context of ${contextTokens} tokens; lower it to ${contextTokens} or less.`;
  }
  const seed = num('seed');
  if (!errors.seed && (!Number.isInteger(seed) || seed < 0 || seed > MAX_SEED))
    errors.seed = `${seed} must be a whole number from 0 to ${MAX_SEED}.`;
  const ok = Object.keys(errors).length === 0;
  return { settings: ok ? { temperature, topK, topP, maxTokens, seed } : null, errors };
}

/** Whether two settings are the same (what is saved already needs no update). */
export function sameSettings(
  a: SamplingSettings & { system?: string },
  b: SamplingSettings & { system?: string },
): boolean {
  return SAMPLING_FIELDS.every((k) => a[k] === b[k]) && (a.system ?? '') === (b.system ?? '');
}
