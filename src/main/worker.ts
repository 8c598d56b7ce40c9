/**
 * Training workers under Electron: utilityProcess.fork over the same entry file and message protocol as
 * child_process.fork under Node (see src/node/train/launcher.ts and worker-main.ts, which reads parentPort).
 */
import { utilityProcess } from 'electron';
import type { WorkerSpawner } from '../node/train/launcher';
import type { WorkerMessage } from '../node/train/protocol';

export function utilityWorkerSpawner(entry: string): WorkerSpawner {
  return () => {
    const child = utilityProcess.fork(entry, [], { stdio: 'inherit', serviceName: 'GPT-2 Studio training worker' });
    return {
      get pid() {
        return child.pid;
      },
      send: (m) => child.postMessage(m),
      onMessage: (cb) => child.on('message', (m: WorkerMessage) => cb(m)),
      onExit: (cb) => child.on('exit', (code) => cb(code, null)),
      kill: () => {
        child.kill();
      },
    };
  };
}
