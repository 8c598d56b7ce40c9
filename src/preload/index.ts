/**
 * The preload: one closed, typed API on `window.studio`. It relays requests and events and does nothing else
 * (no file work, and ipcRenderer itself is never exposed).
 */
import { contextBridge, ipcRenderer, type IpcRendererEvent } from 'electron';
import { IPC_EVENT_CHANNEL, IPC_INVOKE_CHANNEL, type StudioBridge } from '../shared/contract';

const api = {
  invoke: (name, ...args) => ipcRenderer.invoke(IPC_INVOKE_CHANNEL, name, ...args),
  on: (name, cb) => {
    const listener = (_event: IpcRendererEvent, eventName: unknown, payload: unknown) => {
      if (eventName === name) cb(payload as Parameters<typeof cb>[0]);
    };
    ipcRenderer.on(IPC_EVENT_CHANNEL, listener);
    return () => {
      ipcRenderer.removeListener(IPC_EVENT_CHANNEL, listener);
    };
  },
} satisfies StudioBridge;

contextBridge.exposeInMainWorld('studio', api);
