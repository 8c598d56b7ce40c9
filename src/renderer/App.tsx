import { useEffect, useRef, useState } from 'react';
import { Icon } from './components/Icon';
import { NotBuiltYet } from './components/EmptyState';
import { SettingsPage } from './features/settings/SettingsPage';
import { PAGES, type PageId, pageFromHash } from './pages';
import { useTheme } from './theme';

function useHashPage(): PageId {
  const [page, setPage] = useState<PageId>(() => pageFromHash(window.location.hash));
  useEffect(() => {
    const onChange = () => setPage(pageFromHash(window.location.hash));
    window.addEventListener('hashchange', onChange);
    return () => window.removeEventListener('hashchange', onChange);
  }, []);
  return page;
}

export function App() {
  const page = useHashPage();
  const [theme, toggleTheme] = useTheme();
  const current = PAGES.find((p) => p.id === page) ?? PAGES[0];
  const heading = useRef<HTMLHeadingElement>(null);
  const first = useRef(true);

  useEffect(() => {
    document.title = `${current.title} · GPT-2 Studio`;
    // After a navigation, move focus to the new page's heading (not on first load).
    if (first.current) first.current = false;
    else heading.current?.focus();
  }, [current]);

  const nextTheme = theme === 'dark' ? 'light' : 'dark';

  return (
    <div className="shell">
      <a className="skip-link" href={`#/${page}`} onClick={(e) => { e.preventDefault(); heading.current?.focus(); }}>
        Skip to content
      </a>
      <aside className="sidebar">
        <div className="brand">
          <span className="brand-mark">
            <Icon name="logo" size={20} />
          </span>
          <span className="brand-name">GPT-2 Studio</span>
        </div>
        <nav aria-label="Pages">
          <ul className="nav">
            {PAGES.map((p) => (
              <li key={p.id}>
                <a href={`#/${p.id}`} className="nav-link" aria-current={p.id === page ? 'page' : undefined}>
                  <Icon name={p.id} />
                  <span>{p.title}</span>
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <div className="sidebar-footer">
          <button
            type="button"
            className="theme-toggle"
            onClick={toggleTheme}
            aria-label={`Switch to ${nextTheme} theme`}
            title={`Switch to ${nextTheme} theme`}
          >
            <Icon name={theme === 'dark' ? 'sun' : 'moon'} />
            <span>{theme === 'dark' ? 'Light theme' : 'Dark theme'}</span>
          </button>
        </div>
      </aside>
      <main className="main" id="main">
        <header className="page-header">
          <h1 ref={heading} tabIndex={-1}>
            {current.title}
          </h1>
          <p className="muted">{current.summary}</p>
        </header>
        {page === 'settings' ? <SettingsPage /> : <NotBuiltYet page={page} summary={current.summary} />}
      </main>
    </div>
  );
}
