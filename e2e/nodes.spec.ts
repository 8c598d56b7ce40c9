/**
 * The Nodes card of the Run page: the hosts of a multi-node data-parallel run, as node 0's service records them in
 * runs.nodes_json. The nodes are written straight into the workspace's studio.db (as the service would), then
 * changed live through the run-nodes event, relayed by the server's event stream.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { Page } from '@playwright/test';
import type { RunNode } from '../src/shared/records';
import { DATABASE_FILE } from '../src/node/store';
import { expect, invoke, prepareBuiltin, snap, test, watchErrors } from './fixtures';

const config = {
  model: { preset: 'nano' },
  dataset: 'builtin',
  total_batch_size: 1024,
  batch_size: 8,
  seq_len: 128,
  max_steps: 2000,
  warmup_steps: 20,
  eval_interval: 0,
  sample_interval: 0,
  checkpoint_interval: 0,
};

/** Writes columns of a run as the service would, through a second connection to the workspace's studio.db. */
function writeRun(workspace: string, id: string, columns: Record<string, string | number | null>): void {
  const db = new Database(join(workspace, DATABASE_FILE));
  try {
    db.pragma('busy_timeout = 5000');
    const names = Object.keys(columns);
    const r = db
      .prepare(`UPDATE runs SET ${names.map((n) => `${n} = @${n}`).join(', ')} WHERE id = @id`)
      .run({ ...columns, id });
    expect(r.changes).toBe(1);
  } finally {
    db.close();
  }
}

const rowOf = (page: Page, node: number) => page.getByTestId('run-nodes').locator(`tbody tr[data-node="${node}"]`);
const cellTexts = async (page: Page, node: number) =>
  (await rowOf(page, node).locator('td').allInnerTexts()).map((t) => t.trim());

