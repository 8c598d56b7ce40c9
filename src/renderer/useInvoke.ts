import { createContext, useCallback, useContext, useEffect, useRef, useState, type DependencyList } from 'react';
import type { HandlerArgs, HandlerName, HandlerResult } from '../shared/contract';
import type { RendererClient } from './client';

export const ClientContext = createContext<RendererClient | null>(null);

export function useClient(): RendererClient {
  const client = useContext(ClientContext);
  if (!client) throw new Error('useClient() outside <ClientContext.Provider>');
  return client;
}

export type InvokeState<T> =
  | { status: 'loading'; data?: undefined; error?: undefined }
  | { status: 'ok'; data: T; error?: undefined }
  | { status: 'error'; data?: undefined; error: unknown };

/** Data loaded from the service, and what a page does with it. */
export interface DataRequest<T> {
  state: InvokeState<T>;
  /** Loads again, showing 'loading' meanwhile. */
  reload: () => void;
  /** Loads again, keeping what is shown until the answer (or its error) comes; settles when it has. */
  refresh: () => Promise<void>;
  /** Changes the loaded data where it is (after an event or an edit); nothing happens before it has loaded. */
  setData: (update: (data: T) => T) => void;
}

/**
 * The one way the renderer loads data: `load` runs when the component mounts and again whenever `deps` change
 * (showing 'loading' meanwhile), and on reload or refresh. The latest load wins: an earlier one that answers later
 * is dropped, and so is an answer after the component is gone; `signal` tells a load that it has been overtaken
 * (to skip a request it was waiting to make). `onData` sees each answer that is kept, as it is shown.
 */
export function useRequest<T>(
  load: (signal: AbortSignal) => Promise<T>,
  deps: DependencyList,
  onData?: (data: T) => void,
): DataRequest<T> {
  const [state, setState] = useState<InvokeState<T>>({ status: 'loading' });
  const latest = useRef({ load, onData });
  latest.current = { load, onData };
  const seq = useRef(0);
  const running = useRef<AbortController | null>(null);

  const start = useCallback((quiet: boolean): Promise<void> => {
    const mine = ++seq.current;
    running.current?.abort();
    const controller = (running.current = new AbortController());
    if (!quiet) setState({ status: 'loading' });
    return new Promise<T>((resolve) => resolve(latest.current.load(controller.signal))).then(
      (data) => {
        if (mine !== seq.current) return;
        latest.current.onData?.(data);
        setState({ status: 'ok', data });
      },
      (error: unknown) => {
        if (mine === seq.current) setState({ status: 'error', error });
      },
    );
  }, []);

  useEffect(() => {
    void start(false);
    return () => {
      seq.current++;
      running.current?.abort();
    };
  }, deps);

  const reload = useCallback(() => void start(false), [start]);
  const refresh = useCallback(() => start(true), [start]);
  const setData = useCallback(
    (update: (data: T) => T) => setState((s) => (s.status === 'ok' ? { status: 'ok', data: update(s.data) } : s)),
    [],
  );
  return { state, reload, refresh, setData };
}

/** Calls a handler when the component mounts (again when its arguments change, and on reload); the latest call wins. */
export function useInvoke<K extends HandlerName>(
  name: K,
  ...args: HandlerArgs<K>
): [InvokeState<HandlerResult<K>>, () => void] {
  const client = useClient();
  // again when the arguments change by value, not by identity
  const argKey = JSON.stringify(args);
  const { state, reload } = useRequest(() => client.invoke(name, ...args), [client, name, argKey]);
  return [state, reload];
}
