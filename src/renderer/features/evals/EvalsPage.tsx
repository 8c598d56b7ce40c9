import { NotBuiltYet } from '../../components/EmptyState';
import { PAGES } from '../../pages';

/** The Evals page (placeholder until it is built). */
export function EvalsPage() {
  const p = PAGES.find((x) => x.id === 'evals')!;
  return <NotBuiltYet page={p.id} summary={p.summary} />;
}
