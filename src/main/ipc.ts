/**
 * The IPC transport, kept free of an `electron` import so that it can be tested with fakes: registers
 * `studio:invoke` onto the Studio service and relays its push events. src/main/index.ts passes the real ipcMain.
 */
import { IPC_INVOKE_CHANNEL, type EventName, type InvokeResult, type StudioEvents } from '../shared/contract';
import { ErrorCode } from '../shared/errors';
import type { Studio } from '../node/studio';

/** The part of Electron's IpcMainInvokeEvent this module reads. */
export interface InvokeEventLike {
  senderFrame: { url: string; parent?: unknown } | null;
}

/** The part of Electron's ipcMain this module uses. */
export interface IpcMainLike {
  handle(channel: string, listener: (event: InvokeEventLike, ...args: unknown[]) => unknown): void;
  removeHandler(channel: string): void;
}

export interface StudioIpcOptions {
  ipcMain: IpcMainLike;
  studio: Studio;
  /** whether a frame at this URL is the studio's own renderer (see makeRendererUrlCheck) */
  isTrustedUrl: (url: string) => boolean;
  /** sends one push event to the renderer(s): webContents.send('studio:event', name, payload) */
  broadcast: <K extends EventName>(name: K, payload: StudioEvents[K]) => void;
}

/**
 * Registers the invoke handler and the event relay; returns the function that undoes both.
 * A request from any frame but the app's own top-level renderer is refused before it is parsed.
 */
export function registerStudioIpc(opts: StudioIpcOptions): () => void {
  const { ipcMain, studio, isTrustedUrl, broadcast } = opts;
  ipcMain.handle(IPC_INVOKE_CHANNEL, async (event, name, arg): Promise<InvokeResult> => {
    const frame = event.senderFrame;
    const url = frame?.url;
    if (!frame || !url || frame.parent || !isTrustedUrl(url)) {
      return {
        ok: false,
        error: {
          code: ErrorCode.BAD_ARGUMENT,
          message: `Refused a request from an untrusted frame (${url ? JSON.stringify(url.slice(0, 200)) : 'no URL'}).`,
          hint: "Only the studio's own window may call the Studio service.",
        },
      };
    }
    const reply = await studio.request(name, arg);
    return reply.ok ? { ok: true, value: reply.value } : { ok: false, error: reply.error };
  });
  const unsubscribe = studio.onAny((name, payload) => broadcast(name, payload));
  return () => {
    ipcMain.removeHandler(IPC_INVOKE_CHANNEL);
    unsubscribe();
  };
}

/**
 * A check for the renderer's own URL: the built index.html as a file:// URL (any query or hash), or, in
 * development, any page of the dev server's origin. Everything else is untrusted.
 */
export function makeRendererUrlCheck(opts: {
  rendererFileUrl: string;
  devServerUrl?: string;
}): (url: string) => boolean {
  const file = new URL(opts.rendererFileUrl);
  const devOrigin = opts.devServerUrl ? new URL(opts.devServerUrl).origin : undefined;
  return (raw: string) => {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      return false;
    }
    if (url.protocol === 'file:')
      return file.protocol === 'file:' && url.host === file.host && url.pathname === file.pathname;
    return (
      devOrigin !== undefined && (url.protocol === 'http:' || url.protocol === 'https:') && url.origin === devOrigin
    );
  };
}
