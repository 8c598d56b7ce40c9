import { useEffect, useRef } from 'react';
import type { EventName, StudioEvents } from '../shared/contract';
import { useClient } from './useInvoke';

/** Subscribes to a push event while the component is mounted; the latest callback is always the one called. */
export function useStudioEvent<K extends EventName>(name: K, cb: (payload: StudioEvents[K]) => void): void {
  const client = useClient();
  const ref = useRef(cb);
  useEffect(() => {
    ref.current = cb;
  });
  useEffect(() => client.on(name, (p) => ref.current(p)), [client, name]);
}
