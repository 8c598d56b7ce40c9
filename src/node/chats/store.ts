/**
 * Chat conversations and their messages in studio.db (tables of migrations 2 and 3), on the store's connection
 * (`new ChatStore(store.database)`). Synchronous like the rest of the store: a method returns once its
 * transaction is committed. JSON columns are parsed here; callers see plain objects.
 */
import type Database from 'better-sqlite3';
import { ErrorCode, StudioError, type PlainError } from '../../shared/errors';
import type { ModelTarget, SamplingSettings } from '../../shared/models';
import { checkId, newId } from '../store/ids';

/** Sampling settings with an optional system message, as a conversation keeps them. */
export interface StoredChatSettings extends SamplingSettings {
  system?: string;
}

export const CHAT_ROLES = ['user', 'assistant'] as const;
export type StoredChatRole = (typeof CHAT_ROLES)[number];
/** why an answer ended (EndReason of src/core/sampling.ts), or 'error' when it failed (migration 3) */
export const CHAT_END_REASONS = ['eot', 'length', 'context', 'stop', 'error'] as const;
export type StoredEndReason = (typeof CHAT_END_REASONS)[number];

export interface StoredConversation {
  id: string;
  /** null until named (by the user, or by the first message) */
  title: string | null;
  target: ModelTarget;
  settings: StoredChatSettings;
  /** Unix ms */
  createdAt: number;
  /** Unix ms of the last message (or of the creation) */
  updatedAt: number;
  messageCount: number;
}

export interface StoredChatMessage {
  seq: number;
  role: StoredChatRole;
  content: string;
  createdAt: number;
  tokens: number | null;
  tokensPerSec: number | null;
  reason: StoredEndReason | null;
  /** the model's context (block_size) in tokens when the answer was generated; null for a user message */
  contextTokens: number | null;
  error: PlainError | null;
}

export interface AddChatMessageInput {
  role: StoredChatRole;
  content: string;
  createdAt?: number;
  tokens?: number | null;
  tokensPerSec?: number | null;
  reason?: StoredEndReason | null;
  contextTokens?: number | null;
  error?: PlainError | null;
}

interface ConversationRow {
  id: string;
  title: string | null;
  target_json: string;
  settings_json: string;
  created_at: number;
  updated_at: number;
  message_count: number;
}

interface MessageRow {
  seq: number;
  role: string;
  content: string;
  created_at: number;
  tokens: number | null;
  tokens_per_sec: number | null;
  reason: string | null;
  context_tokens: number | null;
  error_json: string | null;
}

const SELECT_CONVERSATION = `
  SELECT c.id, c.title, c.target_json, c.settings_json, c.created_at, c.updated_at,
         (SELECT count(*) FROM chat_messages m WHERE m.conversation_id = c.id) AS message_count
  FROM conversations c`;

export class ChatStore {
  private readonly now: () => number;

  constructor(
    private readonly db: Database.Database,
    opts: { now?: () => number } = {},
  ) {
    this.now = opts.now ?? Date.now;
  }

  /** Creates a conversation (id generated unless given). */
  create(input: {
    id?: string;
    title?: string | null;
    target: ModelTarget;
    settings: StoredChatSettings;
    createdAt?: number;
  }): StoredConversation {
    const createdAt = input.createdAt ?? this.now();
    const id = input.id === undefined ? newId('chat', createdAt) : checkId(input.id, 'conversation');
    this.db
      .prepare(
        'INSERT INTO conversations (id, title, target_json, settings_json, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)',
      )
      .run(id, input.title ?? null, JSON.stringify(input.target), JSON.stringify(input.settings), createdAt, createdAt);
    return this.get(id)!;
  }

  get(id: string): StoredConversation | undefined {
    const row = this.db.prepare<[string], ConversationRow>(`${SELECT_CONVERSATION} WHERE c.id = ?`).get(id);
    return row ? toConversation(row) : undefined;
  }

  /** Every conversation, the most recently active first. */
  list(): StoredConversation[] {
    return this.db
      .prepare<[], ConversationRow>(`${SELECT_CONVERSATION} ORDER BY c.updated_at DESC, c.created_at DESC, c.id DESC`)
      .all()
      .map(toConversation);
  }

