/**
 * The sampling settings and system message of the Chat page's form: those of the open conversation, saved to it
 * shortly after a change (and before a send, and when the page leaves it), or the draft's, which a new
 * conversation starts with.
 */
import { useCallback, useEffect, useRef, useState } from 'react';
import { useClient } from '../../useInvoke';
import type { Conversation } from './ChatDialogs';
import type { SaveState } from './ChatSettingsCard';
import { DEFAULT_FORM, formOf, parseForm, sameSettings, type SettingsForm } from './settings-form';

export interface ChatSettings {
  form: SettingsForm;
  system: string;
  saveState: SaveState;
  /** The form shows the settings of `c`, unless it shows that conversation already (with what was typed since). */
  load: (c: Conversation) => void;
  /** The form is the settings of conversation `id` already (the one its first message created). */
  claim: (id: string) => void;
  /** A change typed into the form, saved to `c` (the open conversation; none for the draft) shortly after. */
  edit: (form: SettingsForm, system: string, c: Conversation | undefined, contextTokens: number | undefined) => void;
  /** Saves a change not saved yet, now; rejects when the save fails. */
  flush: () => Promise<void>;
}

export function useChatSettings(selectedId: string | undefined, onSaved: (c: Conversation) => void): ChatSettings {
  const client = useClient();
  const [form, setForm] = useState<SettingsForm>(DEFAULT_FORM);
  const [system, setSystem] = useState('');
  const [saveState, setSaveState] = useState<SaveState>({ status: 'idle' });
  /** the conversation whose settings the form shows */
  const formFor = useRef<string | undefined>(undefined);
  const saveTimer = useRef<number | undefined>(undefined);
  const pendingSave = useRef<(() => Promise<void>) | null>(null);

  const flush = useCallback(async () => {
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
    // leaving a conversation: what was typed into its settings is still saved
    if (selectedId) return () => void flush().catch(() => undefined);
    // a new conversation starts from the defaults
    formFor.current = undefined;
    setForm(DEFAULT_FORM);
    setSystem('');
    setSaveState({ status: 'idle' });
  }, [selectedId, flush]);

  const load = useCallback((c: Conversation) => {
    if (formFor.current === c.id) return;
    formFor.current = c.id;
    setForm(formOf(c.settings));
    setSystem(c.settings.system ?? '');
    setSaveState({ status: 'idle' });
  }, []);

  const claim = useCallback((id: string) => {
    formFor.current = id;
  }, []);

  const edit = (
    nextForm: SettingsForm,
    nextSystem: string,
    c: Conversation | undefined,
    contextTokens: number | undefined,
  ) => {
    setForm(nextForm);
    setSystem(nextSystem);
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
    pendingSave.current = async () => onSaved(await client.invoke('chats-update', { id: c.id, settings }));
    setSaveState({ status: 'pending' });
    window.clearTimeout(saveTimer.current);
    saveTimer.current = window.setTimeout(() => void flush().catch(() => undefined), 500);
  };

  return { form, system, saveState, load, claim, edit, flush };
}
