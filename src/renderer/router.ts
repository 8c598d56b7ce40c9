/**
 * A small hash router: `#/runs`, `#/new-run`, `#/new-run?from=<runId>`, `#/run/<runId>`, `#/settings`, ... Plain
 * links (`<a href={href(route)}>`) navigate, so every route is reachable with the keyboard and the back button.
 */
import { useEffect, useState } from 'react';
import { DEFAULT_PAGE, PAGES, type PageId } from './pages';

export type Route =
  { page: Exclude<PageId, 'new-run'> } | { page: 'new-run'; from?: string } | { page: 'run'; runId: string };

export function parseRoute(hash: string): Route {
  const raw = hash.replace(/^#\/?/, '');
  const [pathPart, query = ''] = raw.split('?', 2);
  const parts = pathPart!
    .split('/')
    .filter(Boolean)
    .map((p) => {
      try {
        return decodeURIComponent(p);
      } catch {
        return p;
      }
    });
  const params = new URLSearchParams(query);
  if (parts[0] === 'run' && parts[1]) return { page: 'run', runId: parts[1] };
  if (parts[0] === 'new-run') {
    const from = params.get('from');
    return from ? { page: 'new-run', from } : { page: 'new-run' };
  }
  const id = parts[0];
  if (PAGES.some((p) => p.id === id)) return { page: id as Exclude<PageId, 'new-run'> };
  return { page: DEFAULT_PAGE as Exclude<PageId, 'new-run'> };
}

export function href(route: Route): string {
  if (route.page === 'run') return `#/run/${encodeURIComponent(route.runId)}`;
  if (route.page === 'new-run' && route.from) return `#/new-run?from=${encodeURIComponent(route.from)}`;
  return `#/${route.page}`;
}

export function navigate(route: Route): void {
  window.location.hash = href(route).slice(1);
}

/** The navigation entry a route belongs to (a run's page is under Runs). */
export function navPageOf(route: Route): PageId {
  return route.page === 'run' ? 'runs' : route.page;
}

export function useRoute(): Route {
  const [route, setRoute] = useState<Route>(() => parseRoute(window.location.hash));
  useEffect(() => {
    const onChange = () => setRoute(parseRoute(window.location.hash));
    window.addEventListener('hashchange', onChange);
    return () => window.removeEventListener('hashchange', onChange);
  }, []);
  return route;
}

/** The query of the current hash (`#/chat?model=ckpt:run-1:200` -> model=...), updated on navigation. */
export function useHashQuery(): URLSearchParams {
  const [query, setQuery] = useState(() => hashQuery(window.location.hash));
  useEffect(() => {
    const onChange = () => setQuery(hashQuery(window.location.hash));
    window.addEventListener('hashchange', onChange);
    return () => window.removeEventListener('hashchange', onChange);
  }, []);
  return query;
}

export function hashQuery(hash: string): URLSearchParams {
  const i = hash.indexOf('?');
  return new URLSearchParams(i >= 0 ? hash.slice(i + 1) : '');
}

/** A link to a page with query parameters, e.g. pageHref('chat', {model: 'model:gpt2'}). */
export function pageHref(page: Exclude<PageId, 'new-run'>, params: Record<string, string | undefined> = {}): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) q.set(k, v);
  const s = q.toString();
  return `#/${page}${s ? `?${s}` : ''}`;
}
