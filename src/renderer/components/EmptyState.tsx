import type { ReactNode } from 'react';
import type { PageId } from '../pages';
import { Icon, type IconName } from './Icon';

/** What a page that is not built yet shows: what it will do, and that it does not do it yet. */
export function NotBuiltYet({ page, summary }: { page: PageId; summary: string }) {
  return (
    <section className="empty" aria-labelledby="empty-title">
      <div className="empty-icon">
        <Icon name={page} size={28} />
      </div>
      <h2 id="empty-title">Not built yet</h2>
      <p className="empty-summary">{summary}</p>
      <p className="muted">
        This page is part of the plan but has no implementation in this version. The command line (
        <code>gpt2-studio --help</code>) may already cover it.
      </p>
    </section>
  );
}

/** An empty list or page: what is missing, and the way to make it. */
export function EmptyState({ icon, title, children }: { icon: IconName; title: string; children?: ReactNode }) {
  return (
    <section className="empty" aria-label={title}>
      <div className="empty-icon">
        <Icon name={icon} size={28} />
      </div>
      <h2>{title}</h2>
      {children}
    </section>
  );
}
