import type { ReactNode } from 'react';
import { Icon, type IconName } from './Icon';

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