  /** Changes the title, model or settings (what is given); undefined when there is no such conversation. */
  update(
    id: string,
    patch: { title?: string | null; target?: ModelTarget; settings?: StoredChatSettings },
  ): StoredConversation | undefined {
    const sets: string[] = [];
    const values: (string | null)[] = [];
    if (patch.title !== undefined) {
      sets.push('title = ?');
      values.push(patch.title);
    }
    if (patch.target !== undefined) {
      sets.push('target_json = ?');
      values.push(JSON.stringify(patch.target));
    }
    if (patch.settings !== undefined) {
      sets.push('settings_json = ?');
      values.push(JSON.stringify(patch.settings));
    }
    if (sets.length > 0) {
      const r = this.db.prepare(`UPDATE conversations SET ${sets.join(', ')} WHERE id = ?`).run(...values, id);
      if (r.changes === 0) return undefined;
    }
    return this.get(id);
  }

  /** Deletes a conversation; its messages go with it (ON DELETE CASCADE). */
  remove(id: string): boolean {
    return this.db.prepare('DELETE FROM conversations WHERE id = ?').run(id).changes > 0;
  }

  /** The messages of a conversation, in order. */
  messages(id: string): StoredChatMessage[] {
    return this.db
      .prepare<[string], MessageRow>(
        'SELECT seq, role, content, created_at, tokens, tokens_per_sec, reason, context_tokens, error_json FROM chat_messages WHERE conversation_id = ? ORDER BY seq',
      )
      .all(id)
      .map(toMessage);
  }

  /**
   * Appends a message (seq = the last one's + 1) and marks the conversation active, in one transaction. Throws
   * NOT_FOUND when the conversation is gone.
   */
  addMessage(id: string, input: AddChatMessageInput): StoredChatMessage {
    const createdAt = input.createdAt ?? this.now();
    const tx = this.db.transaction((): number => {
      const touched = this.db
        .prepare('UPDATE conversations SET updated_at = max(updated_at, ?) WHERE id = ?')
        .run(createdAt, id);
      if (touched.changes === 0) throw notFound(id);
      const seq =
        (this.db
          .prepare<[string], { n: number | null }>('SELECT max(seq) AS n FROM chat_messages WHERE conversation_id = ?')
          .get(id)?.n ?? 0) + 1;
      this.db
        .prepare(
          `INSERT INTO chat_messages (conversation_id, seq, role, content, created_at, tokens, tokens_per_sec, reason, context_tokens, error_json)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(
          id,
          seq,
          input.role,
          input.content,
          createdAt,
          input.tokens ?? null,
          input.tokensPerSec === undefined || input.tokensPerSec === null || !Number.isFinite(input.tokensPerSec)
            ? null
            : input.tokensPerSec,
          input.reason ?? null,
          input.contextTokens ? input.contextTokens : null,
          input.error
            ? JSON.stringify({ code: input.error.code, message: input.error.message, hint: input.error.hint })
            : null,
        );
      return seq;
    });
    const seq = tx.immediate();
    return this.messages(id).find((m) => m.seq === seq)!;
  }

  /**
   * Removes the last message when it is the one given (a send whose answer could not start), and puts the
   * conversation's activity time and title back as they were.
   */
  undoMessage(id: string, seq: number, restore: { updatedAt: number; title: string | null }): void {
    const tx = this.db.transaction(() => {
      const last = this.db
        .prepare<[string], { n: number | null }>('SELECT max(seq) AS n FROM chat_messages WHERE conversation_id = ?')
        .get(id)?.n;
      if (last !== seq) return;
      this.db.prepare('DELETE FROM chat_messages WHERE conversation_id = ? AND seq = ?').run(id, seq);
      this.db
        .prepare('UPDATE conversations SET updated_at = ?, title = ? WHERE id = ?')
        .run(restore.updatedAt, restore.title, id);
    });
    tx.immediate();
  }
}

function notFound(id: string): StudioError {
  return new StudioError(
    ErrorCode.NOT_FOUND,
    `There is no conversation "${id}" in this workspace.`,
    'It may have been deleted. Choose one from chats-list, or create a new one.',
  );
}

function toConversation(r: ConversationRow): StoredConversation {
  return {
    id: r.id,
    title: r.title,
    target: JSON.parse(r.target_json) as ModelTarget,
    settings: JSON.parse(r.settings_json) as StoredChatSettings,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    messageCount: r.message_count,
  };
}

function toMessage(r: MessageRow): StoredChatMessage {
  return {
    seq: r.seq,
    role: r.role as StoredChatRole,
    content: r.content,
    createdAt: r.created_at,
    tokens: r.tokens,
    tokensPerSec: r.tokens_per_sec,
    reason: r.reason as StoredEndReason | null,
    contextTokens: r.context_tokens,
    error: r.error_json ? (JSON.parse(r.error_json) as PlainError) : null,
  };
}
