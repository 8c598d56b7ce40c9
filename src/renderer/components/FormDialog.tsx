import { useId, useState, type ReactNode } from 'react';
import { Dialog } from './Dialog';
import { ErrorNote } from './ErrorNote';

/** Content of a FormDialog, or a function of whether its action is running (to disable fields, show progress). */
type Slot = ReactNode | ((busy: boolean) => ReactNode);

const render = (slot: Slot, busy: boolean): ReactNode => (typeof slot === 'function' ? slot(busy) : slot);

/**
 * A dialog that does one thing: a button dismisses it, another runs `onSubmit`. While the action runs, its button
 * is disabled and says `busyLabel`; an error it throws is shown below the content and the dialog stays open, to
 * try again. The action closes the dialog itself when it is done (through the opener's onSaved, onDeleted...), or
 * leaves it open to show a result.
 *
 * With `fields`, the action is the submit of a form holding them, so that Enter in a field runs it; without, the
 * button runs it (a confirmation). The body is `intro`, the form, `children`, the error, then `after`. A danger
 * dialog puts the focus on the dismiss button.
 */
export function FormDialog({
  title,
  onClose,
  onSubmit,
  submitLabel,
  busyLabel = submitLabel,
  canSubmit = true,
  cancelLabel = 'Cancel',
  tone,
  submitClassName = tone === 'danger' ? 'button button-danger-solid' : 'button button-primary',
  testId,
  intro,
  fields,
  formClassName = 'form-grid',
  children,
  after,
  footer,
  retry = false,
}: {
  title: string;
  onClose: () => void;
  onSubmit: () => Promise<void>;
  submitLabel: string;
  /** what the action's button says while it runs */
  busyLabel?: string;
  /** false while the action cannot run (a field to fix, a blocked delete) */
  canSubmit?: boolean;
  cancelLabel?: string;
  tone?: 'danger';
  submitClassName?: string;
  testId?: string;
  intro?: Slot;
  fields?: Slot;
  /** the class of the form ('' for none) */
  formClassName?: string;
  children?: Slot;
  after?: Slot;
  /** buttons that replace the dismiss and action ones (a dialog showing what its action did) */
  footer?: ReactNode;
  /** the error offers to run the action again */
  retry?: boolean;
}) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const formId = useId();

  const run = async () => {
    if (busy || !canSubmit) return;
    setBusy(true);
    setError(null);
    try {
      await onSubmit();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  const hasForm = fields !== undefined;
  return (
    <Dialog
      title={title}
      onClose={onClose}
      tone={tone}
      testId={testId}
      footer={
        footer ?? (
          <>
            <button type="button" className="button" onClick={onClose} autoFocus={tone === 'danger' || undefined}>
              {cancelLabel}
            </button>
            <button
              type={hasForm ? 'submit' : 'button'}
              form={hasForm ? formId : undefined}
              className={submitClassName}
              onClick={hasForm ? undefined : () => void run()}
              disabled={busy || !canSubmit}
            >
              {busy ? busyLabel : submitLabel}
            </button>
          </>
        )
      }
    >
      {render(intro, busy)}
      {hasForm && (
        <form
          id={formId}
          className={formClassName || undefined}
          onSubmit={(e) => {
            e.preventDefault();
            void run();
          }}
        >
          {render(fields, busy)}
        </form>
      )}
      {render(children, busy)}
      {error !== null && <ErrorNote error={error} onRetry={retry ? () => void run() : undefined} />}
      {render(after, busy)}
    </Dialog>
  );
}
