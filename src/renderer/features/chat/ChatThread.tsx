/**
 * The messages of a conversation, and the answer being generated: its text as it streams in, its token count
 * and rate. Each message can be copied; an answer says how it ended (end of text, max tokens, context full, stopped).
 */
import { useEffect, useLayoutEffect, useRef, useState, type ReactNode } from 'react';
import type { HandlerResult, StudioEvents } from '../../../shared/contract';
import { StudioError } from '../../../shared/errors';
import { ErrorNote } from '../../components/ErrorNote';
import { fixed, fullDateTime, int, timeOfDay } from '../../format';
import { endReasonText } from './end-reason';

export type ChatMessage = HandlerResult<'chats-get'>['messages'][number];

/** An answer in progress (or a message on its way to the service). */
export interface Stream {
  /** the conversation it answers ('' for a conversation being created) */
  convId: string;
  /** the generation: chosen before the send for this page's own; for one followed from elsewhere, null until known */
  genId: string | null;
  /** loading: the message is being stored and the model loaded; streaming: tokens are coming */
  phase: 'loading' | 'streaming';
  text: string;
  tokens: number;
  tokensPerSec: number;
  stopRequested: boolean;
  /** an answer that started before this page followed it: its first tokens were not seen here */
  joined: boolean;
  /** the user's message, shown until the stored one (userSeq) is in the thread */
  pendingUser?: string;
  userSeq?: number;
  /** the end of an answer that came before the answer to its send: it is shown once the send has answered */
  done?: StudioEvents['generate-done'];
}

function Meta({ m }: { m: ChatMessage }) {
  if (m.role !== 'assistant') return null;
  return (
    <span className="chat-meta" data-testid="answer-meta" data-reason={m.reason ?? ''}>
      {int(m.tokens ?? 0)} {m.tokens === 1 ? 'token' : 'tokens'}
      {m.tokensPerSec ? <> · {fixed(m.tokensPerSec, 1)} tok/s</> : null}
      {m.reason && (
        <>
          {' · '}
          <span className={`chat-reason chat-reason-${m.reason}`}>{endReasonText(m.reason, m.contextTokens)}</span>
        </>
      )}
    </span>
  );
}

function CopyButton({ text, label }: { text: string; label: string }) {
  const [state, setState] = useState<'idle' | 'copied' | 'failed'>('idle');
  useEffect(() => {
    if (state === 'idle') return;
    const t = window.setTimeout(() => setState('idle'), 2000);
    return () => window.clearTimeout(t);
  }, [state]);
  return (
    <button
      type="button"
      className="button chat-copy"
      aria-label={label}
      title={
        state === 'failed'
          ? 'The clipboard refused the text (the page may lack permission). Select the text and copy it with Ctrl+C.'
          : label
      }
      onClick={() => {
        navigator.clipboard.writeText(text).then(
          () => setState('copied'),
          () => setState('failed'),
        );
      }}
    >
      {state === 'copied' ? 'Copied' : state === 'failed' ? 'Copy failed' : 'Copy'}
    </button>
  );
}

export function ChatThread({
  messages,
  stream,
  modelLabel,
  empty,
}: {
  messages: ChatMessage[];
  stream: Stream | undefined;
  modelLabel: string;
  /** shown when there is nothing yet */
  empty: ReactNode;
}) {
  const ref = useRef<HTMLDivElement>(null);
  const stick = useRef(true);
  const showPending = stream?.pendingUser !== undefined && !messages.some((m) => m.seq === stream.userSeq);

  // follow the end of the thread while the reader is there
  useLayoutEffect(() => {
    const el = ref.current;
    // a message being sent brings the reader to the end (they may have scrolled up to read or copy)
    if (showPending) stick.current = true;
    if (el && stick.current) el.scrollTop = el.scrollHeight;
  }, [messages, stream?.text, stream?.phase, showPending]);

  const nothing = messages.length === 0 && !stream;
  return (
    <div
      className="chat-thread"
      ref={ref}
      tabIndex={0}
      aria-label="Messages"
      data-testid="chat-thread"
      onScroll={(e) => {
        const el = e.currentTarget;
        stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 60;
      }}
    >
      {nothing ? (
        empty
      ) : (
        <ol className="chat-messages">
          {messages.map((m) => (
            <li key={m.seq} className={`chat-msg chat-msg-${m.role}`} data-testid={`message-${m.role}`}>
              <div className="chat-msg-head">
                <span className="chat-role">{m.role === 'user' ? 'You' : modelLabel}</span>
                <time
                  className="muted small"
                  dateTime={new Date(m.createdAt).toISOString()}
                  title={fullDateTime(m.createdAt)}
                >
                  {timeOfDay(m.createdAt)}
                </time>
                <span className="spacer" />
                {m.content !== '' && (
                  <CopyButton text={m.content} label={m.role === 'user' ? 'Copy message' : 'Copy answer'} />
                )}
              </div>
              <div className="chat-text">{m.content || <span className="muted">(no text)</span>}</div>
              {m.role === 'assistant' && (
                <div className="chat-msg-foot">
                  <Meta m={m} />
                </div>
              )}
              {m.error && <ErrorNote error={StudioError.fromPlain(m.error)} />}
            </li>
          ))}
          {showPending && (
            <li className="chat-msg chat-msg-user chat-msg-pending" data-testid="message-pending">
              <div className="chat-msg-head">
                <span className="chat-role">You</span>
                <span className="muted small">sending…</span>
              </div>
              <div className="chat-text">{stream.pendingUser}</div>
            </li>
          )}
          {stream && (
            <li
              className="chat-msg chat-msg-assistant chat-msg-streaming"
              data-testid="message-streaming"
              aria-busy="true"
            >
              <div className="chat-msg-head">
                <span className="chat-role">{modelLabel}</span>
                <span className="live-dot" aria-hidden="true" />
              </div>
              <div className="chat-text" data-testid="streaming-text">
                {stream.joined && <span className="muted">(answering since before this page opened) </span>}
                {stream.text}
                <span className="chat-caret" aria-hidden="true" />
              </div>
              <div className="chat-msg-foot">
                <span className="chat-meta" data-testid="live-rate">
                  {stream.phase === 'loading' ? (
                    stream.stopRequested ? (
                      'Stopping…'
                    ) : (
                      'Loading the model…'
                    )
                  ) : (
                    <>
                      {int(stream.tokens)} {stream.tokens === 1 ? 'token' : 'tokens'} · {fixed(stream.tokensPerSec, 1)}{' '}
                      tok/s{stream.stopRequested ? ' · stopping…' : ''}
                    </>
                  )}
                </span>
              </div>
            </li>
          )}
        </ol>
      )}
    </div>
  );
}
