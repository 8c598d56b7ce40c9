/**
 * The state of the Chat page: the conversations, the one open (`#/chat?c=<id>`) or the draft of a new one (with the
 * model of `?model=`, or the last one used), its settings, the message being written, and the answers being
 * generated. Each answer is a stream keyed by its conversation, so that several can run at once and the open one's
 * shows. A send picks its generation id before it asks the service (chats-send takes it), so every generate-token
 * and generate-done event of the answer finds its stream, however soon it comes.
 */
import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import type { HandlerResult, StudioEvents } from '../../../shared/contract';
import { targetKey, type ModelEntry } from '../../../shared/models';
import { fixed } from '../../format';
import { pageHref, useHashQuery } from '../../router';
import { useStudioEvent } from '../../useEvent';
import { useClient, useInvoke, useRequest } from '../../useInvoke';
import { usePersistentState } from '../../usePersistentState';
import type { Conversation } from './ChatDialogs';
import type { ChatMessage, Stream } from './ChatThread';
import { endReasonText } from './end-reason';
import { newGenId } from './gen-id';
import { parseForm, type SettingsForm } from './settings-form';
import { useChatSettings } from './useChatSettings';

type Detail = HandlerResult<'chats-get'>;
type GenerateDoneEvent = StudioEvents['generate-done'];
type Streams = Record<string, Stream>;

/** The stream key of a conversation being created by its first message. */
const NEW = '';
const NO_CONVERSATIONS: Conversation[] = [];
const NO_MESSAGES: ChatMessage[] = [];
const NO_MODELS: ModelEntry[] = [];

function go(params: Record<string, string | undefined>): void {
  window.location.hash = pageHref('chat', params).slice(1);
}

/** The detail with `m` at its end, unless it is there already or the detail is of another conversation. */
const withMessage = (id: string, m: ChatMessage) => (d: Detail | null) =>
  d && d.conversation.id === id && !d.messages.some((x) => x.seq === m.seq)
    ? { ...d, messages: [...d.messages, m] }
    : d;

