/**
 * Run-end notifications and the count of active runs, for the whole app (App.tsx holds it):
 * - when a run ends (done, failed, stopped), a desktop notification through the page's Notification API (the
 *   desktop app's session allows it; a browser asks once the user turns it on in Settings) and an in-app toast;
 *   clicking either opens the run;
 * - the number of active runs, for the badge on Runs and in front of the window title.
 */
import { createContext, useCallback, useContext, useEffect, useRef, useState } from 'react';
import type { StudioEvents } from '../shared/contract';
import type { RunStatus } from '../shared/records';
import { navigate } from './router';
import {
  applyRunStatus,
  countActive,
  mergeRunList,
  removeRun,
  runNotice,
  titleWithCount,
  type RunNotice,
  type RunStatuses,
} from './run-notifications';
import { useStudioEvent } from './useEvent';
import { useClient } from './useInvoke';
import { usePersistentState } from './usePersistentState';

/** How long the toast of a run that is done or stopped stays, in ms; a failure's stays until it is closed. */
const TOAST_MS = 15_000;

export type NotifyPermission = NotificationPermission | 'unsupported';

/** The user's choice about run-end notifications, and what the browser allows. */
export interface RunNotifySetting {
  enabled: boolean;
  /** turns notifications on or off; turning them on asks the browser's permission when it was not asked yet */
  setEnabled: (on: boolean) => Promise<void>;
  permission: NotifyPermission;
}

export const RunNotifyContext = createContext<RunNotifySetting>({
  enabled: false,
  setEnabled: () => Promise.resolve(),
  permission: 'unsupported',
});

/** The run-end notification setting, for the Settings page. */
export function useRunNotifySetting(): RunNotifySetting {
  return useContext(RunNotifyContext);
}

export interface RunToast extends RunNotice {
  id: number;
}

function currentPermission(): NotifyPermission {
  return typeof Notification === 'undefined' ? 'unsupported' : Notification.permission;
}

/** Opens a run's page and brings the app's window forward. */
function openRun(runId: string): void {
  window.focus();
  navigate({ page: 'run', runId });
}

/** Shows a desktop notification when the page may; a browser that refuses the constructor gets none. */
function showDesktopNotification(n: RunNotice): void {
  if (currentPermission() !== 'granted') return;
  try {
    const note = new Notification(n.title, { body: n.body, tag: `run-${n.runId}` });
    note.onclick = () => {
      openRun(n.runId);
      note.close();
    };
  } catch {
    // some browsers only allow notifications from a service worker: the toast still shows
  }
}

