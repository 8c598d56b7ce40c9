import { describe, expect, it } from 'vitest';
import { DEFAULT_SAMPLING_SETTINGS } from '../../../shared/models';
import { DEFAULT_FORM, formOf, parseForm, sameSettings } from './settings-form';

describe('chat sampling settings form', () => {
  it('parses the defaults back to the defaults', () => {
    expect(parseForm(DEFAULT_FORM)).toEqual({ settings: DEFAULT_SAMPLING_SETTINGS, errors: {} });
    expect(parseForm(formOf({ temperature: 0, topK: 0, topP: 1, maxTokens: 1, seed: 4_294_967_295 })).settings).toEqual(
      { temperature: 0, topK: 0, topP: 1, maxTokens: 1, seed: 4_294_967_295 },
    );
  });

  it('names each bad value and what is accepted, and gives no settings then', () => {
    const r = parseForm({ temperature: 'warm', topK: '2.5', topP: '0', maxTokens: '', seed: '-1' });
    expect(r.settings).toBeNull();
    expect(r.errors).toEqual({
      temperature: '“warm” is not a number.',
      topK: '2.5 must be a whole number from 0 (off) to 100000.',
      topP: '0 must be above 0 and at most 1 (1 = off).',
      maxTokens: 'Required.',
      seed: '-1 must be a whole number from 0 to 4294967295.',
    });
    expect(parseForm({ ...DEFAULT_FORM, temperature: '11' }).errors.temperature).toBe(
      '11 is outside 0 to 10 (0 = greedy).',
    );
    expect(parseForm({ ...DEFAULT_FORM, topP: '1.01' }).errors.topP).toMatch(/at most 1/);
  });

  it("refuses max tokens above the chosen model's context, naming both and the fix", () => {
    const over = parseForm({ ...DEFAULT_FORM, maxTokens: '5000' }, 256);
    expect(over.settings).toBeNull();
    expect(over.errors).toEqual({
      maxTokens: "5000 is more than the model's context of 256 tokens; lower it to 256 or less.",
    });
    expect(parseForm({ ...DEFAULT_FORM, maxTokens: '256' }, 256).settings?.maxTokens).toBe(256);
    // no model chosen yet: only the general bound applies
    expect(parseForm({ ...DEFAULT_FORM, maxTokens: '5000' }).settings?.maxTokens).toBe(5000);
  });

  it('compares settings with the system message, an absent one equal to an empty one', () => {
    expect(sameSettings(DEFAULT_SAMPLING_SETTINGS, { ...DEFAULT_SAMPLING_SETTINGS, system: '' })).toBe(true);
    expect(sameSettings(DEFAULT_SAMPLING_SETTINGS, { ...DEFAULT_SAMPLING_SETTINGS, system: 'Be brief.' })).toBe(false);
    expect(sameSettings(DEFAULT_SAMPLING_SETTINGS, { ...DEFAULT_SAMPLING_SETTINGS, seed: 1 })).toBe(false);
  });
});
