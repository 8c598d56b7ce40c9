/**
 * Conversation requests: chats with a model, stored in studio.db, answered through the generation service.
 */
import { z } from 'zod';
import { chatId, chatSettings, genId, modelTarget } from '../../shared/schemas';
import { target } from '../confine/requests';
import { defineHandlers, noArgument } from '../studio/registry';

export const chatsHandlers = defineHandlers({
  'chats-list': { readOnly: true, schema: noArgument, run: async (_a, studio) => studio.chats.list() },

  'chats-get': {
    readOnly: true,
    schema: z.object({ id: chatId }).strict(),
    run: async (arg, studio) => studio.chats.get(arg),
  },

  'chats-create': {
    schema: z
      .object({ target: modelTarget, title: z.string().max(200).optional(), settings: chatSettings.optional() })
      .strict(),
    run: async (arg, studio) => studio.chats.create(arg),
    confine: (a, limits) => ({ ...a, target: target(a.target, limits, 'weights path') }),
  },

  'chats-update': {
    schema: z
      .object({
        id: chatId,
        title: z.string().max(200).optional(),
        target: modelTarget.optional(),
        settings: chatSettings.optional(),
      })
      .strict(),
    run: async (arg, studio) => studio.chats.update(arg),
    confine: (a, limits) => (a.target !== undefined ? { ...a, target: target(a.target, limits, 'weights path') } : a),
  },

  'chats-delete': { schema: z.object({ id: chatId }).strict(), run: async (arg, studio) => studio.chats.remove(arg) },

  /**
   * Stores a user message and starts the answer: generate-token / generate-done events with the genId, which the
   * client may choose itself (then no event can arrive before it knows the id) or take from the reply.
   */
  'chats-send': {
    schema: z.object({ id: chatId, content: z.string().min(1).max(100_000), genId: genId.optional() }).strict(),
    run: (arg, studio) => studio.chats.send(arg),
  },
});
