/**
 * Client routes. The ingest answers every non-API path with the app (SPA fallback), so
 * these are real addresses: links can be opened in new tabs and shared (they carry filters,
 * never the token).
 */
export type Route =
  | { view: 'overview' }
  | { view: 'devices' }
  | { view: 'device'; id: string }
  | { view: 'alerts' }
  | { view: 'rollouts' }
  | { view: 'rollout'; id: string }
  | { view: 'not-found' };

export function matchRoute(pathname: string): Route {
  const parts = pathname.split('/').filter((p) => p !== '');
  const [first, second, ...rest] = parts;
  if (rest.length > 0) return { view: 'not-found' };
  const decode = (s: string) => {
    try {
      return decodeURIComponent(s);
    } catch {
      return undefined;
    }
  };
  if (first === undefined) return { view: 'overview' };
  if (first === 'devices') {
    if (second === undefined) return { view: 'devices' };
    const id = decode(second);
    return id ? { view: 'device', id } : { view: 'not-found' };
  }
  if (first === 'alerts' && second === undefined) return { view: 'alerts' };
  if (first === 'rollouts') {
    if (second === undefined) return { view: 'rollouts' };
    const id = decode(second);
    return id ? { view: 'rollout', id } : { view: 'not-found' };
  }
  return { view: 'not-found' };
}

export const paths = {
  overview: () => '/',
  devices: (search = '') => `/devices${search}`,
  device: (id: string) => `/devices/${encodeURIComponent(id)}`,
  alerts: (search = '') => `/alerts${search}`,
  rollouts: () => '/rollouts',
  rollout: (id: string) => `/rollouts/${encodeURIComponent(id)}`,
};

const listeners = new Set<() => void>();

export function navigate(href: string, options: { replace?: boolean } = {}): void {
  if (href === `${location.pathname}${location.search}`) return;
  if (options.replace) history.replaceState(null, '', href);
  else history.pushState(null, '', href);
  for (const l of listeners) l();
}

export function onNavigate(listener: () => void): () => void {
  listeners.add(listener);
  addEventListener('popstate', listener);
  return () => {
    listeners.delete(listener);
    removeEventListener('popstate', listener);
  };
}
