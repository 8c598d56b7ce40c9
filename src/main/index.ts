/**
 * Electron main: one secure window, the workspace resolved once, and the Studio service reached over IPC.
 *
 * Security (Electron's checklist): context isolation, sandbox, no Node in the renderer, web security on, a strict
 * CSP (header and meta tag), no navigation away from the app, no new windows, no webviews, no permissions but
 * clipboard writes and notifications, and IPC answered only for the app's own top-level frame.
 */
import { app, BrowserWindow, dialog, ipcMain, session } from 'electron';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { IPC_EVENT_CHANNEL, RENDERER_CSP } from '../shared/contract';
import { StudioError } from '../shared/errors';
import { Studio } from '../node/studio';
import { resolveHome } from '../node/workspace';
import { makeRendererUrlCheck, registerStudioIpc } from './ipc';
import { isNavigationAllowed, isOwnOrigin, isPermissionAllowed } from './security';
import { utilityWorkerSpawner } from './worker';

const here = fileURLToPath(new URL('.', import.meta.url));
const rendererFile = join(here, '../renderer/index.html');
// Sandboxed preloads cannot be ES modules: electron.vite.config.ts builds it as CommonJS.
const preloadFile = join(here, '../preload/index.cjs');
const devServerUrl = app.isPackaged ? undefined : process.env.ELECTRON_RENDERER_URL;

app.enableSandbox();

if (!app.requestSingleInstanceLock()) {
  // Another instance owns the workspace: it is focused instead (see 'second-instance' below).
  app.quit();
} else {
  void main();
}

async function main(): Promise<void> {
  let home: string;
  try {
    home = resolveHome({ env: process.env, electronUserData: app.getPath('userData') });
  } catch (e) {
    await app.whenReady();
    const err = e instanceof StudioError ? e : undefined;
    dialog.showErrorBox('GPT-2 Studio cannot open its workspace', err ? `${err.message}\n\n${err.hint}` : String(e));
    app.exit(1);
    return;
  }
  // The training worker and the tokenizer threads start from their bundles beside this file (electron.vite.config.ts).
  const studio = new Studio({
    home,
    workers: {
      train: utilityWorkerSpawner(join(here, 'train-worker.js')),
      tokenize: join(here, 'tokenize-worker.mjs'),
      model: join(here, 'model-worker.mjs'),
      calibrate: join(here, 'calibrate-worker.mjs'),
    },
  });

  // Windows shows a notification only for an app with an id; it is the installer's (electron-builder.yml).
  if (process.platform === 'win32') app.setAppUserModelId('org.gpt2studio.app');

  app.on('web-contents-created', (_event, contents) => {
    contents.on('will-navigate', (event, url) => {
      if (!isNavigationAllowed(contents.getURL(), url)) event.preventDefault();
    });
    contents.on('will-redirect', (event, url) => {
      if (!isNavigationAllowed(contents.getURL(), url)) event.preventDefault();
    });
    contents.on('will-attach-webview', (event) => event.preventDefault());
    contents.setWindowOpenHandler(() => ({ action: 'deny' }));
  });

  await app.whenReady();

  const ses = session.defaultSession;
  ses.setPermissionRequestHandler((_wc, permission, callback) => callback(isPermissionAllowed(permission)));
  ses.setPermissionCheckHandler((_wc, permission) => isPermissionAllowed(permission));
  ses.webRequest.onHeadersReceived((details, callback) => {
    if (!isOwnOrigin(details.url, devServerUrl)) return callback({});
    const headers = { ...details.responseHeaders };
    for (const key of Object.keys(headers)) if (key.toLowerCase() === 'content-security-policy') delete headers[key];
    headers['Content-Security-Policy'] = [RENDERER_CSP];
    callback({ responseHeaders: headers });
  });

  const disposeIpc = registerStudioIpc({
    ipcMain,
    studio,
    isTrustedUrl: makeRendererUrlCheck({ rendererFileUrl: pathToFileURL(rendererFile).href, devServerUrl }),
    broadcast: (name, payload) => {
      for (const win of BrowserWindow.getAllWindows()) {
        if (!win.isDestroyed()) win.webContents.send(IPC_EVENT_CHANNEL, name, payload);
      }
    },
  });

  createWindow();

  app.on('second-instance', () => {
    const win = BrowserWindow.getAllWindows()[0];
    if (win) {
      if (win.isMinimized()) win.restore();
      win.focus();
    }
  });
  app.on('activate', () => {
    if (BrowserWindow.getAllWindows().length === 0) createWindow();
  });
  app.on('window-all-closed', () => {
    if (process.platform !== 'darwin') app.quit();
  });
  // A clean shutdown: running runs checkpoint and stop before the app goes, so none is left marked `running`.
  let quitting = false;
  app.on('before-quit', (e) => {
    if (quitting) return;
    e.preventDefault();
    quitting = true;
    void studio.shutdown(60_000).finally(() => {
      disposeIpc();
      app.quit();
    });
  });
}

function createWindow(): BrowserWindow {
  const win = new BrowserWindow({
    width: 1280,
    height: 820,
    minWidth: 880,
    minHeight: 560,
    show: false,
    title: 'GPT-2 Studio',
    autoHideMenuBar: true,
    webPreferences: {
      preload: preloadFile,
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      webviewTag: false,
      spellcheck: false,
    },
  });
  win.once('ready-to-show', () => win.show());
  if (devServerUrl) void win.loadURL(devServerUrl);
  else void win.loadFile(rendererFile);
  return win;
}
