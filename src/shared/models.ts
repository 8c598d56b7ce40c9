/**
 * Models as every page chooses them: imported GPT-2 weights or a run's checkpoint. Types only, shared by the
 * service and the renderer.
 */

/**
 * A model to load: a run's checkpoint (its last one when `step` is absent), weights imported into the workspace
 * (`models/<modelId>/`), or a weights file or folder anywhere.
 */
export type ModelTarget = { runId: string; step?: number } | { modelId: string } | { weightsPath: string };

/** One model that a page can offer (models-list). */
export interface ModelEntry {
  /** stable key: `model:<id>` for imported weights, `ckpt:<runId>:<step>` for a checkpoint */
  key: string;
  kind: 'imported' | 'checkpoint';
  /** what a picker shows, e.g. "gpt2 (imported)" or "nano on builtin · step 200" */
  label: string;
  target: ModelTarget;
  /** parameters (the config's count) */
  params: number;
  nLayer: number;
  nHead: number;
  nEmbd: number;
  blockSize: number;
  vocabSize: number;
  /** trained on an SFT dataset: chat uses the chat template */
  sft: boolean;
  runId?: string;
  runName?: string;
  step?: number;
  valLoss?: number | null;
  hellaswag?: number | null;
  /** bytes of its weights on disk */
  sizeBytes: number;
  /** Unix ms */
  createdAt: number;
}

/** Sampling settings, as chat, the sample gallery and `generate-*` take them. */
export interface SamplingSettings {
  /** 0 = greedy */
  temperature: number;
  /** 0 = off */
  topK: number;
  /** 1 = off */
  topP: number;
  maxTokens: number;
  seed: number;
}

export const DEFAULT_SAMPLING_SETTINGS: SamplingSettings = {
  temperature: 0.8,
  topK: 50,
  topP: 0.95,
  maxTokens: 128,
  seed: 42,
};

/** The key of a target, as ModelEntry.key spells it (weights outside the workspace: `path:<path>`). */
export function targetKey(t: ModelTarget): string {
  if ('modelId' in t) return `model:${t.modelId}`;
  if ('runId' in t) return `ckpt:${t.runId}:${t.step ?? 'last'}`;
  return `path:${t.weightsPath}`;
}

/**
 * Why a generated text ended, the same on every path (chat, the sample gallery, the CLI):
 * - `eot`: the model wrote <|endoftext|> (50256), or one of the caller's stop tokens (in chat: it began the next turn)
 * - `length`: max tokens were generated
 * - `context`: the model's context (block_size) filled before max tokens: prompt and answer share the context
 * - `stop`: the user (or the caller) stopped it
 */
export type EndReason = 'eot' | 'length' | 'context' | 'stop';

export type ChatRole = 'system' | 'user' | 'assistant';

export interface ChatMessage {
  role: ChatRole;
  content: string;
}
