import { describe, expect, it } from 'vitest';
import { checkRunConfig } from '../../../shared/run-config';
import { DEFAULTS, errorsByField, FIELD_PATHS, getAt, parseNumberText, SECTIONS, setAt } from './config-form';

describe('the New run form model', () => {
  it('sets and removes dotted paths without touching the original', () => {
    const c = { model: { preset: 'nano' }, dataset: 'builtin' };
    const d = setAt(c, 'model.n_layer', 2);
    expect(d).toEqual({ model: { preset: 'nano', n_layer: 2 }, dataset: 'builtin' });
    expect(c.model).toEqual({ preset: 'nano' });
    expect(setAt(d, 'model.preset', undefined)).toEqual({ model: { n_layer: 2 }, dataset: 'builtin' });
    expect(setAt({}, 'sample.prompt', 'Hi')).toEqual({ sample: { prompt: 'Hi' } });
    expect(getAt(d, 'model.n_layer')).toBe(2);
    expect(getAt(d, 'model.n_layer.x')).toBeUndefined();
  });

  it('reads number fields: empty is the default, text that is not a number stays text for the schema to name', () => {
    expect(parseNumberText('')).toBeUndefined();
    expect(parseNumberText(' 6e-4 ')).toBe(6e-4);
    expect(parseNumberText('abc')).toBe('abc');
    const r = checkRunConfig(setAt({ dataset: 'd', max_steps: 10 }, 'max_lr', parseNumberText('abc')));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(errorsByField(r.errors).get('max_lr')).toEqual(['max_lr must be a number']);
  });

  it('covers every field of the run schema, and puts errors of other paths under ""', () => {
    // every key of a parsed config (defaults filled in) has a field, nested ones by their dotted path
    const leaves = (o: Record<string, unknown>, prefix = ''): string[] =>
      Object.entries(o).flatMap(([k, v]) =>
        typeof v === 'object' && v !== null && !Array.isArray(v)
          ? leaves(v as Record<string, unknown>, `${prefix}${k}.`)
          : [`${prefix}${k}`],
      );
    for (const path of leaves(DEFAULTS)) expect(FIELD_PATHS.has(path), path).toBe(true);
    expect(SECTIONS.length).toBeGreaterThan(4);
    const m = errorsByField([
      { field: '(config)', message: 'unknown field(s): colour' },
      { field: 'model', message: 'unknown field(s): n_kv' },
      { field: 'max_lr', message: 'max_lr must be <= 1' },
    ]);
    expect(m.get('')).toEqual(['unknown field(s): colour', 'model: unknown field(s): n_kv']);
    expect(m.get('max_lr')).toEqual(['max_lr must be <= 1']);
  });
});
