/** Generation requests (see src/node/generation/handlers.ts). */
import type { PlainError } from '../errors';
import type { ChatMessage, EndReason, ModelTarget, SamplingSettings } from '../models';

export interface GenerateRequest extends Partial<SamplingSettings> {
  target: ModelTarget;
  /** text to continue */
  prompt?: string;
  /** a conversation to answer, rendered with the chat template (see src/core/chat.ts) */
  messages?: ChatMessage[];
  engine?: string;
  /**
   * The id its events will carry, chosen by the client so that no event can arrive before the client knows it;
   * the service picks one when it is absent. It must not be the id of a generation still going.
   */
  genId?: string;
}

export interface GenerateStarted {
  genId: string;
  /** tokens in the prompt (after it was cut to fit the context) */
  promptTokens: number;
  /** the model's label */
  label: string;
}

/** Why a generation ended (see EndReason in src/core/sampling.ts), or `error` when it failed. */
export type GenerateEndReason = EndReason | 'error';

/** Push event `generate-token`: new text of a generation. */
export interface GenerateTokenEvent {
  genId: string;
  /** the new text (whole characters only) */
  text: string;
  /** tokens generated so far */
  tokens: number;
  tokensPerSec: number;
}

/** Push event `generate-done`: a generation ended. */
export interface GenerateDoneEvent {
  genId: string;
  /** all the generated text */
  text: string;
  tokens: number;
  tokensPerSec: number;
  reason: GenerateEndReason;
  /** the model's context (block_size) in tokens, what `context` ran into; 0 when the model did not load */
  contextTokens: number;
  error?: PlainError;
}

export interface SampleRequest extends Partial<SamplingSettings> {
  targets: ModelTarget[];
  prompt: string;
  engine?: string;
}

export interface SampleResult {
  key: string;
  label: string;
  text: string;
  tokens: number;
  tokensPerSec: number;
  /** why the text ended (absent when the model failed: see error) */
  reason?: EndReason;
  /** the model's context (block_size) in tokens; 0 when the model did not load */
  contextTokens: number;
  error?: PlainError;
}

export type GenerationHandlers = {
  'generate-start': (req: GenerateRequest) => Promise<GenerateStarted>;
  'generate-stop': (arg: { genId: string }) => Promise<{ stopped: boolean }>;
  'generate-sample': (req: SampleRequest) => Promise<SampleResult[]>;
};
