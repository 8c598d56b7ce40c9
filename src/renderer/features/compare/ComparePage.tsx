import { NotBuiltYet } from '../../components/EmptyState';
import { PAGES } from '../../pages';

/** The Compare page (placeholder until it is built). */
export function ComparePage() {
  const p = PAGES.find((x) => x.id === 'compare')!;
  return <NotBuiltYet page={p.id} summary={p.summary} />;
}