export function useChatSession() {
  const client = useClient();
  const query = useHashQuery();
  const selectedId = query.get('c') || undefined;
  const urlModel = query.get('model') || undefined;
  const selectedRef = useRef(selectedId);
  selectedRef.current = selectedId;

  // ---- the answers being generated: kept in a ref as well, so that event handlers see the latest at once ----
  const [streams, setStreams] = useState<Streams>({});
  const streamsRef = useRef<Streams>({});
  const updateStreams = useCallback((fn: (s: Streams) => Streams) => {
    streamsRef.current = fn(streamsRef.current);
    setStreams(streamsRef.current);
  }, []);
  const patchStream = useCallback(
    (key: string, patch: Partial<Stream>) =>
      updateStreams((s) => (s[key] ? { ...s, [key]: { ...s[key], ...patch } } : s)),
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
  const streamKeyOf = (genId: string) =>
    Object.keys(streamsRef.current).find((k) => streamsRef.current[k]!.genId === genId);

  // ---- the conversations, and the open one ----
  const list = useRequest(() => client.invoke('chats-list'), [client]);
  const detail = useRequest(
    () => (selectedId ? client.invoke('chats-get', { id: selectedId }) : Promise.resolve(null)),
    [client, selectedId],
    (d) => {
      if (!d) return;
      const id = d.conversation.id;
      settings.load(d.conversation);
      // an answer that this page did not start (another window, or before a reload): follow it
      const st = streamsRef.current[id];
      const { answering, answeringGenId } = d.conversation;
      if (answering && !st) {
        updateStreams((s) => ({
          ...s,
          [id]: {
            convId: id,
            genId: answeringGenId,
            phase: answeringGenId ? 'streaming' : 'loading',
            text: '',
            tokens: 0,
            tokensPerSec: 0,
            stopRequested: false,
            joined: true,
          },
        }));
      } else if (st?.joined && !answering) {
        dropStream(id);
      } else if (st?.joined && st.genId === null && answeringGenId) {
        patchStream(id, { genId: answeringGenId, phase: 'streaming' });
      }
    },
  );
  const { refresh: refreshList, setData: setList } = list;
  const { refresh: refreshDetail, setData: setDetail } = detail;
  const conversations = list.state.data ?? NO_CONVERSATIONS;
  const conversation = detail.state.data?.conversation.id === selectedId ? detail.state.data?.conversation : undefined;
  const messages = (conversation && detail.state.data?.messages) || NO_MESSAGES;

  const patchConversation = useCallback(
    (c: Conversation) => {
      setDetail((d) => (d && d.conversation.id === c.id ? { ...d, conversation: c } : d));
      setList((l) => l.map((x) => (x.id === c.id ? c : x)));
    },
    [setDetail, setList],
  );
  const settings = useChatSettings(selectedId, patchConversation);

  // an answer followed from elsewhere whose generation id is not known yet: look again shortly
  const joinedWaiting =
    selectedId !== undefined && streams[selectedId]?.joined === true && streams[selectedId]?.genId === null;
  useEffect(() => {
    if (!joinedWaiting) return;
    const t = window.setTimeout(() => void refreshDetail(), 500);
    return () => window.clearTimeout(t);
  }, [joinedWaiting, refreshDetail, streams]);

  // ---- the model: the conversation's, or the draft's ----
  const [modelsState, reloadModels] = useInvoke('models-list');
  const models = modelsState.data ?? NO_MODELS;
  const [lastModel, setLastModel] = usePersistentState('chat.model', '');
  const [draftKey, setDraftKey] = useState<string | undefined>(urlModel);
  useEffect(() => {
    if (urlModel) setDraftKey(urlModel);
  }, [urlModel]);
  const draftModelKey = draftKey ?? (models.some((m) => m.key === lastModel) ? lastModel : models[0]?.key);
  const modelKey = selectedId ? (conversation ? targetKey(conversation.target) : undefined) : draftModelKey;
  const model = models.find((m) => m.key === modelKey);
  // max tokens is bounded by the model's context (the service refuses more): a value above it is a field error
  const contextTokens = model?.blockSize;
  const parsed = useMemo(() => parseForm(settings.form, contextTokens), [settings.form, contextTokens]);

  const [composer, setComposer] = useState('');
  const [sendError, setSendError] = useState<{ key: string; error: unknown } | null>(null);
  const [announce, setAnnounce] = useState('');

  const chooseModel = (m: ModelEntry | undefined) => {
    if (!m) return;
    if (!models.some((x) => x.key === m.key)) reloadModels();
    setLastModel(m.key);
    if (!selectedId) {
      setDraftKey(m.key);
      return;
    }
    if (!conversation || targetKey(conversation.target) === m.key) return;
    client
      .invoke('chats-update', { id: conversation.id, target: m.target })
      .then(patchConversation, (error: unknown) => setSendError({ key: conversation.id, error }));
  };

  /** Weights imported from the page's empty state: the draft uses them. */
  const imported = (m: ModelEntry) => {
    setLastModel(m.key);
    setDraftKey(m.key);
    reloadModels();
  };

  // ---- the end of an answer ----
  const finish = useCallback(
    (key: string, e: GenerateDoneEvent) => {
      const st = streamsRef.current[key];
      dropStream(key);
      if (e.reason === 'stop') setAnnounce(`Answer stopped after ${e.tokens} tokens.`);
      else if (e.reason === 'error') setAnnounce(`The answer failed: ${e.error?.message ?? 'unknown error'}`);
      else
        setAnnounce(
          `Answer finished: ${e.tokens} tokens at ${fixed(e.tokensPerSec, 1)} tokens per second; ${endReasonText(e.reason, e.contextTokens)}.`,
        );
      if (key === selectedRef.current) {
        // show the answer at once, then as the service stored it
        if (st?.userSeq !== undefined) {
          const answer: ChatMessage = {
            seq: st.userSeq + 1,
            role: 'assistant',
            content: e.text,
            createdAt: Date.now(),
            tokens: e.tokens,
            tokensPerSec: e.tokensPerSec,
            reason: e.reason,
            contextTokens: e.contextTokens,
            error: e.error ?? null,
          };
          setDetail(withMessage(key, answer));
        }
        void refreshDetail();
      }
      void refreshList();
    },
    [dropStream, setDetail, refreshDetail, refreshList],
  );

  useStudioEvent('generate-token', (e) => {
    const key = streamKeyOf(e.genId);
    if (key === undefined) return;
    const st = streamsRef.current[key]!;
    patchStream(key, { phase: 'streaming', text: st.text + e.text, tokens: e.tokens, tokensPerSec: e.tokensPerSec });
  });
  useStudioEvent('generate-done', (e) => {
    const key = streamKeyOf(e.genId);
    if (key === undefined) {
      // a conversation answered elsewhere
      if (conversations.some((c) => c.answering)) void refreshList();
      return;
    }
    const st = streamsRef.current[key]!;
    // an answer can end before chats-send has answered (stopped at once): it ends when the send answers, with the
    // number of its user message
    if (!st.joined && st.userSeq === undefined) patchStream(key, { done: e });
    else finish(key, e);
  });

  // ---- sending and stopping ----
  const streamKey = selectedId ?? NEW;
  const stream: Stream | undefined = streams[streamKey];
  const busy = stream !== undefined;
  const canSend =
    composer.trim() !== '' &&
    !busy &&
    parsed.settings !== null &&
    (selectedId ? conversation !== undefined : draftModelKey !== undefined);

  const send = async () => {
    const content = composer;
    if (!content.trim() || streamsRef.current[streamKey]) return;
    if (!parsed.settings) {
      setSendError({
        key: streamKey,
        error: new Error('Fix the sampling settings first (see the fields marked in red).'),
      });
      return;
    }
    const draftModel = models.find((m) => m.key === draftModelKey);
    if (!selectedId && !draftModel) {
      setSendError({ key: NEW, error: new Error('Choose a model first, or import GPT-2 weights.') });
      return;
    }
    setSendError(null);
    setComposer('');
    const genId = newGenId();
    let key = streamKey;
    /** the conversation this send created (taken back when its first message cannot be sent) */
    let created: string | undefined;
    updateStreams((s) => ({
      ...s,
      [key]: {
        convId: key,
        genId,
        phase: 'loading',
        text: '',
        tokens: 0,
        tokensPerSec: 0,
        stopRequested: false,
        joined: false,
        pendingUser: content,
      },
    }));
    setAnnounce('Sending; loading the model…');
    try {
      if (!selectedId) {
        const c = await client.invoke('chats-create', {
          target: draftModel!.target,
          settings: { ...parsed.settings, system: settings.system },
        });
        created = c.id;
        settings.claim(c.id);
        const st = streamsRef.current[NEW]!;
        dropStream(NEW);
        key = c.id;
        updateStreams((s) => ({ ...s, [c.id]: { ...st, convId: c.id } }));
        setList((l) => [c, ...l]);
        go({ c: c.id });
      } else {
        await settings.flush();
      }
      const sent = await client.invoke('chats-send', { id: key, content, genId });
      const st = streamsRef.current[key];
      patchStream(key, { phase: 'streaming', userSeq: sent.message.seq });
      setDetail(withMessage(key, sent.message));
      if (st?.done) finish(key, st.done);
      else {
        setAnnounce('Answering…');
        // a stop asked for while the model loaded found no generation to stop yet
        if (st?.stopRequested) void client.invoke('generate-stop', { genId });
      }
      if (key === selectedRef.current) void refreshDetail();
      void refreshList();
    } catch (error) {
      dropStream(key);
      if (created !== undefined) {
        // the first message of a new conversation failed: no empty conversation is left behind, and the draft
        // (with its model and settings) is where the error shows
        const id = created;
        void client.invoke('chats-delete', { id }).catch(() => undefined);
        setList((l) => l.filter((c) => c.id !== id));
        key = NEW;
        go({ model: draftModelKey });
      }
      setSendError({ key, error });
      setComposer((c) => (c === '' ? content : c));
      setAnnounce('The message was not sent.');
    }
  };

  const stop = useCallback(
    (key: string) => {
      const st = streamsRef.current[key];
      if (!st || st.stopRequested) return;
      patchStream(key, { stopRequested: true });
      setAnnounce('Stopping the answer…');
      if (st.genId)
        client.invoke('generate-stop', { genId: st.genId }).catch((error: unknown) => setSendError({ key, error }));
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

  /** A conversation was deleted: its answer is gone, and the page leaves it when it was open. */
  const removed = (id: string) => {
    dropStream(id);
    setList((l) => l.filter((x) => x.id !== id));
    if (id === selectedId) go({ model: modelKey });
  };

  return {
    selectedId,
    /** the conversations (loading, or why they could not be listed), and how to ask again */
    list: list.state,
    conversations,
    refreshList,
    /** the open conversation's messages, once loaded */
    detail: detail.state,
    refreshDetail,
    conversation,
    messages,
    patchConversation,
    removed,
    /** every answer being generated, by conversation; `stream` is the open one's */
    streams,
    stream,
    models,
    /** the workspace has no model to chat with */
    noModels: modelsState.status === 'ok' && models.length === 0,
    modelKey,
    model,
    chooseModel,
    imported,
    settings,
    fieldErrors: parsed.errors,
    editSettings: (form: SettingsForm, system: string) => settings.edit(form, system, conversation, contextTokens),
    composer,
    setComposer,
    canSend,
    send,
    stop: () => stop(streamKey),
    /** the error of the last send (or model change, or stop) of the open conversation or the draft */
    error: sendError && sendError.key === streamKey ? sendError.error : null,
    announce,
  };
}
