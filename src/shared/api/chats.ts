/** Conversation requests (see src/node/chats/handlers.ts). */
import type { ModelTarget } from '../models';
import type { PlainError } from '../errors';
import type { SamplingSettings } from '../models';
import type { GenerateEndReason } from './generation';

export interface ChatSettings extends SamplingSettings {
  /** an optional system message put before the conversation */
  system?: string;
}

export interface Conversation {
  id: string;
  title: string;
  /** false until the conversation was named (by the user, or by its first message) */
  named: boolean;
  target: ModelTarget;
  settings: ChatSettings;
  createdAt: number;
  /** Unix ms of the last message */
  updatedAt: number;
  messageCount: number;
  /** an answer is being generated now (its model may still be loading) */
  answering: boolean;
  /** the generation answering now, once it started (follow generate-token / generate-done) */
  answeringGenId: string | null;
}

export interface ChatMessageEntry {
  seq: number;
  role: 'user' | 'assistant';
  content: string;
  createdAt: number;
  /** assistant messages: tokens generated, their rate, and why generation ended (see EndReason) */
  tokens?: number | null;
  tokensPerSec?: number | null;
  reason?: GenerateEndReason | null;
  /** assistant messages: the model's context (block_size) in tokens, what reason 'context' ran into */
  contextTokens?: number | null;
  /** an answer that failed: what went wrong */
  error?: PlainError | null;
}

export interface ChatSent {
  /** the generation that answers; follow generate-token / generate-done */
  genId: string;
  /** the stored user message */
  message: ChatMessageEntry;
}

export type ChatsHandlers = {
  'chats-list': () => Promise<Conversation[]>;
  'chats-get': (arg: { id: string }) => Promise<{ conversation: Conversation; messages: ChatMessageEntry[] }>;
  'chats-create': (arg: {
    target: ModelTarget;
    title?: string;
    settings?: Partial<ChatSettings>;
  }) => Promise<Conversation>;
  'chats-update': (arg: {
    id: string;
    title?: string;
    target?: ModelTarget;
    settings?: Partial<ChatSettings>;
  }) => Promise<Conversation>;
  'chats-delete': (arg: { id: string }) => Promise<{ deleted: boolean }>;
  'chats-send': (arg: { id: string; content: string; genId?: string }) => Promise<ChatSent>;
};
