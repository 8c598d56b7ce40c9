/**
 * Chat: conversations with any model of the workspace (imported GPT-2 weights or a run's checkpoint), kept in the
 * workspace. `#/chat?c=<conversationId>` opens a conversation; `#/chat?model=<ModelEntry.key>` starts a new one
 * with that model (what the Checkpoints page links to). The answer streams in token by token (generate-token), and
 * the service stores it when it ends (generate-done), stopped or not. What the page holds and does is in
 * useChatSession; this is its layout.
 */
import { useId, useRef, useState } from 'react';
import { targetKey } from '../../../shared/models';
import { EmptyState } from '../../components/EmptyState';
import { ErrorNote } from '../../components/ErrorNote';
import { Icon } from '../../components/Icon';
import { ImportModelDialog } from '../../components/ImportModelDialog';
import { dateTime, fixed, fullDateTime, int } from '../../format';
import { href, pageHref } from '../../router';
import { DeleteChatDialog, RenameChatDialog, type Conversation } from './ChatDialogs';
import { ChatSettingsCard } from './ChatSettingsCard';
import { ChatThread } from './ChatThread';
import { useChatSession } from './useChatSession';
import './chat.css';

export function ChatPage() {
  const chat = useChatSession();
  const { selectedId, conversation, stream, model, modelKey, settings } = chat;
  const [renaming, setRenaming] = useState<Conversation | null>(null);
  const [deleting, setDeleting] = useState<Conversation | null>(null);
  const [importing, setImporting] = useState(false);
  const composerId = useId();
  const composerRef = useRef<HTMLTextAreaElement>(null);
  const modelName = (key: string) => chat.models.find((m) => m.key === key)?.label ?? key;

  if (chat.noModels && chat.list.status === 'ok' && chat.conversations.length === 0) {
    return (
      <>
        <EmptyState icon="chat" title="No models to chat with">
          <p>
            Chat needs a model. Import the GPT-2 weights (the <code>model.safetensors</code> of openai-community/gpt2,
            or a folder with it and <code>config.json</code>), or train a run: each of its checkpoints can be chatted
            with.
          </p>
          <div className="toolbar chat-empty-actions">
            <button type="button" className="button button-primary" onClick={() => setImporting(true)}>
              Import GPT-2 weights…
            </button>
            <a className="button" href={href({ page: 'new-run' })}>
              New run
            </a>
          </div>
        </EmptyState>
        {importing && (
          <ImportModelDialog
            onClose={() => setImporting(false)}
            onImported={(m) => {
              setImporting(false);
              chat.imported(m);
            }}
          />
        )}
      </>
    );
  }

  const title = selectedId ? (conversation?.title ?? 'Conversation') : 'New conversation';
  const modelText = model ? model.label : modelKey ? modelName(modelKey) : 'no model chosen';

  return (
    <div className="chat-layout">
      <nav className="card chat-list" aria-label="Conversations">
        <div className="card-header">
          <h2>Conversations</h2>
          <a
            className="button button-primary"
            href={pageHref('chat', { model: modelKey })}
            aria-current={selectedId ? undefined : 'page'}
            aria-label="New conversation"
            data-testid="new-chat"
            onClick={() => composerRef.current?.focus()}
          >
            New
          </a>
        </div>
        {chat.list.status === 'loading' && <p className="muted small">Loading…</p>}
        {chat.list.status === 'error' && <ErrorNote error={chat.list.error} onRetry={() => void chat.refreshList()} />}
        {chat.list.status === 'ok' && chat.conversations.length === 0 && (
          <p className="muted small">No conversations yet. Your first message starts one.</p>
        )}
        <ul className="chat-list-items">
          {chat.conversations.map((c) => (
            <li
              key={c.id}
              className={`chat-list-item${c.id === selectedId ? ' chat-list-item-current' : ''}`}
              data-testid="chat-item"
              data-id={c.id}
            >
              <a
                href={pageHref('chat', { c: c.id })}
                aria-current={c.id === selectedId ? 'page' : undefined}
                className="chat-list-link"
              >
                <span className="chat-list-title">
                  {(c.answering || chat.streams[c.id]) && <span className="live-dot" aria-label="answering" />}
                  {c.title}
                </span>
                <span className="chat-list-sub" title={fullDateTime(c.updatedAt)}>
                  {modelName(targetKey(c.target))} · {dateTime(c.updatedAt)} · {int(c.messageCount)} msg
                </span>
              </a>
              <span className="chat-list-actions">
                <button
                  type="button"
                  className="icon-button"
                  aria-label={`Rename “${c.title}”`}
                  title="Rename"
                  onClick={() => setRenaming(c)}
                >
                  <Icon name="edit" size={15} />
                </button>
                <button
                  type="button"
                  className="icon-button icon-button-danger"
                  aria-label={`Delete “${c.title}”`}
                  title="Delete"
                  onClick={() => setDeleting(c)}
                >
                  <Icon name="trash" size={15} />
                </button>
              </span>
            </li>
          ))}
        </ul>
      </nav>

      <section className="card chat-main" aria-labelledby={`${composerId}-title`}>
        <div className="chat-main-head">
          <h2 id={`${composerId}-title`} data-testid="chat-title" title={title}>
            {title}
          </h2>
          <span className="muted small chat-main-model" title={modelText} data-testid="chat-model-label">
            {modelText}
          </span>
          {model && (
            <span className={`pill chat-main-pill ${model.sft ? 'pill-ok' : 'pill-off'}`}>
              {model.sft ? 'chat (SFT)' : 'base model'}
            </span>
          )}
        </div>
        {chat.detail.status === 'error' && selectedId && (
          <div className="chat-load-error">
            <ErrorNote error={chat.detail.error} onRetry={() => void chat.refreshDetail()} />
            <a href={pageHref('chat')}>Start a new conversation</a>
          </div>
        )}
        {selectedId && chat.detail.status === 'loading' && (
          <p className="muted chat-loading">Loading the conversation…</p>
        )}
        {(!selectedId || conversation) && (
          <ChatThread
            messages={chat.messages}
            stream={stream}
            modelLabel={model?.label ?? 'Model'}
            empty={
              <div className="chat-thread-empty">
                <p>
                  {modelKey
                    ? 'Type a message below to start. The answer streams in as it is generated.'
                    : 'Choose a model on the right (or import GPT-2 weights), then type a message.'}
                </p>
                <p className="muted small">Enter sends; Shift+Enter starts a new line; Escape stops an answer.</p>
              </div>
            }
          />
        )}
        <div className="visually-hidden" role="status" aria-live="polite" data-testid="chat-announce">
          {chat.announce}
        </div>
        {chat.error !== null && <ErrorNote error={chat.error} />}
        <form
          className="chat-composer"
          onSubmit={(e) => {
            e.preventDefault();
            void chat.send();
          }}
        >
          <label htmlFor={composerId} className="visually-hidden">
            Message
          </label>
          <textarea
            id={composerId}
            ref={composerRef}
            rows={3}
            value={chat.composer}
            maxLength={100_000}
            placeholder="Message the model…  (Enter sends, Shift+Enter for a new line)"
            data-testid="composer"
            onChange={(e) => chat.setComposer(e.target.value)}
            onKeyDown={(e) => {
              if (e.key === 'Enter' && !e.shiftKey && !e.nativeEvent.isComposing) {
                e.preventDefault();
                if (chat.canSend) void chat.send();
              }
            }}
          />
          <div className="chat-composer-side">
            {stream ? (
              <button
                type="button"
                className="button button-danger"
                onClick={chat.stop}
                disabled={stream.stopRequested}
                aria-keyshortcuts="Escape"
              >
                {stream.stopRequested ? 'Stopping…' : 'Stop'}
              </button>
            ) : (
              <button type="submit" className="button button-primary" disabled={!chat.canSend}>
                Send
              </button>
            )}
            <span className="muted small chat-rate" data-testid="composer-rate">
              {stream && stream.phase === 'streaming' ? `${fixed(stream.tokensPerSec, 1)} tok/s` : ''}
            </span>
          </div>
        </form>
      </section>

      <ChatSettingsCard
        modelKey={modelKey}
        model={model}
        onModel={chat.chooseModel}
        form={settings.form}
        errors={chat.fieldErrors}
        onForm={(f) => chat.editSettings(f, settings.system)}
        system={settings.system}
        onSystem={(s) => chat.editSettings(settings.form, s)}
        saveState={settings.saveState}
        draft={!selectedId}
      />

      {renaming && (
        <RenameChatDialog
          conversation={renaming}
          onClose={() => setRenaming(null)}
          onSaved={(c) => {
            setRenaming(null);
            chat.patchConversation(c);
          }}
        />
      )}
      {deleting && (
        <DeleteChatDialog
          conversation={deleting}
          onClose={() => setDeleting(null)}
          onDeleted={(id) => {
            setDeleting(null);
            chat.removed(id);
          }}
        />
      )}
    </div>
  );
}
