import { useId, useState } from 'react';
import type { HandlerResult } from '../../../shared/contract';
import { Dialog } from '../../components/Dialog';
import { ErrorNote } from '../../components/ErrorNote';
import { useClient } from '../../useInvoke';

export type Conversation = HandlerResult<'chats-create'>;

export function RenameChatDialog({ conversation, onClose, onSaved }: { conversation: Conversation; onClose: () => void; onSaved: (c: Conversation) => void }) {
  const client = useClient();
  const [title, setTitle] = useState(conversation.named ? conversation.title : '');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const ids = { title: useId(), form: useId() };
  const empty = title.trim() === '';

  const save = async () => {
    if (empty) return;
    setBusy(true);
    setError(null);
    try {
      onSaved(await client.invoke('chats-update', { id: conversation.id, title: title.trim() }));
    } catch (e) {
      setError(e);
      setBusy(false);
    }
  };

  return (
    <Dialog
      title="Rename conversation"
      onClose={onClose}
      testId="rename-chat-dialog"
      footer={
        <>
          <button type="button" className="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" form={ids.form} className="button button-primary" disabled={busy || empty}>
            {busy ? 'Saving…' : 'Save'}
          </button>
        </>
      }
    >
      <form
        id={ids.form}
        className="form-grid"
        onSubmit={(e) => {
          e.preventDefault();
          void save();
        }}
      >
        <div className="field">
          <label htmlFor={ids.title}>Title</label>
          <input id={ids.title} value={title} maxLength={200} autoFocus placeholder={conversation.title} onChange={(e) => setTitle(e.target.value)} />
        </div>
      </form>
      {error !== null && <ErrorNote error={error} />}
    </Dialog>
  );
}

export function DeleteChatDialog({ conversation, onClose, onDeleted }: { conversation: Conversation; onClose: () => void; onDeleted: (id: string) => void }) {
  const client = useClient();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const remove = async () => {
    setBusy(true);
    setError(null);
    try {
      await client.invoke('chats-delete', { id: conversation.id });
      onDeleted(conversation.id);
    } catch (e) {
      setError(e);
      setBusy(false);
    }
  };
  const n = conversation.messageCount;
  return (
    <Dialog
      title={`Delete “${conversation.title}”?`}
      onClose={onClose}
      tone="danger"
      testId="delete-chat-dialog"
      footer={
        <>
          <button type="button" className="button" onClick={onClose} autoFocus>
            Cancel
          </button>
          <button type="button" className="button button-danger-solid" onClick={remove} disabled={busy}>
            {busy ? 'Deleting…' : 'Delete conversation'}
          </button>
        </>
      }
    >
      <p>
        This removes the conversation and its {n === 1 ? '1 message' : `${n} messages`} from the workspace
        {conversation.answering ? ', and stops the answer being generated' : ''}. It cannot be undone. The model is not affected.
      </p>
      {error !== null && <ErrorNote error={error} />}
    </Dialog>
  );
}
