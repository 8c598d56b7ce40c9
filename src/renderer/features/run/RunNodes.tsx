import { useMemo } from 'react';
import type { RunNode } from '../../../shared/records';
import { compact, fullDateTime, int } from '../../format';
import type { Run } from '../../run-info';
import { useTicker } from '../../useTicker';
import { ago, rankRanges } from './run-nodes';
import './run-nodes.css';

const STATUS: Record<RunNode['status'], { label: string; pill: string }> = {
  running: { label: 'running', pill: 'status-running' },
  lost: { label: 'lost', pill: 'status-failed' },
  left: { label: 'left', pill: 'status-stopped' },
};

function statusTitle(n: RunNode): string {
  const at = fullDateTime(n.lastHeartbeat);
  if (n.status === 'lost') return `Lost at ${at}: node 0 has heard nothing from it since that heartbeat`;
  if (n.status === 'left') return `Left at ${at}`;
  return `Heartbeating since ${fullDateTime(n.joinedAt)}`;
}

/**
 * The hosts of a multi-node data-parallel run, as node 0's service records them (kept live by the run-nodes event):
 * one row per node, a lost one highlighted. Nothing for a run on one node.
 */
export function RunNodes({ run }: { run: Run }) {
  const running = run.status === 'running';
  // the heartbeats' ages count up between two run-nodes events
  const now = useTicker(running);
  // by node rank, as the store keeps them (an event carries the list as its sender built it)
  const nodes = useMemo(() => [...run.nodes].sort((a, b) => a.node - b.node), [run.nodes]);
  if (!nodes.length) return null;
  const ranks = nodes.reduce((a, n) => a + n.ranks.length, 0);
  const lost = nodes.filter((n) => n.status === 'lost').length;
  return (
    <section className="card card-tight run-nodes" aria-labelledby="nodes-title" data-testid="run-nodes">
      <header className="card-header">
        <h2 id="nodes-title">Nodes</h2>
        <p className="muted small run-nodes-summary">
          {nodes.length} node{nodes.length === 1 ? '' : 's'} · {ranks} rank{ranks === 1 ? '' : 's'}
          {lost > 0 && <span className="run-nodes-lost-count"> · {lost} lost</span>}
        </p>
      </header>
      <div className="table-wrap">
        <table className="table table-dense run-nodes-table" aria-labelledby="nodes-title">
          <thead>
            <tr>
              <th scope="col" className="run-node-id">
                Node
              </th>
              <th scope="col">Host</th>
              <th scope="col">Ranks</th>
              <th scope="col">Status</th>
              <th scope="col" className="num">
                Step
              </th>
              <th scope="col" className="num">
                tok/s
              </th>
              <th scope="col" className="num">
                Last heartbeat
              </th>
            </tr>
          </thead>
          <tbody>
            {nodes.map((n) => {
              const s = STATUS[n.status] ?? { label: n.status, pill: 'status-stopped' };
              return (
                <tr
                  key={n.node}
                  className={n.status === 'lost' ? 'run-node-lost' : undefined}
                  data-node={n.node}
                  data-status={n.status}
                >
                  <td className="run-node-id" title={n.node === 0 ? 'node 0 owns the run: this workspace' : undefined}>
                    {n.node}
                  </td>
                  <td className="run-node-host">
                    <code>{n.host}</code>
                  </td>
                  <td
                    className="run-node-ranks"
                    title={n.ranks.length ? `global ranks ${n.ranks.join(', ')}` : undefined}
                  >
                    {rankRanges(n.ranks)}
                  </td>
                  <td>
                    <span className={`pill ${s.pill}`} title={statusTitle(n)} data-testid="node-status">
                      {s.label}
                    </span>
                  </td>
                  <td className="num">{int(n.step)}</td>
                  <td className="num" title={n.tokPerSec !== null ? `${int(n.tokPerSec)} tokens/s` : undefined}>
                    {compact(n.tokPerSec)}
                  </td>
                  <td className="num" title={fullDateTime(n.lastHeartbeat)}>
                    {ago(n.lastHeartbeat, now)}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </section>
  );
}
