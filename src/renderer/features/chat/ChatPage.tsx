/**
 * Chat: conversations with any model of the workspace (imported GPT-2 weights or a run's checkpoint), kept in the
 * workspace. `#/chat?c=<conversationId>` opens a conversation; `#/chat?model=<ModelEntry.key>` starts a new one
 * with that model (what the Checkpoints page links to). The answer streams in token by token (generate-token), and
 * the service stores it when it ends (generate-done), stopped or not.
 */
import { useCallback, useEffect, useId, useMemo, useRef, useState } from 'react';
import type { HandlerResult, StudioEvents } from '../../../shared/contract';
import { targetKey, type ModelEntry } from '../../../shared/models';
import { EmptyState } from '../../components/EmptyState';
import { ErrorNote } from '../../components/ErrorNote';
import { Icon } from '../../components/Icon';
import { ImportModelDialog } from '../../components/ImportModelDialog';
import { dateTime, fixed, fullDateTime, int } from '../../format';
import { href, pageHref, useHashQuery } from '../../router';
import { useStudioEvent } from '../../useEvent';
import { useClient, useInvoke } from '../../useInvoke';
import { usePersistentState } from '../../usePersistentState';
import { DeleteChatDialog, RenameChatDialog, type Conversation } from './ChatDialogs';
import { ChatSettingsCard, type SaveState } from './ChatSettingsCard';
import { ChatThread, type ChatMessage, type Stream } from './ChatThread';
import { endReasonText } from './end-reason';
import { DEFAULT_FORM, formOf, parseForm, sameSettings, type SettingsForm } from './settings-form';
import './chat.css';

type Detail = HandlerResult<'chats-get'>;
type GenerateDoneEvent = StudioEvents['generate-done'];
type Load<T> = { status: 'loading' } | { status: 'error'; error: unknown } | { status: 'ok'; data: T };

/** The stream key of a conversation being created by its first message. */
const NEW = '';

function go(params: Record<string, string | undefined>): void {
  window.location.hash = pageHref('chat', params).slice(1);
}

