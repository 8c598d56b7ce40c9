// Entry of a calibration child process in the built app (out/main/calibrate-worker.mjs): the same process as
// calibrate-entry.mjs, bundled, so that neither tsx nor the TypeScript sources are needed at run time.
import { startCalibrateProcess } from './calibrate-worker';

await startCalibrateProcess();
