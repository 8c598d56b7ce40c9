/** Conversation requests (see src/node/chats/handlers.ts). */
import type { ModelTarget } from '../models';
import type { ChatMessageEntry, ChatSent, ChatSettings, Conversation } from '../../node/studio/chats';

export type ChatsHandlers = {
  'chats-list': () => Promise<Conversation[]>;
  'chats-get': (arg: { id: string }) => Promise<{ conversation: Conversation; messages: ChatMessageEntry[] }>;
  'chats-create': (arg: { target: ModelTarget; title?: string; settings?: Partial<ChatSettings> }) => Promise<Conversation>;
  'chats-update': (arg: { id: string; title?: string; target?: ModelTarget; settings?: Partial<ChatSettings> }) => Promise<Conversation>;
  'chats-delete': (arg: { id: string }) => Promise<{ deleted: boolean }>;
  'chats-send': (arg: { id: string; content: string; genId?: string }) => Promise<ChatSent>;
};
