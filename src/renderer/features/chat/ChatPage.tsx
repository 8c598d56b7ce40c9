import { NotBuiltYet } from '../../components/EmptyState';
import { PAGES } from '../../pages';

/** The Chat page (placeholder until it is built). */
export function ChatPage() {
  const p = PAGES.find((x) => x.id === 'chat')!;
  return <NotBuiltYet page={p.id} summary={p.summary} />;
}
