/**
 * Chat: conversations kept in SQLite (a conversation has a model, sampling settings and messages). Sending a
 * message stores it, then starts a generation over the whole conversation (GenerationService); the assistant's
 * answer streams as generate-token events and is stored when it ends (also when it was stopped).
 *
 * Every model is prompted with the chat template of src/core/chat.ts: SFT checkpoints were trained on it, base
 * models (imported GPT-2, pretraining checkpoints) just continue the text it makes.
 *
 * Max tokens and the context: a send whose max tokens is above the model's context (block_size) is refused
 * (BAD_ARGUMENT, naming both and the fix) and leaves the conversation as it was. Within it, the conversation and
 * the answer share the context: a long conversation is cut from its start (see GenerationService.promptOf), and an
 * answer that fills the context before max tokens ends with reason 'context', not 'length'.
 */
import { ErrorCode, StudioError } from '../../shared/errors';
import { DEFAULT_SAMPLING_SETTINGS, type ModelTarget } from '../../shared/models';
import type { ChatMessage } from '../../core/chat';
import { validateSampling } from '../../core/sampling';
import { ChatStore, type Store, type StoredChatMessage, type StoredConversation } from '../store';
import type { GenerateDoneEvent, GenerationService } from '../generation/service';
import type { ChatSettings, Conversation, ChatMessageEntry, ChatSent } from '../../shared/api/chats';
export type { ChatSettings, Conversation, ChatMessageEntry, ChatSent };

/** What the conversations list shows for a conversation not named yet. */
export const UNTITLED = 'New conversation';

/** A conversation's title from its first message: its first words, at most about 60 characters. */
export function titleFrom(content: string): string {
  const words = content.trim().split(/\s+/).filter(Boolean);
  let title = '';
  let used = 0;
  for (const w of words.slice(0, 8)) {
    const next = title ? `${title} ${w}` : w;
    if (next.length > 60) break;
    title = next;
    used++;
  }
  if (words.length === 0) return UNTITLED;
  if (used === 0) return `${words[0]!.slice(0, 60)}…`;
  return used < words.length ? `${title}…` : title;
}

/** Fills in defaults and checks every setting; a bad one is a BAD_ARGUMENT that names it. */
export function chatSettings(s: Partial<ChatSettings>, base: ChatSettings = DEFAULT_SAMPLING_SETTINGS): ChatSettings {
  const out: ChatSettings = {
    temperature: s.temperature ?? base.temperature,
    topK: s.topK ?? base.topK,
    topP: s.topP ?? base.topP,
    maxTokens: s.maxTokens ?? base.maxTokens,
    seed: s.seed ?? base.seed,
  };
  const system = s.system !== undefined ? s.system : base.system;
  if (system !== undefined && system.trim() !== '') out.system = system;
  validateSampling(out);
  if (!Number.isInteger(out.maxTokens) || out.maxTokens < 1) {
    // the model's context is checked at send, when the model is loaded (a conversation's model can change)
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `max tokens = ${out.maxTokens} must be an integer >= 1.`,
      `Use ${DEFAULT_SAMPLING_SETTINGS.maxTokens} for a short answer; at most the model's context.`,
    );
  }
  if (!Number.isInteger(out.seed) || out.seed < 0 || out.seed > 4_294_967_295) {
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `seed = ${out.seed} must be an integer from 0 to 4294967295.`,
      'The same seed and settings give the same answer.',
    );
  }
  return out;
}

/** One answer in progress: its generation id once started, and whether it ended already. */
interface Answer {
  genId: string | null;
  done: boolean;
}

export class ChatService {
  /** per open store: the chat tables on its connection */
  private readonly tables = new WeakMap<Store, ChatStore>();
  /** conversation id -> the answer being generated */
  private readonly answering = new Map<string, Answer>();

  constructor(
    private readonly store: () => Store,
    private readonly generation: GenerationService,
  ) {}

  private chats(store: Store = this.store()): ChatStore {
    let t = this.tables.get(store);
    if (!t) {
      t = new ChatStore(store.database);
      this.tables.set(store, t);
    }
    return t;
  }

  private conversation(c: StoredConversation): Conversation {
    const a = this.answering.get(c.id);
    return {
      id: c.id,
      title: c.title ?? UNTITLED,
      named: c.title !== null,
      target: c.target,
      settings: chatSettings(c.settings),
      createdAt: c.createdAt,
      updatedAt: c.updatedAt,
      messageCount: c.messageCount,
      answering: a !== undefined,
      answeringGenId: a?.genId ?? null,
    };
  }

  private need(id: string, chats = this.chats()): StoredConversation {
    const c = chats.get(id);
    if (!c)
      throw new StudioError(
        ErrorCode.NOT_FOUND,
        `There is no conversation "${id}" in this workspace.`,
        'It may have been deleted. Choose one from the list, or start a new one.',
      );
    return c;
  }

  /** Every conversation, the most recently active first. */
  list(): Conversation[] {
    return this.chats()
      .list()
      .map((c) => this.conversation(c));
  }

  get(arg: { id: string }): { conversation: Conversation; messages: ChatMessageEntry[] } {
    const chats = this.chats();
    const c = this.need(arg.id, chats);
    return { conversation: this.conversation(c), messages: chats.messages(arg.id).map(entry) };
  }