export function useRunNotifications(): {
  active: number;
  toasts: RunToast[];
  dismiss: (id: number) => void;
  open: (toast: RunToast) => void;
  setting: RunNotifySetting;
} {
  const client = useClient();
  // the desktop app may notify without asking; a browser page waits until the user turns it on
  const [enabled, setStored] = usePersistentState<boolean>('notify-run-end', client.transport === 'ipc');
  const [permission, setPermission] = useState<NotifyPermission>(currentPermission);
  const [statuses, setStatuses] = useState<RunStatuses>(() => new Map());
  const [toasts, setToasts] = useState<RunToast[]>([]);
  const enabledRef = useRef(enabled);
  enabledRef.current = enabled;
  const changedSince = useRef(new Set<string>());
  const lastStep = useRef(new Map<string, { step: number; loss: number }>());
  const nextToast = useRef(1);
  const timers = useRef(new Set<number>());

  const setEnabled = useCallback(
    async (on: boolean) => {
      setStored(on);
      if (on && typeof Notification !== 'undefined' && Notification.permission === 'default') {
        try {
          setPermission(await Notification.requestPermission());
        } catch {
          setPermission(currentPermission());
        }
      } else {
        setPermission(currentPermission());
      }
    },
    [setStored],
  );

  // The running runs: listed at start and whenever the window comes back (the event stream may have dropped
  // events meanwhile); events in between keep the count current.
  useEffect(() => {
    let cancelled = false;
    const load = () => {
      changedSince.current = new Set();
      client.invoke('runs-list', { status: 'running' }).then(
        (runs) => {
          if (!cancelled) setStatuses((m) => mergeRunList(m, runs, changedSince.current));
        },
        () => {
          // the count stays as the events made it; the next focus tries again
        },
      );
    };
    load();
    const onVisible = () => {
      if (document.visibilityState === 'visible') load();
    };
    document.addEventListener('visibilitychange', onVisible);
    return () => {
      cancelled = true;
      document.removeEventListener('visibilitychange', onVisible);
    };
  }, [client]);

  useEffect(() => {
    const live = timers.current;
    return () => {
      for (const t of live) window.clearTimeout(t);
      live.clear();
    };
  }, []);

  const dismiss = useCallback((id: number) => setToasts((ts) => ts.filter((t) => t.id !== id)), []);

  const announce = useCallback(
    async (runId: string, status: RunStatus, error: StudioEvents['run-status']['error']) => {
      const seen = lastStep.current.get(runId);
      let name = runId;
      let finalLoss: number | null = seen?.loss ?? null;
      let lastStepNo: number | null = seen?.step ?? null;
      try {
        const run = await client.invoke('runs-get', { id: runId });
        name = run.name;
        if (lastStepNo === null && run.stepsDone > 0) lastStepNo = run.stepsDone - 1;
        if (finalLoss === null && status === 'done' && run.stepsDone > 0) {
          const m = await client.invoke('runs-metrics', {
            id: runId,
            names: ['train/loss'],
            sinceStep: run.stepsDone - 1,
          });
          const values = m['train/loss']?.values ?? [];
          finalLoss = values.length > 0 ? (values[values.length - 1] ?? null) : null;
        }
      } catch {
        // the run's id stands in for its name (the run may have been deleted meanwhile)
      }
      const notice = runNotice({ runId, name, status, error, finalLoss, lastStep: lastStepNo });
      lastStep.current.delete(runId);
      if (!notice || !enabledRef.current) return;
      showDesktopNotification(notice);
      const id = nextToast.current++;
      setToasts((ts) => [...ts.slice(-3), { ...notice, id }]);
      if (notice.kind === 'failed') return;
      const timer = window.setTimeout(() => {
        timers.current.delete(timer);
        dismiss(id);
      }, TOAST_MS);
      timers.current.add(timer);
    },
    [client, dismiss],
  );

  useStudioEvent('run-step', (e) => {
    lastStep.current.set(e.runId, { step: e.step, loss: e.loss });
  });
  useStudioEvent('run-status', (e) => {
    changedSince.current.add(e.runId);
    setStatuses((m) => applyRunStatus(m, e.runId, e.status));
    void announce(e.runId, e.status, e.error);
  });
  useStudioEvent('run-deleted', (e) => {
    changedSince.current.add(e.runId);
    lastStep.current.delete(e.runId);
    setStatuses((m) => removeRun(m, e.runId));
  });

  const active = countActive(statuses);

  // The count in front of the window title, whatever page set the title (pages set it as they load): the
  // <title> element is watched and the count put back whenever a page writes its own.
  const activeRef = useRef(active);
  activeRef.current = active;
  useEffect(() => {
    const fix = () => {
      const want = titleWithCount(document.title, activeRef.current);
      if (want !== document.title) document.title = want;
    };
    fix();
    const el = document.querySelector('title');
    if (!el) return;
    const observer = new MutationObserver(fix);
    observer.observe(el, { childList: true, characterData: true, subtree: true });
    return () => observer.disconnect();
  }, [active]);

  const open = useCallback(
    (t: RunToast) => {
      dismiss(t.id);
      openRun(t.runId);
    },
    [dismiss],
  );

  return { active, toasts, dismiss, open, setting: { enabled, setEnabled, permission } };
}