export function ChatPage() {
  const client = useClient();
  const query = useHashQuery();
  const selectedId = query.get('c') || undefined;
  const urlModel = query.get('model') || undefined;

  const [modelsState, reloadModels] = useInvoke('models-list');
  const models = useMemo(() => (modelsState.status === 'ok' ? modelsState.data : []), [modelsState]);
  const [list, setList] = useState<Load<Conversation[]>>({ status: 'loading' });
  const [detail, setDetail] = useState<Load<Detail> | null>(null);
  const [lastModel, setLastModel] = usePersistentState('chat.model', '');
  const [draftKey, setDraftKey] = useState<string | undefined>(urlModel);
  const [form, setForm] = useState<SettingsForm>(DEFAULT_FORM);
  const [system, setSystem] = useState('');
  const [saveState, setSaveState] = useState<SaveState>({ status: 'idle' });
  const [streams, setStreams] = useState<Record<string, Stream>>({});
  const [composer, setComposer] = useState('');
  const [sendError, setSendError] = useState<{ key: string; error: unknown } | null>(null);
  const [announce, setAnnounce] = useState('');
  const [renaming, setRenaming] = useState<Conversation | null>(null);
  const [deleting, setDeleting] = useState<Conversation | null>(null);
  const [importing, setImporting] = useState(false);
  const composerId = useId();
  const composerRef = useRef<HTMLTextAreaElement>(null);

  // ---- streams: kept in a ref as well, so that event handlers see the latest at once ----
  const streamsRef = useRef<Record<string, Stream>>({});
  const updateStreams = useCallback((fn: (s: Record<string, Stream>) => Record<string, Stream>) => {
    streamsRef.current = fn(streamsRef.current);
    setStreams(streamsRef.current);
  }, []);
  const patchStream = useCallback(
    (key: string, patch: Partial<Stream>) => updateStreams((s) => (s[key] ? { ...s, [key]: { ...s[key], ...patch } } : s)),
    [updateStreams],
  );
  const dropStream = useCallback(
    (key: string) =>
      updateStreams((s) => {
        if (!(key in s)) return s;
        const next = { ...s };
        delete next[key];
        return next;
      }),
    [updateStreams],
  );
  const streamKeyOf = (genId: string) => Object.keys(streamsRef.current).find((k) => streamsRef.current[k].genId === genId);
  /** events of a generation whose id is not known yet (its send has not returned) */
  const early = useRef(new Map<string, { text: string; tokens: number; tokensPerSec: number; done?: GenerateDoneEvent }>());
  const sending = useRef(0);

  const selectedRef = useRef(selectedId);
  selectedRef.current = selectedId;

  // ---- loading ----
  const reloadList = useCallback(async () => {
    try {
      setList({ status: 'ok', data: await client.invoke('chats-list') });
    } catch (error) {
      setList({ status: 'error', error });
    }
  }, [client]);
  useEffect(() => {
    void reloadList();
  }, [reloadList]);

  const detailReq = useRef(0);
  /** the conversation whose settings the form shows */
  const formFor = useRef<string | undefined>(undefined);
  const refreshDetail = useCallback(
    async (id: string) => {
      const req = ++detailReq.current;
      try {
        const d = await client.invoke('chats-get', { id });
        if (req !== detailReq.current || selectedRef.current !== id) return;
        setDetail({ status: 'ok', data: d });
        if (formFor.current !== id) {
          formFor.current = id;
          setForm(formOf(d.conversation.settings));
          setSystem(d.conversation.settings.system ?? '');
          setSaveState({ status: 'idle' });
        }
        // an answer that this page did not start (another window, or before a reload): follow it
        const st = streamsRef.current[id];
        if (d.conversation.answering && !st) {
          updateStreams((s) => ({
            ...s,
            [id]: { convId: id, genId: d.conversation.answeringGenId, phase: d.conversation.answeringGenId ? 'streaming' : 'loading', text: '', tokens: 0, tokensPerSec: 0, stopRequested: false, joined: true },
          }));
        } else if (st?.joined && !d.conversation.answering) {
          dropStream(id);
        } else if (st?.joined && st.genId === null && d.conversation.answeringGenId) {
          patchStream(id, { genId: d.conversation.answeringGenId, phase: 'streaming' });
        }
      } catch (error) {
        if (req === detailReq.current && selectedRef.current === id) setDetail({ status: 'error', error });
      }
    },
    [client, updateStreams, dropStream, patchStream],
  );

  // ---- settings: saved to the conversation shortly after a change, and before a send ----
  const saveTimer = useRef<number | undefined>(undefined);
  const pendingSave = useRef<(() => Promise<void>) | null>(null);
  const flushSave = useCallback(async () => {
    window.clearTimeout(saveTimer.current);
    const f = pendingSave.current;
    pendingSave.current = null;
    if (!f) return;
    setSaveState({ status: 'saving' });
    try {
      await f();
      setSaveState({ status: 'saved' });
    } catch (error) {
      setSaveState({ status: 'error', error });
      throw error;
    }
  }, []);

  useEffect(() => {
    if (!selectedId) {
      setDetail(null);
      formFor.current = undefined;
      return;
    }
    setDetail((d) => (d?.status === 'ok' && d.data.conversation.id === selectedId ? d : { status: 'loading' }));
    void refreshDetail(selectedId);
    return () => {
      // leaving a conversation: what was typed into its settings is still saved
      flushSave().catch(() => undefined);
    };
  }, [selectedId, refreshDetail, flushSave]);

  // a new conversation (no ?c=) starts from the defaults, with the model of the URL when given
  useEffect(() => {
    if (selectedId) return;
    setForm(DEFAULT_FORM);
    setSystem('');
    setSaveState({ status: 'idle' });
  }, [selectedId]);
  useEffect(() => {
    if (urlModel) setDraftKey(urlModel);
  }, [urlModel]);

  // an answer followed from elsewhere whose generation id is not known yet: look again shortly
  const joinedWaiting = selectedId !== undefined && streams[selectedId]?.joined === true && streams[selectedId]?.genId === null;
  useEffect(() => {
    if (!joinedWaiting || !selectedId) return;
    const t = window.setTimeout(() => void refreshDetail(selectedId), 500);
    return () => window.clearTimeout(t);
  }, [joinedWaiting, selectedId, refreshDetail, streams]);

  const conversation = detail?.status === 'ok' && detail.data.conversation.id === selectedId ? detail.data.conversation : undefined;
  const messages: ChatMessage[] = conversation && detail?.status === 'ok' ? detail.data.messages : [];

  const patchConversation = useCallback((c: Conversation) => {
    setDetail((d) => (d?.status === 'ok' && d.data.conversation.id === c.id ? { status: 'ok', data: { ...d.data, conversation: c } } : d));
    setList((l) => (l.status === 'ok' ? { status: 'ok', data: l.data.map((x) => (x.id === c.id ? c : x)) } : l));
  }, []);

  // ---- the model ----
  const draftModelKey = draftKey ?? (models.some((m) => m.key === lastModel) ? lastModel : models[0]?.key);
  const modelKey = selectedId ? (conversation ? targetKey(conversation.target) : undefined) : draftModelKey;
  const model = models.find((m) => m.key === modelKey);
  const modelName = (key: string) => models.find((m) => m.key === key)?.label ?? key;

  // max tokens is bounded by the model's context (the service refuses more): a value above it is a field error
  const contextTokens = model?.blockSize;
  const parsed = useMemo(() => parseForm(form, contextTokens), [form, contextTokens]);

  const scheduleSave = (nextForm: SettingsForm, nextSystem: string) => {
    const c = conversation;
    if (!c) return;
    const p = parseForm(nextForm, contextTokens);
    if (!p.settings) {
      window.clearTimeout(saveTimer.current);
      pendingSave.current = null;
      setSaveState({ status: 'idle' });
      return;
    }
    const settings = { ...p.settings, system: nextSystem };
    if (sameSettings(c.settings, settings)) {
      window.clearTimeout(saveTimer.current);
      pendingSave.current = null;
      return;
    }
    pendingSave.current = async () => patchConversation(await client.invoke('chats-update', { id: c.id, settings }));
    setSaveState({ status: 'pending' });
    window.clearTimeout(saveTimer.current);
    saveTimer.current = window.setTimeout(() => void flushSave().catch(() => undefined), 500);
  };

  const onModel = (m: ModelEntry | undefined) => {
    if (!m) return;
    if (!models.some((x) => x.key === m.key)) reloadModels();
    setLastModel(m.key);
    if (!selectedId) {
      setDraftKey(m.key);
      return;
    }
    if (!conversation || targetKey(conversation.target) === m.key) return;
    client.invoke('chats-update', { id: conversation.id, target: m.target }).then(patchConversation, (error: unknown) => setSendError({ key: conversation.id, error }));
  };

  // ---- events ----
  const finish = useCallback(
    (key: string, e: GenerateDoneEvent) => {
      const st = streamsRef.current[key];
      dropStream(key);
      if (e.reason === 'stop') setAnnounce(`Answer stopped after ${e.tokens} tokens.`);
      else if (e.reason === 'error') setAnnounce(`The answer failed: ${e.error?.message ?? 'unknown error'}`);
      else setAnnounce(`Answer finished: ${e.tokens} tokens at ${fixed(e.tokensPerSec, 1)} tokens per second; ${endReasonText(e.reason, e.contextTokens)}.`);
      if (key === selectedRef.current) {
        // show the answer at once, then as the service stored it
        if (st?.userSeq !== undefined) {
          const answer: ChatMessage = {
            seq: st.userSeq + 1, role: 'assistant', content: e.text, createdAt: Date.now(), tokens: e.tokens, tokensPerSec: e.tokensPerSec, reason: e.reason, contextTokens: e.contextTokens, error: e.error ?? null,
          };
          setDetail((d) => (d?.status === 'ok' && d.data.conversation.id === key && !d.data.messages.some((m) => m.seq === answer.seq) ? { status: 'ok', data: { ...d.data, messages: [...d.data.messages, answer] } } : d));
        }
        void refreshDetail(key);
      }
      void reloadList();
    },
    [dropStream, refreshDetail, reloadList],
  );

  useStudioEvent('generate-token', (e) => {
    const key = streamKeyOf(e.genId);
    if (key === undefined) {
      if (sending.current > 0) {
        const b = early.current.get(e.genId) ?? { text: '', tokens: 0, tokensPerSec: 0 };
        early.current.set(e.genId, { ...b, text: b.text + e.text, tokens: e.tokens, tokensPerSec: e.tokensPerSec });
      }
      return;
    }
    const st = streamsRef.current[key];
    patchStream(key, { phase: 'streaming', text: st.text + e.text, tokens: e.tokens, tokensPerSec: e.tokensPerSec });
  });
  useStudioEvent('generate-done', (e) => {
    const key = streamKeyOf(e.genId);
    if (key !== undefined) {
      finish(key, e);
      return;
    }
    if (sending.current > 0) {
      const b = early.current.get(e.genId) ?? { text: '', tokens: 0, tokensPerSec: 0 };
      early.current.set(e.genId, { ...b, done: e });
    }
    // a conversation answered elsewhere
    if (list.status === 'ok' && list.data.some((c) => c.answering)) void reloadList();
  });

  // ---- sending and stopping ----
  const streamKey = selectedId ?? NEW;
  const stream = streams[streamKey];
  const busy = stream !== undefined;

  const send = async () => {
    const content = composer;
    if (!content.trim() || streamsRef.current[streamKey]) return;
    if (!parsed.settings) {
      setSendError({ key: streamKey, error: new Error('Fix the sampling settings first (see the fields marked in red).') });
      return;
    }
    const draftModel = models.find((m) => m.key === draftModelKey);
    if (!selectedId && !draftModel) {
      setSendError({ key: NEW, error: new Error('Choose a model first, or import GPT-2 weights.') });
      return;
    }
    setSendError(null);
    setComposer('');
    let key = streamKey;
    /** the conversation this send created (taken back when its first message cannot be sent) */
    let created: string | undefined;
    sending.current++;
    updateStreams((s) => ({ ...s, [key]: { convId: key, genId: null, phase: 'loading', text: '', tokens: 0, tokensPerSec: 0, stopRequested: false, joined: false, pendingUser: content } }));
    setAnnounce('Sending; loading the model…');
    try {
      if (!selectedId) {
        const c = await client.invoke('chats-create', { target: draftModel!.target, settings: { ...parsed.settings, system } });
        created = c.id;
        formFor.current = c.id;
        const st = streamsRef.current[NEW];
        dropStream(NEW);
        key = c.id;
        updateStreams((s) => ({ ...s, [c.id]: { ...st, convId: c.id } }));
        setList((l) => (l.status === 'ok' ? { status: 'ok', data: [c, ...l.data] } : l));
        go({ c: c.id });
      } else {
        await flushSave();
      }
      const sent = await client.invoke('chats-send', { id: key, content });
      const got = early.current.get(sent.genId);
      early.current.delete(sent.genId);
      const st = streamsRef.current[key];
      patchStream(key, { genId: sent.genId, phase: 'streaming', userSeq: sent.message.seq, text: got?.text ?? '', tokens: got?.tokens ?? 0, tokensPerSec: got?.tokensPerSec ?? 0 });
      setAnnounce('Answering…');
      if (st?.stopRequested) void client.invoke('generate-stop', { genId: sent.genId });
      setDetail((d) => (d?.status === 'ok' && d.data.conversation.id === key && !d.data.messages.some((m) => m.seq === sent.message.seq) ? { status: 'ok', data: { ...d.data, messages: [...d.data.messages, sent.message] } } : d));
      if (got?.done) finish(key, got.done);
      if (key === selectedRef.current) void refreshDetail(key);
      void reloadList();
    } catch (error) {
      dropStream(key);
      if (created !== undefined) {
        // the first message of a new conversation failed: no empty conversation is left behind, and the draft
        // (with its model and settings) is where the error shows
        const id = created;
        void client.invoke('chats-delete', { id }).catch(() => undefined);
        setList((l) => (l.status === 'ok' ? { status: 'ok', data: l.data.filter((c) => c.id !== id) } : l));
        key = NEW;
        go({ model: draftModelKey });
      }
      setSendError({ key, error });
      setComposer((c) => (c === '' ? content : c));
      setAnnounce('The message was not sent.');
    } finally {
      sending.current--;
      if (sending.current === 0) early.current.clear();
    }
  };

  const stop = useCallback(
    (key: string) => {
      const st = streamsRef.current[key];
      if (!st || st.stopRequested) return;
      patchStream(key, { stopRequested: true });
      setAnnounce('Stopping the answer…');
      if (st.genId) client.invoke('generate-stop', { genId: st.genId }).catch((error: unknown) => setSendError({ key, error }));
    },
    [client, patchStream],
  );

  // Escape stops the answer (unless a dialog is open: Escape closes that)
  useEffect(() => {
    if (!busy) return;
    const onKey = (e: KeyboardEvent) => {
      if (e.key !== 'Escape' || e.defaultPrevented || document.querySelector('dialog[open]')) return;
      e.preventDefault();
      stop(streamKey);
    };
    document.addEventListener('keydown', onKey);
    return () => document.removeEventListener('keydown', onKey);
  }, [busy, stop, streamKey]);

  // ---- rendering ----
  const listData = list.status === 'ok' ? list.data : [];
  const noModels = modelsState.status === 'ok' && models.length === 0;

  if (noModels && list.status === 'ok' && listData.length === 0) {
    return (
      <>
        <EmptyState icon="chat" title="No models to chat with">
          <p>
            Chat needs a model. Import the GPT-2 weights (the <code>model.safetensors</code> of openai-community/gpt2, or a folder
            with it and <code>config.json</code>), or train a run: each of its checkpoints can be chatted with.
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
              setLastModel(m.key);
              setDraftKey(m.key);
              reloadModels();
            }}
          />
        )}
      </>
    );
  }

  const title = selectedId ? (conversation?.title ?? 'Conversation') : 'New conversation';
  const shownError = sendError && sendError.key === streamKey ? sendError.error : null;
  const canSend = composer.trim() !== '' && !busy && parsed.settings !== null && (selectedId ? conversation !== undefined : draftModelKey !== undefined);

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
        {list.status === 'loading' && <p className="muted small">Loading…</p>}
        {list.status === 'error' && <ErrorNote error={list.error} onRetry={() => void reloadList()} />}
        {list.status === 'ok' && listData.length === 0 && <p className="muted small">No conversations yet. Your first message starts one.</p>}
        <ul className="chat-list-items">
          {listData.map((c) => (
            <li key={c.id} className={`chat-list-item${c.id === selectedId ? ' chat-list-item-current' : ''}`} data-testid="chat-item" data-id={c.id}>
              <a href={pageHref('chat', { c: c.id })} aria-current={c.id === selectedId ? 'page' : undefined} className="chat-list-link">
                <span className="chat-list-title">
                  {(c.answering || streams[c.id]) && <span className="live-dot" aria-label="answering" />}
                  {c.title}
                </span>
                <span className="chat-list-sub" title={fullDateTime(c.updatedAt)}>
                  {modelName(targetKey(c.target))} · {dateTime(c.updatedAt)} · {int(c.messageCount)} msg
                </span>
              </a>
              <span className="chat-list-actions">
                <button type="button" className="icon-button" aria-label={`Rename “${c.title}”`} title="Rename" onClick={() => setRenaming(c)}>
                  <Icon name="edit" size={15} />
                </button>
                <button type="button" className="icon-button icon-button-danger" aria-label={`Delete “${c.title}”`} title="Delete" onClick={() => setDeleting(c)}>
                  <Icon name="trash" size={15} />
                </button>
              </span>
            </li>
          ))}
        </ul>
      </nav>

      <section className="card chat-main" aria-labelledby={`${composerId}-title`}>
        <div className="chat-main-head">
          <h2 id={`${composerId}-title`} data-testid="chat-title">
            {title}
          </h2>
          <span className="muted small">{model ? model.label : modelKey ? modelName(modelKey) : 'no model chosen'}</span>
          {model && <span className={`pill ${model.sft ? 'pill-ok' : 'pill-off'}`}>{model.sft ? 'chat (SFT)' : 'base model'}</span>}
        </div>
        {detail?.status === 'error' && selectedId && (
          <div className="chat-load-error">
            <ErrorNote error={detail.error} onRetry={() => void refreshDetail(selectedId)} />
            <a href={pageHref('chat')}>Start a new conversation</a>
          </div>
        )}
        {selectedId && detail?.status === 'loading' && <p className="muted chat-loading">Loading the conversation…</p>}
        {(!selectedId || conversation) && (
          <ChatThread
            messages={messages}
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
          {announce}
        </div>
        {shownError !== null && <ErrorNote error={shownError} />}
        <form
          className="chat-composer"
          onSubmit={(e) => {
            e.preventDefault();
            void send();
          }}
        >
          <label htmlFor={composerId} className="visually-hidden">
            Message
          </label>
          <textarea
            id={composerId}
            ref={composerRef}
            rows={3}
            value={composer}
            maxLength={100_000}
            placeholder="Message the model…  (Enter sends, Shift+Enter for a new line)"
            data-testid="composer"
            onChange={(e) => setComposer(e.target.value)}
            onKeyDown={(e) => {
              if (e.key === 'Enter' && !e.shiftKey && !e.nativeEvent.isComposing) {
                e.preventDefault();
                if (canSend) void send();
              }
            }}
          />
          <div className="chat-composer-side">
            {busy ? (
              <button type="button" className="button button-danger" onClick={() => stop(streamKey)} disabled={stream.stopRequested} aria-keyshortcuts="Escape">
                {stream.stopRequested ? 'Stopping…' : 'Stop'}
              </button>
            ) : (
              <button type="submit" className="button button-primary" disabled={!canSend}>
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
        onModel={onModel}
        form={form}
        errors={parsed.errors}
        onForm={(f) => {
          setForm(f);
          scheduleSave(f, system);
        }}
        system={system}
        onSystem={(s) => {
          setSystem(s);
          scheduleSave(form, s);
        }}
        saveState={saveState}
        draft={!selectedId}
      />

      {renaming && (
        <RenameChatDialog
          conversation={renaming}
          onClose={() => setRenaming(null)}
          onSaved={(c) => {
            setRenaming(null);
            patchConversation(c);
          }}
        />
      )}
      {deleting && (
        <DeleteChatDialog
          conversation={deleting}
          onClose={() => setDeleting(null)}
          onDeleted={(id) => {
            setDeleting(null);
            dropStream(id);
            setList((l) => (l.status === 'ok' ? { status: 'ok', data: l.data.filter((x) => x.id !== id) } : l));
            if (id === selectedId) go({ model: modelKey });
          }}
        />
      )}
    </div>
  );
}