test('a multi-node run shows its nodes, a lost one highlighted, kept live by run-nodes', async ({
  page,
  appUrl,
  server,
  workspace,
}) => {
  test.setTimeout(120_000);
  const failed = watchErrors(page);
  await prepareBuiltin(server);
  const run = (await invoke(server, 'runs-create', { config, name: 'gpt2 nano · 2 nodes', start: false })) as {
    id: string;
    nodes: RunNode[];
  };
  // a run on one node: no nodes, no card
  expect(run.nodes).toEqual([]);
  const now = Date.now();
  // running (this process's pid stands in for the worker's), some way into training
  writeRun(workspace, run.id, {
    status: 'running',
    pid: process.pid,
    started_at: now - 240_000,
    steps_done: 413,
    tokens_seen: 413 * 1024,
  });
  await page.setViewportSize({ width: 1440, height: 900 });
  await page.goto(appUrl + `#/run/${encodeURIComponent(run.id)}`);
  await expect(page.getByRole('heading', { level: 1, name: 'gpt2 nano · 2 nodes' })).toBeVisible();
  await expect(page.getByTestId('step-counter')).toContainText('413 of 2,000 steps');
  await expect(page.getByTestId('run-nodes')).toHaveCount(0);

  // two hosts of eight ranks each; node 1 stopped heartbeating 95 s ago and was declared lost
  const nodes: RunNode[] = [
    {
      node: 0,
      host: 'dgx-a100-01.lab.internal',
      ranks: [0, 1, 2, 3, 4, 5, 6, 7],
      status: 'running',
      joinedAt: now - 240_000,
      lastHeartbeat: now - 2_000,
      step: 412,
      tokPerSec: 48_210,
    },
    {
      node: 1,
      host: 'dgx-a100-02.lab.internal',
      ranks: [8, 9, 10, 11, 12, 13, 14, 15],
      status: 'lost',
      joinedAt: now - 238_500,
      lastHeartbeat: now - 95_000,
      step: 371,
      tokPerSec: 45_880,
    },
  ];
  writeRun(workspace, run.id, { nodes_json: JSON.stringify(nodes) });
  expect(((await invoke(server, 'runs-get', { id: run.id })) as { nodes: RunNode[] }).nodes).toEqual(nodes);
  await page.reload();

  const card = page.getByTestId('run-nodes');
  await expect(card.getByRole('heading', { name: 'Nodes' })).toBeVisible();
  await expect(card).toContainText('2 nodes · 16 ranks · 1 lost');
  const table = page.getByRole('table', { name: 'Nodes' });
  expect((await table.locator('thead th').allInnerTexts()).map((t) => t.trim().toLowerCase())).toEqual([
    'node',
    'host',
    'ranks',
    'status',
    'step',
    'tok/s',
    'last heartbeat',
  ]);
  const row0 = await cellTexts(page, 0);
  expect(row0.slice(0, 6)).toEqual(['0', 'dgx-a100-01.lab.internal', '0–7', 'running', '412', '48.2K']);
  expect(row0[6]).toMatch(/^\d+ s ago$/);
  const row1 = await cellTexts(page, 1);
  expect(row1.slice(0, 6)).toEqual(['1', 'dgx-a100-02.lab.internal', '8–15', 'lost', '371', '45.9K']);
  expect(row1[6]).toMatch(/^1 min \d+ s ago$/);

  // the lost node: its row highlighted, its status in the error colour with the time it was lost as a tooltip
  await expect(rowOf(page, 1)).toHaveClass(/run-node-lost/);
  await expect(rowOf(page, 0)).not.toHaveClass(/run-node-lost/);
  const lost = rowOf(page, 1).getByTestId('node-status');
  await expect(lost).toHaveAttribute('title', /^Lost at .+: node 0 has heard nothing from it since that heartbeat$/);
  const danger = await page.evaluate<string>(`(() => {
    const probe = document.createElement('span');
    probe.style.color = 'var(--danger)';
    document.body.append(probe);
    const c = getComputedStyle(probe).color;
    probe.remove();
    return c;
  })()`);
  await expect(lost).toHaveCSS('color', danger);

  // the heartbeats' ages count up every second while the run runs
  const age = rowOf(page, 0).locator('td').nth(6);
  const first = await age.innerText();
  await expect(age).not.toHaveText(first, { timeout: 5_000 });

  await snap(page, 'run-nodes-1440');
  // each width and theme from a fresh load, as a reader opens the page (a full-page capture right after a resize
  // can catch the page half laid out)
  await page.setViewportSize({ width: 1024, height: 800 });
  await page.reload();
  await expect(rowOf(page, 1)).toHaveClass(/run-node-lost/);
  // the table fits the card at 1024: nothing scrolls sideways
  expect(await card.locator('.table-wrap').evaluate((el) => el.scrollWidth <= el.clientWidth)).toBe(true);
  await snap(page, 'run-nodes-1024');
  await page.getByRole('button', { name: /Switch to dark theme/ }).click();
  await expect(page.locator('html')).toHaveAttribute('data-theme', 'dark');
  await page.setViewportSize({ width: 1440, height: 900 });
  await page.reload();
  await expect(page.locator('html')).toHaveAttribute('data-theme', 'dark');
  await expect(rowOf(page, 1)).toHaveClass(/run-node-lost/);
  await snap(page, 'run-nodes-dark');

  // live: node 1 comes back, as the service pushes it, without a reload
  const back: RunNode[] = [
    { ...nodes[0]!, lastHeartbeat: Date.now(), step: 415 },
    { ...nodes[1]!, status: 'running', lastHeartbeat: Date.now(), step: 415, tokPerSec: 47_990 },
  ];
  server.studio.emit('run-nodes', { runId: run.id, nodes: back });
  await expect(rowOf(page, 1).getByTestId('node-status')).toHaveText('running');
  await expect(rowOf(page, 1)).not.toHaveClass(/run-node-lost/);
  await expect(card).toContainText('2 nodes · 16 ranks');
  await expect(card).not.toContainText('lost');
  expect((await cellTexts(page, 1)).slice(4, 6)).toEqual(['415', '48K']);
  // another run's nodes are not this run's (events arrive in order: the next one of this run comes after it)
  server.studio.emit('run-nodes', { runId: 'run-other', nodes: [] });
  server.studio.emit('run-nodes', { runId: run.id, nodes: [{ ...back[0]!, step: 416 }, back[1]!] });
  await expect(rowOf(page, 0).locator('td').nth(4)).toHaveText('416');
  await expect(card.locator('tbody tr')).toHaveCount(2);

  writeRun(workspace, run.id, { status: 'stopped', pid: null, ended_at: Date.now() });
  expect(failed).toEqual([]);
});
