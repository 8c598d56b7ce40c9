import { useId, useState } from 'react';
import type { HandlerResult } from '../../../shared/contract';
import { FormDialog } from '../../components/FormDialog';
import { useClient } from '../../useInvoke';

export type Conversation = HandlerResult<'chats-create'>;

export function RenameChatDialog({
  conversation,
  onClose,
  onSaved,
}: {
  conversation: Conversation;
  onClose: () => void;
  onSaved: (c: Conversation) => void;
}) {
  const client = useClient();
  const [title, setTitle] = useState(conversation.named ? conversation.title : '');
  const titleId = useId();
  return (
    <FormDialog
      title="Rename conversation"
      onClose={onClose}
      testId="rename-chat-dialog"
      submitLabel="Save"
      busyLabel="Saving…"
      canSubmit={title.trim() !== ''}
      onSubmit={async () => onSaved(await client.invoke('chats-update', { id: conversation.id, title: title.trim() }))}
      fields={
        <div className="field">
          <label htmlFor={titleId}>Title</label>
          <input
            id={titleId}
            value={title}
            maxLength={200}
            autoFocus
            placeholder={conversation.title}
            onChange={(e) => setTitle(e.target.value)}
          />
        </div>
      }
    />
  );
}

export function DeleteChatDialog({
  conversation,
  onClose,
  onDeleted,
}: {
  conversation: Conversation;
  onClose: () => void;
  onDeleted: (id: string) => void;
}) {
  const client = useClient();
  const n = conversation.messageCount;
  return (
    <FormDialog
      title={`Delete “${conversation.title}”?`}
      onClose={onClose}
      tone="danger"
      testId="delete-chat-dialog"
      submitLabel="Delete conversation"
      busyLabel="Deleting…"
      onSubmit={async () => {
        await client.invoke('chats-delete', { id: conversation.id });
        onDeleted(conversation.id);
      }}
    >
      <p>
        This removes the conversation and its {n === 1 ? '1 message' : `${n} messages`} from the workspace
        {conversation.answering ? ', and stops the answer being generated' : ''}. It cannot be undone. The model is not
        affected.
      </p>
    </FormDialog>
  );
}
