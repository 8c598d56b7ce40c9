/**
 * The preparations the Datasets page shows: running ones (datasets-jobs, kept live by dataset-progress,
 * download-progress and dataset-status), paused ones (cancelled by Pause; kept in localStorage with their request,
 * so that a reload can still resume them), and failed ones until dismissed. Keyed by dataset id: the service runs
 * at most one preparation of a dataset at a time.
 */
import { useCallback, useEffect, useRef, useState } from 'react';
import type { StudioEvents } from '../../../shared/contract';
import type { PlainError } from '../../../shared/errors';
import { useStudioEvent } from '../../useEvent';
import { useClient } from '../../useInvoke';
import { withoutToken, type PrepareRequest } from './request';

export type JobState = 'starting' | 'running' | 'pausing' | 'cancelling' | 'paused' | 'failed';

export interface JobView {
  datasetId: string;
  source: string;
  /** the running job; null once it stopped */
  jobId: string | null;
  /** what resumes it (never the token) */
  request: PrepareRequest;
  state: JobState;
  stage: StudioEvents['dataset-progress']['stage'];
  /** ISO time */
  started: string;
  progress?: StudioEvents['dataset-progress'];
  download?: StudioEvents['download-progress'];
  /** why it failed */
  error?: PlainError;
  /** the last action's failure (pause, resume, cancel) */
  actionError?: unknown;
}

const STORE_KEY = 'gpt2-studio.datasets.paused';

function loadPaused(): Record<string, JobView> {
  try {
    const raw = window.localStorage.getItem(STORE_KEY);
    if (!raw) return {};
    const list = JSON.parse(raw) as unknown;
    if (!Array.isArray(list)) return {};
    const out: Record<string, JobView> = {};
    for (const v of list as JobView[]) {
      if (v && typeof v.datasetId === 'string' && v.request && typeof v.request.source === 'string') {
        out[v.datasetId] = { ...v, jobId: null, state: 'paused', request: withoutToken(v.request) };
      }
    }
    return out;
  } catch {
    return {};
  }
}

function savePaused(views: Record<string, JobView>): void {
  try {
    const paused = Object.values(views)
      .filter((v) => v.state === 'paused')
      .map((v) => ({
        datasetId: v.datasetId,
        source: v.source,
        request: withoutToken(v.request),
        stage: v.stage,
        started: v.started,
        progress: v.progress,
        download: v.download,
      }));
    if (paused.length === 0) window.localStorage.removeItem(STORE_KEY);
    else window.localStorage.setItem(STORE_KEY, JSON.stringify(paused));
  } catch {
    // not kept across reloads
  }
}

export interface DatasetJobs {
  views: JobView[];
  loaded: boolean;
  loadError: unknown;
  /** starts a preparation; `datasetId` is the id the service will give it (datasetIdOf) */
  start: (req: PrepareRequest, datasetId: string) => Promise<void>;
  pause: (datasetId: string) => Promise<void>;
  resume: (datasetId: string, request?: PrepareRequest) => Promise<void>;
  /** stops it (when running) and deletes what it wrote */
  discard: (datasetId: string) => Promise<void>;
  /** forgets a failed or paused entry (its files stay: the list shows a partial dataset) */
  dismiss: (datasetId: string) => void;
  reload: () => void;
}

