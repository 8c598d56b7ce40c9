import { describe, expect, it } from 'vitest';
import { endReasonText } from './end-reason';

describe('end reason text', () => {
  it('names the real reason, with the context size when the context was the limit', () => {
    expect(endReasonText('eot')).toBe('ended at end of text');
    expect(endReasonText('length', 256)).toBe('max tokens reached');
    expect(endReasonText('context', 256)).toBe('context full (256 tokens)');
    expect(endReasonText('context', 1024)).toBe('context full (1,024 tokens)');
    expect(endReasonText('context', null)).toBe('context full');
    expect(endReasonText('stop')).toBe('stopped');
    expect(endReasonText('error')).toBe('failed');
  });
});
