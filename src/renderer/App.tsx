import { useEffect, useRef } from 'react';
import { Icon } from './components/Icon';
import { RunToasts } from './components/RunToasts';
import { NewRunPage } from './features/new-run/NewRunPage';
import { RunPage } from './features/run/RunPage';
import { RunsPage } from './features/runs/RunsPage';
import { SettingsPage } from './features/settings/SettingsPage';
import { ComparePage } from './features/compare/ComparePage';
import { CheckpointsPage } from './features/checkpoints/CheckpointsPage';
import { ChatPage } from './features/chat/ChatPage';
import { DatasetsPage } from './features/datasets/DatasetsPage';
import { EvalsPage } from './features/evals/EvalsPage';
import { PAGES } from './pages';
import { href, navPageOf, useRoute, type Route } from './router';
import { useTheme } from './theme';
import { RunNotifyContext, useRunNotifications } from './useRunNotifications';

function routeKey(r: Route): string {
  return href(r);
}

export function App() {
  const route = useRoute();
  const [theme, toggleTheme] = useTheme();
  const navPage = navPageOf(route);
  const current = PAGES.find((p) => p.id === navPage) ?? PAGES[0];
  const mainRef = useRef<HTMLElement>(null);
  const first = useRef(true);
  const key = routeKey(route);
  const runs = useRunNotifications();

  useEffect(() => {
    if (route.page !== 'run') document.title = `${current.title} · GPT-2 Studio`;
    // After a navigation, move focus to the new page's heading (not on first load).
    if (first.current) {
      first.current = false;
      return;
    }
    // a new page starts at its top, whatever the previous one was scrolled to
    window.scrollTo(0, 0);
    // the page may render its heading after loading: try now and on the next frames
    let tries = 0;
    let raf = 0;
    const focus = () => {
      const h = mainRef.current?.querySelector<HTMLElement>('h1');
      if (h) {
        if (!h.hasAttribute('tabindex')) h.tabIndex = -1;
        h.focus({ preventScroll: true });
      } else if (tries++ < 30) raf = requestAnimationFrame(focus);
    };
    focus();
    return () => cancelAnimationFrame(raf);
  }, [key, current, route.page]);

  const nextTheme = theme === 'dark' ? 'light' : 'dark';
  const wide = route.page !== 'settings';

  return (
    <div className="shell">
      <a
        className="skip-link"
        href={href(route)}
        onClick={(e) => {
          e.preventDefault();
          mainRef.current?.querySelector<HTMLElement>('h1')?.focus();
        }}
      >
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
                <a href={`#/${p.id}`} className="nav-link" aria-current={p.id === navPage ? 'page' : undefined}>
                  <Icon name={p.id} />
                  <span>{p.title}</span>
                  {p.id === 'runs' && runs.active > 0 && (
                    <span className="nav-badge" data-testid="runs-badge" title={activeText(runs.active)}>
                      <span aria-hidden="true">{runs.active}</span>
                      <span className="visually-hidden">, {activeText(runs.active)}</span>
                    </span>
                  )}
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
      <main className={`main${wide ? ' main-wide' : ''}`} id="main" ref={mainRef}>
        {route.page !== 'run' && (
          <header className="page-header">
            <h1 tabIndex={-1}>{current.title}</h1>
            <p className="muted">{current.summary}</p>
          </header>
        )}
        <RunNotifyContext.Provider value={runs.setting}>
          <Page route={route} key={key} />
        </RunNotifyContext.Provider>
      </main>
      <RunToasts toasts={runs.toasts} onOpen={runs.open} onDismiss={runs.dismiss} />
    </div>
  );
}

const activeText = (n: number): string => `${n} active run${n === 1 ? '' : 's'}`;

function Page({ route }: { route: Route }) {
  switch (route.page) {
    case 'runs':
      return <RunsPage />;
    case 'new-run':
      return <NewRunPage from={route.from} />;
    case 'run':
      return <RunPage runId={route.runId} />;
    case 'settings':
      return <SettingsPage />;
    case 'compare':
      return <ComparePage />;
    case 'checkpoints':
      return <CheckpointsPage />;
    case 'chat':
      return <ChatPage />;
    case 'datasets':
      return <DatasetsPage />;
    case 'evals':
      return <EvalsPage />;
    default: {
      const never: never = route;
      return never;
    }
  }
}
