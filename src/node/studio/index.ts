/// <reference types="node" />
// (The reference keeps this file type-checking where src/shared/contract.ts pulls its types into the web project.)
/**
 * The Studio service: the only place that does the work. Electron IPC, the HTTP server and the CLI all call these
 * methods (see src/shared/contract.ts, whose handler types are derived from them). It is constructed with the
 * workspace folder, resolved once by the caller (see resolveHome).
 */
import pkg from '../../../package.json' with { type: 'json' };
import type { EngineInfo } from '../../core/engine/types';
import type { EventListener, EventName, StudioEvents } from '../../shared/contract';
import { type AnyEventListener, StudioEmitter } from './emitter';

export interface StudioOptions {
  /** absolute path of the workspace folder (resolveHome) */
  home: string;
}

export interface AppInfo {
  /** the studio's version, from package.json */
  version: string;
  /** the workspace folder */
  home: string;
  /** Node's version, e.g. "20.19.0" */
  node: string;
  /** Electron's version when running under Electron */
  electron?: string;
  /** e.g. "linux" */
  platform: NodeJS.Platform;
  /** e.g. "x64" */
  arch: string;
}

export class Studio {
  readonly home: string;
  private readonly events = new StudioEmitter();

  constructor(opts: StudioOptions) {
    this.home = opts.home;
  }

  // ---- handlers (each is one entry of StudioHandlers) ----

  async appInfo(): Promise<AppInfo> {
    const info: AppInfo = {
      version: pkg.version,
      home: this.home,
      node: process.versions.node,
      platform: process.platform,
      arch: process.arch,
    };
    if (process.versions.electron) info.electron = process.versions.electron;
    return info;
  }

  /** Every engine, available or not, with its detail and notes (what Settings shows). */
  async enginesList(): Promise<EngineInfo[]> {
    // Loaded on first use: TF.js is large, and the window or server should not wait for it to start.
    const { describeEngines } = await import('../engines');
    return describeEngines();
  }

  // ---- push events ----

  /** Subscribes to one event; returns the unsubscribe function. */
  on<K extends EventName>(name: K, cb: EventListener<K>): () => void {
    return this.events.on(name, cb);
  }

  /** Subscribes to every event (what the transports use to relay them); returns the unsubscribe function. */
  onAny(cb: AnyEventListener): () => void {
    return this.events.onAny(cb);
  }

  /** Sends an event to every subscriber. Used by the service's own parts (runs, downloads). */
  emit<K extends EventName>(name: K, payload: StudioEvents[K]): void {
    this.events.emit(name, payload);
  }

  /** Drops every subscriber. */
  close(): void {
    this.events.clear();
  }
}
