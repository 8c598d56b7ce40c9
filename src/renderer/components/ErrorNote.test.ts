import { createElement } from 'react';
import { renderToStaticMarkup } from 'react-dom/server';
import { describe, expect, it } from 'vitest';
import { ErrorCode, StudioError } from '../../shared/errors';
import { ErrorNote } from './ErrorNote';

const html = (error: unknown) => renderToStaticMarkup(createElement(ErrorNote, { error }));

describe('ErrorNote', () => {
  it('shows the message and hint of an Error, a StudioError and a plain error as the service stores it', () => {
    expect(html(new Error('disk full'))).toContain('disk full');
    const studio = html(new StudioError(ErrorCode.BAD_CONFIG, 'bad lr', 'Lower max_lr.'));
    expect(studio).toContain('bad lr');
    expect(studio).toContain('Lower max_lr.');
    // a failed run's error arrives as {code, message, hint}: never "[object Object]"
    const plain = html({
      code: 'TRAINING_DIVERGED',
      message: 'The loss spiked 5 times in a row.',
      hint: 'Lower max_lr, raise warmup_steps.',
    });
    expect(plain).toContain('The loss spiked 5 times in a row.');
    expect(plain).toContain('Lower max_lr, raise warmup_steps.');
    expect(plain).not.toContain('[object Object]');
    expect(html('plain text')).toContain('plain text');
  });
});