/** `onChanged` is called when the datasets on disk may have changed (a job ended, was cancelled or removed). */
export function useDatasetJobs(onChanged: (done?: { datasetId: string }) => void): DatasetJobs {
  const client = useClient();
  const [views, setViewsState] = useState<Record<string, JobView>>(() => loadPaused());
  const [loaded, setLoaded] = useState(false);
  const [loadError, setLoadError] = useState<unknown>(null);
  const viewsRef = useRef(views);
  /** jobs whose end was seen before their start was answered */
  const ended = useRef(new Set<string>());
  const changed = useRef(onChanged);
  changed.current = onChanged;

  const setViews = useCallback((fn: (v: Record<string, JobView>) => Record<string, JobView>) => {
    setViewsState((prev) => {
      const next = fn(prev);
      viewsRef.current = next;
      savePaused(next);
      return next;
    });
  }, []);

  const patch = useCallback(
    (datasetId: string, fn: (v: JobView) => JobView | null) =>
      setViews((all) => {
        const cur = all[datasetId];
        if (!cur) return all;
        const next = fn(cur);
        const out = { ...all };
        if (next) out[datasetId] = next;
        else delete out[datasetId];
        return out;
      }),
    [setViews],
  );

  const reload = useCallback(async () => {
    try {
      const jobs = await client.invoke('datasets-jobs');
      setViews((all) => {
        const out = { ...all };
        for (const j of jobs) {
          const cur = out[j.datasetId];
          if (cur?.jobId === j.jobId) continue;
          out[j.datasetId] = {
            datasetId: j.datasetId,
            source: j.source,
            jobId: j.jobId,
            request: withoutToken(j.request ?? { source: j.source }),
            state: 'running',
            stage: j.stage,
            started: j.started,
            progress: cur?.progress,
            download: cur?.download,
          };
        }
        // a job shown as running that the service no longer has ended while we were not listening
        for (const [id, v] of Object.entries(out)) {
          if ((v.state === 'running' || v.state === 'starting') && v.jobId && !jobs.some((j) => j.jobId === v.jobId))
            delete out[id];
        }
        return out;
      });
      setLoaded(true);
      setLoadError(null);
    } catch (e) {
      setLoadError(e);
      setLoaded(true);
    }
  }, [client, setViews]);

  useEffect(() => {
    void reload();
  }, [reload]);

  const findByJob = (jobId: string): JobView | undefined =>
    Object.values(viewsRef.current).find((v) => v.jobId === jobId);

  useStudioEvent('dataset-status', (p) => {
    const v = viewsRef.current[p.datasetId];
    if (p.status === 'running') {
      // our own start, before its answer: the job id is known from here on
      if (v?.state === 'starting' && !v.jobId) patch(p.datasetId, (cur) => ({ ...cur, jobId: p.jobId }));
      else if (!v || v.jobId !== p.jobId) void reload();
      return;
    }
    ended.current.add(p.jobId);
    if (p.status === 'done') {
      if (v && (v.jobId === p.jobId || v.state === 'starting')) patch(p.datasetId, () => null);
      changed.current({ datasetId: p.datasetId });
      return;
    }
    if (!v || (v.jobId !== p.jobId && v.state !== 'starting')) {
      changed.current();
      return;
    }
    if (p.status === 'failed') {
      patch(p.datasetId, (cur) => ({ ...cur, jobId: null, state: 'failed', error: p.error }));
    } else if (v.state === 'running' || v.state === 'starting') {
      // cancelled elsewhere (another window, the CLI): it can be resumed like a pause
      patch(p.datasetId, (cur) => ({ ...cur, jobId: null, state: 'paused' }));
    }
    changed.current();
  });

  useStudioEvent('dataset-progress', (p) => {
    const v = viewsRef.current[p.datasetId];
    const ours = v && (v.jobId === p.jobId || (v.state === 'starting' && !v.jobId));
    if (!ours) {
      if (!v || v.state === 'running') void reload();
      return;
    }
    patch(p.datasetId, (cur) => ({ ...cur, jobId: cur.jobId ?? p.jobId, stage: p.stage, progress: p }));
  });

  useStudioEvent('download-progress', (p) => {
    const v = findByJob(p.id);
    if (v) patch(v.datasetId, (cur) => ({ ...cur, download: p }));
  });

  const launch = useCallback(
    async (req: PrepareRequest, datasetId: string, keep?: JobView) => {
      const request = withoutToken(req);
      setViews((all) => ({
        ...all,
        [datasetId]: {
          datasetId,
          source: req.source,
          jobId: null,
          request,
          state: 'starting',
          stage: keep?.stage ?? 'listing',
          started: new Date().toISOString(),
          progress: keep?.progress,
          download: keep?.download,
        },
      }));
      try {
        const started = await client.invoke('datasets-prepare', req);
        if (ended.current.has(started.jobId)) {
          // it ended before the answer came (an existing dataset, or a quick failure already shown)
          setViews((all) =>
            all[started.datasetId]?.state === 'starting'
              ? Object.fromEntries(Object.entries(all).filter(([k]) => k !== started.datasetId))
              : all,
          );
          return;
        }
        setViews((all) => {
          const out = { ...all };
          const cur = out[datasetId] ?? out[started.datasetId];
          delete out[datasetId];
          out[started.datasetId] = {
            ...(cur ?? {
              request,
              source: req.source,
              stage: 'listing',
              started: new Date().toISOString(),
              datasetId: started.datasetId,
            }),
            datasetId: started.datasetId,
            jobId: started.jobId,
            state: cur?.state === 'failed' ? 'failed' : 'running',
          } as JobView;
          return out;
        });
      } catch (e) {
        if (keep) setViews((all) => ({ ...all, [datasetId]: { ...keep, actionError: e } }));
        else setViews((all) => Object.fromEntries(Object.entries(all).filter(([k]) => k !== datasetId)));
        throw e;
      }
    },
    [client, setViews],
  );

  const start = useCallback((req: PrepareRequest, datasetId: string) => launch(req, datasetId), [launch]);

  const resume = useCallback(
    async (datasetId: string, request?: PrepareRequest) => {
      const v = viewsRef.current[datasetId];
      const req = request ?? v?.request;
      if (!req) return;
      await launch(req, datasetId, v ? { ...v, actionError: undefined } : undefined).catch(() => undefined);
    },
    [launch],
  );

  const pause = useCallback(
    async (datasetId: string) => {
      const v = viewsRef.current[datasetId];
      if (!v?.jobId) return;
      patch(datasetId, (cur) => ({ ...cur, state: 'pausing', actionError: undefined }));
      try {
        await client.invoke('datasets-cancel', { jobId: v.jobId });
        patch(datasetId, (cur) => (cur.state === 'failed' ? cur : { ...cur, jobId: null, state: 'paused' }));
      } catch (e) {
        patch(datasetId, (cur) => ({ ...cur, state: 'running', actionError: e }));
      }
      changed.current();
    },
    [client, patch],
  );

  const discard = useCallback(
    async (datasetId: string) => {
      const v = viewsRef.current[datasetId];
      patch(datasetId, (cur) => ({ ...cur, state: 'cancelling', actionError: undefined }));
      try {
        if (v?.jobId) await client.invoke('datasets-cancel', { jobId: v.jobId });
        await client.invoke('datasets-remove', { id: datasetId });
        patch(datasetId, () => null);
      } catch (e) {
        patch(datasetId, (cur) => ({ ...cur, state: v?.state ?? 'paused', actionError: e }));
      }
      changed.current();
    },
    [client, patch],
  );

  const dismiss = useCallback((datasetId: string) => patch(datasetId, () => null), [patch]);

  return {
    views: Object.values(views).sort((a, b) => (a.started < b.started ? 1 : -1)),
    loaded,
    loadError,
    start,
    pause,
    resume,
    discard,
    dismiss,
    reload: () => void reload(),
  };
}
