import { NotBuiltYet } from '../../components/EmptyState';
import { PAGES } from '../../pages';

/** The Datasets page (placeholder until it is built). */
export function DatasetsPage() {
  const p = PAGES.find((x) => x.id === 'datasets')!;
  return <NotBuiltYet page={p.id} summary={p.summary} />;
}
