import type { EventListener, EventName, StudioEvents } from '../../shared/contract';

/** A listener of every event, as the transports use it to relay events. */
export type AnyEventListener = <K extends EventName>(name: K, payload: StudioEvents[K]) => void;

/**
 * A small typed emitter for the Studio's push events. Every subscription returns its unsubscribe function.
 * A listener that throws does not stop the others; the first error is rethrown once all have run.
 */
export class StudioEmitter {
  private readonly byName = new Map<EventName, Set<(payload: never) => void>>();
  private readonly any = new Set<AnyEventListener>();

  on<K extends EventName>(name: K, cb: EventListener<K>): () => void {
    let set = this.byName.get(name);
    if (!set) this.byName.set(name, (set = new Set()));
    const entry = cb as (payload: never) => void;
    set.add(entry);
    return () => {
      set.delete(entry);
    };
  }

  onAny(cb: AnyEventListener): () => void {
    this.any.add(cb);
    return () => {
      this.any.delete(cb);
    };
  }

  emit<K extends EventName>(name: K, payload: StudioEvents[K]): void {
    const errors: unknown[] = [];
    for (const cb of [...(this.byName.get(name) ?? [])]) {
      try {
        (cb as EventListener<K>)(payload);
      } catch (e) {
        errors.push(e);
      }
    }
    for (const cb of [...this.any]) {
      try {
        cb(name, payload);
      } catch (e) {
        errors.push(e);
      }
    }
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, `${errors.length} listeners of "${name}" failed`);
  }

  listenerCount(): number {
    let n = this.any.size;
    for (const set of this.byName.values()) n += set.size;
    return n;
  }

  clear(): void {
    this.byName.clear();
    this.any.clear();
  }
}