  create(arg: { target: ModelTarget; title?: string; settings?: Partial<ChatSettings> }): Conversation {
    const settings = chatSettings(arg.settings ?? {});
    const title = arg.title === undefined ? null : checkTitle(arg.title);
    return this.conversation(this.chats().create({ title, target: arg.target, settings }));
  }

  update(arg: { id: string; title?: string; target?: ModelTarget; settings?: Partial<ChatSettings> }): Conversation {
    const chats = this.chats();
    const c = this.need(arg.id, chats);
    const updated = chats.update(arg.id, {
      title: arg.title === undefined ? undefined : checkTitle(arg.title),
      target: arg.target,
      settings: arg.settings === undefined ? undefined : chatSettings(arg.settings, chatSettings(c.settings)),
    });
    return this.conversation(updated ?? this.need(arg.id, chats));
  }

  /** Deletes a conversation and its messages; an answer being generated for it is stopped. */
  remove(arg: { id: string }): { deleted: boolean } {
    const a = this.answering.get(arg.id);
    if (a?.genId) this.generation.stop({ genId: a.genId });
    this.answering.delete(arg.id);
    return { deleted: this.chats().remove(arg.id) };
  }

  /**
   * Stores the user's message and starts the answer over the whole conversation, with its model and settings. A
   * send whose answer cannot start (the model does not load, a setting is refused) leaves the conversation as it
   * was and throws that error. A conversation answers one message at a time.
   */
  async send(arg: { id: string; content: string; genId?: string }): Promise<ChatSent> {
    const store = this.store();
    const chats = this.chats(store);
    const c = this.need(arg.id, chats);
    if (this.answering.has(arg.id)) {
      throw new StudioError(
        ErrorCode.BAD_ARGUMENT,
        `The conversation "${c.title ?? UNTITLED}" is still answering the last message.`,
        'Wait for the answer to finish, or stop it, then send again.',
      );
    }
    if (arg.content.trim() === '') {
      throw new StudioError(ErrorCode.BAD_ARGUMENT, 'The message is empty.', 'Type something to send.');
    }
    const settings = chatSettings(c.settings);
    const history = chats.messages(arg.id);
    const answer: Answer = { genId: null, done: false };
    this.answering.set(arg.id, answer);
    let message: StoredChatMessage | undefined;
    try {
      message = chats.addMessage(arg.id, { role: 'user', content: arg.content });
      if (c.title === null) chats.update(arg.id, { title: titleFrom(arg.content) });
      const messages: ChatMessage[] = [];
      if (settings.system) messages.push({ role: 'system', content: settings.system });
      for (const m of history)
        if (m.role === 'user' || m.content.trim() !== '') messages.push({ role: m.role, content: m.content });
      messages.push({ role: 'user', content: arg.content });
      const { temperature, topK, topP, maxTokens, seed } = settings;
      const started = await this.generation.start(
        { target: c.target, messages, temperature, topK, topP, maxTokens, seed, genId: arg.genId },
        { onDone: (d) => this.answered(store, arg.id, answer, d) },
      );
      answer.genId = started.genId;
      // deleted while the model was loading: no one waits for this answer
      if (!answer.done && this.answering.get(arg.id) !== answer) this.generation.stop({ genId: started.genId });
      return { genId: started.genId, message: entry(message) };
    } catch (e) {
      if (this.answering.get(arg.id) === answer) this.answering.delete(arg.id);
      if (message) {
        try {
          chats.undoMessage(arg.id, message.seq, { updatedAt: c.updatedAt, title: c.title });
        } catch {
          // the store was closed meanwhile: the message stays, which loses nothing
        }
      }
      throw e;
    }
  }

  /** A generation ended: store the answer (partial when stopped), on the store the send was made on. */
  private answered(store: Store, id: string, answer: Answer, d: GenerateDoneEvent): void {
    answer.done = true;
    if (this.answering.get(id) === answer) this.answering.delete(id);
    try {
      const chats = this.chats(store);
      if (!chats.get(id)) return; // deleted meanwhile
      chats.addMessage(id, {
        role: 'assistant',
        content: d.text,
        tokens: d.tokens,
        tokensPerSec: d.tokensPerSec,
        reason: d.reason,
        contextTokens: d.contextTokens,
        error: d.error ?? null,
      });
    } catch (e) {
      // the studio closed (the store with it) before the answer ended
      console.error(
        `The answer of conversation ${id} could not be stored: ${e instanceof Error ? e.message : String(e)}`,
      );
    }
  }
}

function checkTitle(title: string): string {
  const t = title.trim().replace(/\s+/g, ' ');
  if (!t)
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      'A conversation title cannot be empty.',
      'Type a title, or keep the one it has.',
    );
  if (t.length > 200)
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `The title is ${t.length} characters long; at most 200 are kept.`,
      'Shorten it.',
    );
  return t;
}

function entry(m: StoredChatMessage): ChatMessageEntry {
  if (m.role === 'user') return { seq: m.seq, role: m.role, content: m.content, createdAt: m.createdAt };
  return {
    seq: m.seq,
    role: m.role,
    content: m.content,
    createdAt: m.createdAt,
    tokens: m.tokens,
    tokensPerSec: m.tokensPerSec,
    reason: m.reason,
    contextTokens: m.contextTokens,
    error: m.error,
  };
}
