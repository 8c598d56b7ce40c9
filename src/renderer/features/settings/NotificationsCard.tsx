/**
 * Run-end notifications: on or off (kept in this browser), and what the browser allows. A browser asks its own
 * permission the first time they are turned on; the desktop app needs none.
 */
import { useClient } from '../../useInvoke';
import { useRunNotifySetting } from '../../useRunNotifications';

export function NotificationsCard() {
  const client = useClient();
  const { enabled, setEnabled, permission } = useRunNotifySetting();
  const desktop = client.transport === 'ipc';
  return (
    <section className="card" aria-labelledby="notify-title">
      <header className="card-header">
        <h2 id="notify-title">Notifications</h2>
      </header>
      <p className="muted small">
        When a run is done, fails or is stopped, say so with a system notification and a note in the corner of the app.
        Clicking either opens the run.
        {desktop ? '' : ' The browser asks for its permission the first time this is turned on.'}
      </p>
      <label className="check">
        <input
          type="checkbox"
          role="switch"
          data-testid="notify-toggle"
          checked={enabled}
          onChange={(e) => void setEnabled(e.target.checked)}
        />
        Notify me when a run ends
      </label>
      {enabled && !desktop && (
        <p className={permission === 'denied' ? 'field-error' : 'field-hint'} role="status" data-testid="notify-state">
          {permission === 'granted'
            ? 'This browser shows the notifications.'
            : permission === 'denied'
              ? 'This browser blocks notifications from this page: allow them in the site settings (the icon left of the address). The notes in the app still show.'
              : permission === 'unsupported'
                ? 'This browser has no notifications: the notes in the app still show.'
                : 'Waiting for the browser’s permission…'}
        </p>
      )}
    </section>
  );
}
