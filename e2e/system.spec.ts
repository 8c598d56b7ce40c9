/**
 * The System charts of the Run page: a run's worker samples its CPU, memory, threads and the workspace's free disk
 * every few seconds, and the page shows them live under their own heading, below the training curves.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunningServer } from '../src/node/serve/server';
import { expect, invoke, prepareBuiltin, snap, test, watchErrors } from './fixtures';

const hasCompiler = spawnSync('cc', ['--version']).status === 0;

/** Starts a nano run that trains until stopped. */
async function startRun(server: RunningServer, name: string): Promise<string> {
  const run = (await invoke(server, 'runs-create', {
    name,
    preset: 'nano',
    config: {
      model: { preset: 'nano' },
      dataset: 'builtin',
      total_batch_size: 1024,
      batch_size: 8,
      seq_len: 128,
      max_steps: 100_000,
      warmup_steps: 2,
      eval_interval: 0,
      sample_interval: 0,
      checkpoint_interval: 0,
    },
  })) as { id: string };
  return run.id;
}

/** Stops a run and waits until it has ended. */
async function stopRun(server: RunningServer, id: string): Promise<void> {
  const status = async () => ((await invoke(server, 'runs-get', { id })) as { status: string }).status;
  if ((await status()) === 'running') await invoke(server, 'runs-stop', { id }).catch(() => undefined);
  await expect.poll(status, { timeout: 60_000 }).not.toBe('running');
}

const points = async (page: import('@playwright/test').Page, id: string) =>
  Number(await page.getByTestId(id).getAttribute('data-points'));

test('a running run shows its CPU and memory under System', async ({ page, appUrl, server }) => {
  test.setTimeout(180_000);
  const failed = watchErrors(page);
  await page.setViewportSize({ width: 1440, height: 900 });
  await prepareBuiltin(server);
  const run = { id: await startRun(server, 'system metrics') };
  try {
    await page.goto(appUrl + `#/run/${encodeURIComponent(run.id)}`);
    const system = page.getByTestId('system-charts');
    await expect(system.getByRole('heading', { name: 'System' })).toBeVisible({ timeout: 60_000 });
    for (const id of ['chart-sys-cpu', 'chart-sys-memory', 'chart-sys-threads', 'chart-sys-disk'])
      await expect(system.getByTestId(id)).toBeVisible();
    await expect(system.getByTestId('chart-sys-cpu')).toContainText('CPU');
    await expect(system.getByTestId('chart-sys-memory')).toContainText('Memory');
    // sampled every 3 s, and shown as they come (the run-system event), without reloading the page
    await expect.poll(() => points(page, 'chart-sys-cpu'), { timeout: 60_000 }).toBeGreaterThanOrEqual(3);
    expect(await points(page, 'chart-sys-memory')).toBeGreaterThanOrEqual(3);
    // the training curves stay above, under their own heading
    await expect(page.getByTestId('chart-loss')).toBeVisible();
    // no GPU charts where there is no NVML
    const gpu = await invoke(server, 'runs-metrics', { id: run.id });
    if (!Object.keys(gpu as object).some((k) => k.startsWith('sys/gpu')))
      await expect(system.getByTestId('chart-sys-gpu-util')).toHaveCount(0);
    await system.scrollIntoViewIfNeeded();
    await snap(page, 'run-system');
  } finally {
    await stopRun(server, run.id);
  }
  expect(failed).toEqual([]);
});

test('GPU charts on the Run page and in Compare, read through a stand-in NVML', async ({ page, appUrl, server }) => {
  test.skip(!hasCompiler, 'no C compiler "cc" to build test/fixtures/fake-nvml.c');
  test.setTimeout(240_000);
  const failed = watchErrors(page);
  await page.setViewportSize({ width: 1440, height: 900 });
  const dir = mkdtempSync(join(tmpdir(), 'gpt2-e2e-nvml-'));
  const lib = join(dir, 'libfake-nvml.so');
  const src = fileURLToPath(new URL('../test/fixtures/fake-nvml.c', import.meta.url));
  const cc = spawnSync('cc', ['-shared', '-fPIC', '-o', lib, src], { encoding: 'utf8' });
  expect(cc.status, cc.stderr).toBe(0);
  // the server runs in this process: its training workers inherit the variable, and sample every second
  const saved = { lib: process.env.GPT2_STUDIO_NVML_LIB, ms: process.env.GPT2_STUDIO_SYSTEM_METRICS_MS };
  process.env.GPT2_STUDIO_NVML_LIB = lib;
  process.env.GPT2_STUDIO_SYSTEM_METRICS_MS = '1000';
  const ids: string[] = [];
  try {
    await prepareBuiltin(server);
    for (const name of ['gpu a', 'gpu b']) {
      const id = await startRun(server, name);
      ids.push(id);
      // a few steps, so that the charts draw lines (samples within one step keep the last)
      const gpuSteps = async () => {
        const m = (await invoke(server, 'runs-metrics', { id, names: ['sys/gpu1/util_pct'] })) as Record<
          string,
          { steps: number[] }
        >;
        return m['sys/gpu1/util_pct']?.steps.length ?? 0;
      };
      await expect.poll(gpuSteps, { timeout: 90_000 }).toBeGreaterThanOrEqual(3);
      await stopRun(server, id);
    }
    await page.goto(appUrl + `#/run/${encodeURIComponent(ids[0]!)}`);
    const system = page.getByTestId('system-charts');
    for (const id of ['util', 'memory', 'power', 'temp'])
      await expect(system.getByTestId(`chart-sys-gpu-${id}`)).toBeVisible({ timeout: 30_000 });
    // one line per GPU (memory: used and total each); the fake's second GPU has no power reading
    await expect(system.getByTestId('chart-sys-gpu-util')).toContainText('gpu0');
    await expect(system.getByTestId('chart-sys-gpu-util')).toContainText('gpu1');
    await expect(system.getByTestId('chart-sys-gpu-memory')).toContainText('gpu1 total');
    await expect(system.getByTestId('chart-sys-gpu-power')).not.toContainText('gpu1');
    await snap(page, 'run-system-gpu');

    await page.goto(appUrl + `#/compare?runs=${ids.join(',')}`);
    const compare = page.getByTestId('system-charts');
    await expect(compare.getByRole('heading', { name: 'System' })).toBeVisible({ timeout: 30_000 });
    for (const id of ['sys-cpu', 'sys-memory', 'sys-gpu0-util', 'sys-gpu1-temp', 'sys-gpu0-power'])
      await expect(compare.getByTestId(`chart-${id}`)).toBeVisible();
    await expect(compare.getByTestId('chart-sys-gpu1-power')).toHaveCount(0);
    await expect(compare.getByTestId('chart-sys-gpu0-util')).toHaveAttribute('data-line-points', /^[1-9]\d*,[1-9]\d*$/);
    // the training curves keep the page's first grid
    await expect(page.getByTestId('chart-train-loss')).toBeVisible();
    await snap(page, 'compare-system');
  } finally {
    for (const id of ids) await stopRun(server, id);
    if (saved.lib === undefined) delete process.env.GPT2_STUDIO_NVML_LIB;
    else process.env.GPT2_STUDIO_NVML_LIB = saved.lib;
    if (saved.ms === undefined) delete process.env.GPT2_STUDIO_SYSTEM_METRICS_MS;
    else process.env.GPT2_STUDIO_SYSTEM_METRICS_MS = saved.ms;
    rmSync(dir, { recursive: true, force: true });
  }
  expect(failed).toEqual([]);
});
