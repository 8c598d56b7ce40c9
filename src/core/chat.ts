/**
 * The chat template of SFT checkpoints, deliberately simple and documented:
 *
 *   <|endoftext|>System: {system}\n\nUser: {user}\n\nAssistant: {assistant}\n\nUser: ...\n\nAssistant: {assistant}<|endoftext|>
 *
 * The system turn is optional. In training only the assistant's words count in the loss (the mask), together with
 * the <|endoftext|> that ends the conversation, so the model learns to answer and to stop. Each piece is
 * tokenized on its own and the tokens concatenated, so the mask lines up with the tokens exactly, and a chat
 * prompt built the same way ends with "Assistant:" for the model to continue.
 */
import { ErrorCode, StudioError } from '../shared/errors';
import { EOT, encode } from './tokenizer';
import type { ChatRole, ChatMessage } from '../shared/models';
export type { ChatRole, ChatMessage };

const LABEL: Record<ChatRole, string> = { system: 'System', user: 'User', assistant: 'Assistant' };

export interface RenderedChat {
  tokens: number[];
  /** 1 where the token counts in the loss */
  mask: number[];
}

/** Renders a conversation for training: the assistant turns and the final <|endoftext|> are masked in. */
export function renderChat(messages: ChatMessage[]): RenderedChat {
  if (messages.length === 0 || messages[messages.length - 1]!.role !== 'assistant') {
    throw new StudioError(
      ErrorCode.BAD_DATA,
      'A training conversation must end with an assistant message.',
      'Give each example a response (or a last "assistant" message).',
    );
  }
  const tokens: number[] = [EOT];
  const mask: number[] = [0];
  const push = (ids: number[], m: 0 | 1) => {
    for (const id of ids) {
      tokens.push(id);
      mask.push(m);
    }
  };
  messages.forEach((msg, i) => {
    if (!(msg.role in LABEL))
      throw new StudioError(
        ErrorCode.BAD_DATA,
        `Unknown chat role "${msg.role}".`,
        'Roles are system, user and assistant.',
      );
    const sep = i === 0 ? '' : '\n\n';
    if (msg.role === 'assistant') {
      push(encode(`${sep}${LABEL.assistant}:`), 0);
      push(encode(' ' + msg.content), 1);
    } else {
      push(encode(`${sep}${LABEL[msg.role]}: ${msg.content}`), 0);
    }
  });
  push([EOT], 1);
  return { tokens, mask };
}

/** The tokens of a chat prompt: the conversation so far, then "Assistant:" for the model to continue. */
export function chatPrompt(messages: ChatMessage[]): number[] {
  const tokens: number[] = [EOT];
  messages.forEach((msg, i) => {
    const sep = i === 0 ? '' : '\n\n';
    tokens.push(
      ...(msg.role === 'assistant'
        ? [...encode(`${sep}${LABEL.assistant}:`), ...encode(' ' + msg.content)]
        : encode(`${sep}${LABEL[msg.role]}: ${msg.content}`)),
    );
  });
  tokens.push(...encode(`${messages.length ? '\n\n' : ''}${LABEL.assistant}:`));
  return tokens;
}

/**
 * One SFT example from a JSONL object: {"prompt", "response"} or {"messages": [{"role", "content"}]}.
 * Returns a reason string for a malformed one.
 */
export function parseSftExample(o: unknown): ChatMessage[] | string {
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return 'not a JSON object';
  const r = o as Record<string, unknown>;
  if (typeof r.prompt === 'string' && typeof r.response === 'string') {
    return [
      { role: 'user', content: r.prompt },
      { role: 'assistant', content: r.response },
    ];
  }
  if (Array.isArray(r.messages)) {
    const msgs: ChatMessage[] = [];
    for (const [i, m] of r.messages.entries()) {
      const mm = m as Record<string, unknown>;
      if (typeof mm?.content !== 'string' || !['system', 'user', 'assistant'].includes(mm?.role as string)) {
        return `messages[${i}] needs a role (system, user or assistant) and a content string`;
      }
      msgs.push({ role: mm.role as ChatRole, content: mm.content });
    }
    if (msgs.length === 0 || msgs[msgs.length - 1]!.role !== 'assistant')
      return "the last message must be the assistant's";
    return msgs;
  }
  return 'expected {"prompt", "response"} or {"messages": [...]}';
}
