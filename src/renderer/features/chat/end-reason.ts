/**
 * Why an answer (or a sample) ended, in the words every page uses. The reasons are those of generate-done and of
 * a stored answer (EndReason in src/core/sampling.ts, or 'error'): the model ended the text, max tokens were
 * generated, the model's context filled first, or it was stopped.
 */
import type { StudioEvents } from '../../../shared/contract';
import { int } from '../../format';

export type EndReason = StudioEvents['generate-done']['reason'];

/** e.g. "ended at end of text", "max tokens reached", "context full (256 tokens)", "stopped". */
export function endReasonText(reason: EndReason | string, contextTokens?: number | null): string {
  switch (reason) {
    case 'eot':
      return 'ended at end of text';
    case 'length':
      return 'max tokens reached';
    case 'context':
      return contextTokens ? `context full (${int(contextTokens)} tokens)` : 'context full';
    case 'stop':
      return 'stopped';
    case 'error':
      return 'failed';
    default:
      return reason;
  }
}
