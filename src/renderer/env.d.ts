// A script (no top-level import), so these declarations are global.

interface Window {
  /** set by the Electron preload; absent in a browser (serve mode) */
  readonly studio?: import('../shared/contract').StudioBridge;
}

declare module '*.css';
