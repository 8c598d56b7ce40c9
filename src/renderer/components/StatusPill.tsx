import type { RunStatus } from '../../shared/contract';
import { STATUS_LABEL } from '../run-info';

/** A run's status as a coloured pill; `running` pulses. */
export function StatusPill({ status, title }: { status: RunStatus; title?: string }) {
  return (
    <span className={`pill status-${status}`} data-status={status} title={title}>
      {STATUS_LABEL[status] ?? status}
    </span>
  );
}
