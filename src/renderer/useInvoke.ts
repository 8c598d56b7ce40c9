import { createContext, useCallback, useContext, useEffect, useRef, useState } from 'react';
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

/** Calls a handler when the component mounts (and on reload); the latest call wins. */
export function useInvoke<K extends HandlerName>(name: K, ...args: HandlerArgs<K>): [InvokeState<HandlerResult<K>>, () => void] {
  const client = useClient();
  const [state, setState] = useState<InvokeState<HandlerResult<K>>>({ status: 'loading' });
  const [generation, setGeneration] = useState(0);
  // Re-run when the arguments change by value, not by identity.
  const argKey = JSON.stringify(args);
  const argsRef = useRef(args);
  argsRef.current = args;
  useEffect(() => {
    let live = true;
    setState({ status: 'loading' });
    client.invoke(name, ...argsRef.current).then(
      (data) => live && setState({ status: 'ok', data }),
      (error: unknown) => live && setState({ status: 'error', error }),
    );
    return () => {
      live = false;
    };
  }, [client, name, argKey, generation]);
  const reload = useCallback(() => setGeneration((g) => g + 1), []);
  return [state, reload];
}
