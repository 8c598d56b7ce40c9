import { NotBuiltYet } from '../../components/EmptyState';
import { PAGES } from '../../pages';

/** The Checkpoints page (placeholder until it is built). */
export function CheckpointsPage() {
  const p = PAGES.find((x) => x.id === 'checkpoints')!;
  return <NotBuiltYet page={p.id} summary={p.summary} />;
}
