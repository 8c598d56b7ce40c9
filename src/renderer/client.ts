/**
 * The renderer's one StudioClient: over the preload API in Electron, over HTTP + Server-Sent Events in a browser.
 */
import {
  HTTP_EVENTS_PATH,
  HTTP_INVOKE_PREFIX,
  SSE_EVENT_TYPE,
  type EventListener,
  type EventName,
  type HandlerArgs,
  type HandlerName,
  type HandlerResult,
  type InvokeResult,
  type StudioBridge,
  type StudioClient,
} from '../shared/contract';
import { ErrorCode, StudioError } from '../shared/errors';

export type Transport = 'ipc' | 'http';

export interface RendererClient extends StudioClient {
  readonly transport: Transport;
}

function unwrap<T>(reply: InvokeResult<T>): T {
  if (reply.ok) return reply.value;
  throw StudioError.fromPlain(reply.error);
}

export function createIpcClient(bridge: StudioBridge): RendererClient {
  return {
    transport: 'ipc',
    async invoke<K extends HandlerName>(name: K, ...args: HandlerArgs<K>): Promise<HandlerResult<K>> {
      return unwrap(await bridge.invoke(name, ...args));
    },
    on: (name, cb) => bridge.on(name, cb),
  };
}

/**
 * The client over HTTP + SSE. In the browser it needs no token: the server exchanged the one in the printed address
 * for an HttpOnly cookie on the first load (script never sees it), and same-origin fetch and EventSource send it.
 * `token` is for a client elsewhere (a script), which sends it as a Bearer header; EventSource cannot.
 */
export function createHttpClient(opts: { base?: string; token?: string } = {}): RendererClient {
  const base = opts.base ?? window.location.origin;
  const token = opts.token;
  const listeners = new Map<EventName, Set<(payload: never) => void>>();
  let source: EventSource | undefined;

  function openStream(): void {
    if (source) return;
    source = new EventSource(new URL(HTTP_EVENTS_PATH, base));
    source.addEventListener(SSE_EVENT_TYPE, (e) => {
      let msg: { name: EventName; payload: unknown };
      try {
        msg = JSON.parse((e as MessageEvent<string>).data) as typeof msg;
      } catch {
        return;
      }
      for (const cb of [...(listeners.get(msg.name) ?? [])]) (cb as (p: unknown) => void)(msg.payload);
    });
  }

  function closeStreamIfIdle(): void {
    for (const set of listeners.values()) if (set.size > 0) return;
    source?.close();
    source = undefined;
  }

  return {
    transport: 'http',
    async invoke<K extends HandlerName>(name: K, ...args: HandlerArgs<K>): Promise<HandlerResult<K>> {
      let res: Response;
      try {
        res = await fetch(new URL(HTTP_INVOKE_PREFIX + encodeURIComponent(name), base), {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
          credentials: 'same-origin',
          body: JSON.stringify(args.length > 0 ? { arg: (args as unknown[])[0] } : {}),
        });
      } catch (e) {
        throw new StudioError(
          ErrorCode.INTERNAL,
          `Cannot reach the studio server at ${base}: ${e instanceof Error ? e.message : String(e)}`,
          'Check that `gpt2-studio serve` is still running.',
          { cause: e },
        );
      }
      let body: InvokeResult<HandlerResult<K>>;
      try {
        body = (await res.json()) as InvokeResult<HandlerResult<K>>;
      } catch (e) {
        throw new StudioError(
          ErrorCode.INTERNAL,
          `The server answered "${name}" with HTTP ${res.status} and no JSON.`,
          'Check the server log.',
          { cause: e },
        );
      }
      return unwrap(body);
    },
    on<K extends EventName>(name: K, cb: EventListener<K>): () => void {
      let set = listeners.get(name);
      if (!set) listeners.set(name, (set = new Set()));
      const entry = cb as (payload: never) => void;
      set.add(entry);
      openStream();
      return () => {
        set.delete(entry);
        closeStreamIfIdle();
      };
    },
  };
}

/** The client for this page: IPC when the preload is there, else HTTP to the page's own origin. */
export function createClient(): RendererClient {
  if (window.studio) return createIpcClient(window.studio);
  return createHttpClient();
}
