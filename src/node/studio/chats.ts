/**
 * Chat: conversations kept in SQLite (a conversation has a model, sampling settings and messages). Sending a
 * message stores it, then starts a generation over the whole conversation (GenerationService); the assistant's
 * answer streams as generate-token events and is stored when it ends (also when it was stopped).
 */
import { ErrorCode, StudioError } from '../../shared/errors';
import type { ModelTarget, SamplingSettings } from '../../shared/models';
import type { Store } from '../store';
import type { GenerationService } from './generation';

export interface ChatSettings extends SamplingSettings {
  /** an optional system message put before the conversation */
  system?: string;
}

export interface Conversation {
  id: string;
  title: string;
  target: ModelTarget;
  settings: ChatSettings;
  createdAt: number;
  updatedAt: number;
  messageCount: number;
}

export interface ChatMessageEntry {
  seq: number;
  role: 'user' | 'assistant';
  content: string;
  createdAt: number;
  /** assistant messages: tokens generated, their rate, and why generation ended */
  tokens?: number | null;
  tokensPerSec?: number | null;
  reason?: 'eot' | 'length' | 'stopped' | 'error' | null;
}

export interface ChatSent {
  /** the generation that answers; follow generate-token / generate-done */
  genId: string;
  /** the stored user message */
  message: ChatMessageEntry;
}

const notBuilt = () => new StudioError(ErrorCode.INTERNAL, 'Chat conversations are not built yet.', '');

export class ChatService {
  constructor(
    private readonly store: () => Store,
    private readonly generation: GenerationService,
  ) {}

  list(): Conversation[] {
    void this.store;
    throw notBuilt();
  }

  get(arg: { id: string }): { conversation: Conversation; messages: ChatMessageEntry[] } {
    void arg;
    throw notBuilt();
  }

  create(arg: { target: ModelTarget; title?: string; settings?: Partial<ChatSettings> }): Conversation {
    void arg;
    throw notBuilt();
  }

  update(arg: { id: string; title?: string; target?: ModelTarget; settings?: Partial<ChatSettings> }): Conversation {
    void arg;
    throw notBuilt();
  }

  remove(arg: { id: string }): { deleted: boolean } {
    void arg;
    throw notBuilt();
  }

  async send(arg: { id: string; content: string }): Promise<ChatSent> {
    void arg;
    void this.generation;
    throw notBuilt();
  }
}
