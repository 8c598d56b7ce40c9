import { dateTime, fullDateTime } from '../../format';
import type { Run } from '../../run-info';
import { engineLabel, mixedEngines, shapeLabel, type RunAttempt } from '../../../shared/run-facts';

const gib = (b: number) => `${(b / 2 ** 30).toFixed(1)} GiB`;

function hostLine(a: RunAttempt): string {
  const h = a.host;
  const gpus = h.gpus.length
    ? `; ${h.gpus.length} GPU${h.gpus.length === 1 ? '' : 's'}: ${[...new Set(h.gpus)].join(', ')}`
    : '';
  return `${h.hostname}: ${h.cpu}, ${h.cores} cores, ${gib(h.memBytes)}${gpus}`;
}

/** What each attempt of the run actually ran on: engine, build, model shape, host and studio version. */
export function RunFacts({ run }: { run: Run }) {
  const attempts = run.attempts;
  if (!attempts.length) return null;
  const mixed = mixedEngines(attempts);
  return (
    <details className="run-facts small">
      <summary>
        What ran: {attempts.length} attempt{attempts.length === 1 ? '' : 's'}
        {mixed && <span className="run-facts-warn"> · resumed on another engine</span>}
      </summary>
      <table className="table run-facts-table">
        <thead>
          <tr>
            <th scope="col">Started</th>
            <th scope="col">From step</th>
            <th scope="col">Engine</th>
            <th scope="col">Model</th>
            <th scope="col">Host</th>
            <th scope="col">Studio</th>
          </tr>
        </thead>
        <tbody>
          {attempts.map((a, i) => (
            <tr key={`${a.startedAt}-${i}`}>
              <td title={fullDateTime(a.startedAt)}>{dateTime(a.startedAt)}</td>
              <td className="num">{a.fromStep}</td>
              <td>
                {engineLabel(a)}
                {a.worldSize > 1 ? ` × ${a.worldSize} ranks` : ''}
                <div className="muted">{a.build}</div>
              </td>
              <td>
                {shapeLabel(a.model)}
                <div className="muted">from {a.initFrom}</div>
              </td>
              <td>
                {hostLine(a)}
                <div className="muted">{a.host.os}</div>
              </td>
              <td>
                {a.studioVersion}
                {a.commit && (
                  <div className="muted">
                    <code>
                      {a.commit.slice(0, 12)}
                      {a.commit.endsWith('+changes') ? '+changes' : ''}
                    </code>
                  </div>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </details>
  );
}
