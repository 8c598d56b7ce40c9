/**
 * Test support for test/store-crash.test.ts (not used by the studio). Run as
 *   node bin/run-ts.mjs src/node/store/test-support/record-steps.ts HOME RUN_ID STEPS
 * it records steps 1..STEPS of RUN_ID with recordStep and, after each commit, prints `ack N` (stdout to a pipe
 * is synchronous on Linux and macOS, so a printed ack means the commit returned first). The test kills it with
 * SIGKILL part-way through.
 */
import { openStore } from '../../src/node/store';
import { TOKENS_PER_STEP, crashMetricsFor } from './step-metrics';

const [home, runId, stepsArg] = process.argv.slice(2);
const steps = Number(stepsArg);
if (!home || !runId || !Number.isInteger(steps)) {
  process.stderr.write('usage: record-steps.ts HOME RUN_ID STEPS\n');
  process.exit(2);
}
const store = openStore(home);
for (let step = 1; step <= steps; step++) {
  store.recordStep(runId, {
    step,
    metrics: crashMetricsFor(step),
    wallTime: Date.now(),
    tokensSeen: step * TOKENS_PER_STEP,
  });
  process.stdout.write(`ack ${step}\n`);
}
store.close();
