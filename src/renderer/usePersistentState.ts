import { useCallback, useState } from 'react';

const PREFIX = 'gpt2-studio.';

/** A state kept in localStorage (a view preference such as the chart smoothing), of the default's type. */
export function usePersistentState<T>(key: string, initial: T): [T, (v: T) => void] {
  const [value, setValue] = useState<T>(() => {
    try {
      const raw = window.localStorage.getItem(PREFIX + key);
      if (raw !== null) {
        const parsed: unknown = JSON.parse(raw);
        if (typeof parsed === typeof initial) return parsed as T;
      }
    } catch {
      // unreadable or disabled storage: the default
    }
    return initial;
  });
  const set = useCallback(
    (v: T) => {
      setValue(v);
      try {
        window.localStorage.setItem(PREFIX + key, JSON.stringify(v));
      } catch {
        // not persisted
      }
    },
    [key],
  );
  return [value, set];
}
