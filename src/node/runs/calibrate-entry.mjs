// Entry of a calibration child process from the sources: registers the TypeScript loader, then starts
// calibrate-worker.ts (the built app starts its bundle, out/main/calibrate-worker.mjs, instead).
import { register } from 'tsx/esm/api';

register();
const { startCalibrateProcess } = await import('./calibrate-worker.ts');
await startCalibrateProcess();
