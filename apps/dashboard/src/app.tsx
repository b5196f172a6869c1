import { useCallback, useEffect, useMemo, useState } from 'preact/hooks';
import { AlertsView } from './alerts/alerts-view.js';
import { createApi } from './api/api-client.js';
import { BASELINE, type Capabilities, loadCapabilities } from './api/capabilities.js';
import type { StreamState } from './api/live-stream.js';
import { AppContext, type AppContextValue } from './app-context.js';
import { DeviceDetail } from './devices/device-detail.js';
import { DeviceList } from './devices/device-list.js';
import { FleetOverview } from './fleet/fleet-overview.js';
import { Link } from './link.js';
import { RolloutDetail } from './rollouts/rollout-detail.js';
import { RolloutsView } from './rollouts/rollouts-view.js';
import { matchRoute, onNavigate, paths, type Route } from './router.js';
import { type Grants, rolesOf } from './session/roles.js';
import { SignIn } from './session/sign-in.js';
import { clearToken, readToken, writeToken } from './session/token-store.js';
import { StreamIndicator } from './stream-indicator.js';

function useLocation(): { pathname: string; search: string } {
  const read = () => ({ pathname: location.pathname, search: location.search });
  const [loc, setLoc] = useState(read);
  useEffect(() => onNavigate(() => setLoc(read())), []);
  return loc;
}

export function App() {
  const [token, setToken] = useState<string | null>(readToken);
  const [notice, setNotice] = useState<string | null>(null);

  const signOut = useCallback((reason?: string) => {
    clearToken();
    setToken(null);
    setNotice(reason ?? null);
  }, []);

  if (!token) {
    return (
      <SignIn
        notice={notice}
        onSignedIn={(t) => {
          writeToken(t);
          setNotice(null);
          setToken(t);
        }}
      />
    );
  }
  return <Shell token={token} signOut={signOut} />;
}

/** The token's roles; an opaque token (the bootstrap admin token) is probed once. */
function useGrants(token: string, api: AppContextValue['api']): Grants {
  const [grants, setGrants] = useState<Grants>(() => rolesOf(token));
  useEffect(() => {
    if (rolesOf(token) !== null) return;
    // Only admins may list tokens: a cheap way to learn what an opaque token is.
    api.get('/api/v1/tokens').then(
      () => setGrants(['admin']),
      () => setGrants(null),
    );
  }, [token, api]);
  return grants;
}

function Shell(props: { token: string; signOut(reason?: string): void }) {
  const { token, signOut } = props;
  const loc = useLocation();
  const route = matchRoute(loc.pathname);
  const [capabilities, setCapabilities] = useState<Capabilities>(BASELINE);
  const [stream, setStream] = useState<StreamState | null>(null);

  const api = useMemo(
    () =>
      createApi(
        () => token,
        () => signOut('The server no longer accepts this token.'),
      ),
    [token, signOut],
  );
  const grants = useGrants(token, api);
  useEffect(() => {
    void loadCapabilities().then(setCapabilities);
  }, []);

  const context = useMemo<AppContextValue>(
    () => ({
      api,
      token: () => token,
      grants,
      capabilities,
      signOut,
      reportStream: setStream,
    }),
    [api, token, grants, capabilities, signOut],
  );

  useEffect(() => {
    document.title = `${TITLES[route.view]} · Outpost`;
  }, [route.view]);

  return (
    <AppContext.Provider value={context}>
      <a class="skip-link" href="#main">
        Skip to content
      </a>
      <header class="top-bar">
        <Link href={paths.overview()} class="brand">
          Outpost
        </Link>
        <nav aria-label="Main">
          <ul class="nav">
            <NavLink href={paths.overview()} active={route.view === 'overview'}>
              Overview
            </NavLink>
            <NavLink
              href={paths.devices()}
              active={route.view === 'devices' || route.view === 'device'}
            >
              Devices
            </NavLink>
            <NavLink href={paths.alerts()} active={route.view === 'alerts'}>
              Alerts
            </NavLink>
            <NavLink
              href={paths.rollouts()}
              active={route.view === 'rollouts' || route.view === 'rollout'}
            >
              Rollouts
            </NavLink>
          </ul>
        </nav>
        <StreamIndicator state={stream} />
        <span class="grants" title="Roles of this token, as it states them">
          {grants === null ? 'roles unknown' : grants.join(', ')}
        </span>
        <button type="button" class="sign-out" onClick={() => signOut()}>
          Sign out
        </button>
      </header>
      <main id="main" tabIndex={-1}>
        <View route={route} search={loc.search} />
      </main>
    </AppContext.Provider>
  );
}

const TITLES: Record<Route['view'], string> = {
  overview: 'Overview',
  devices: 'Devices',
  device: 'Device',
  alerts: 'Alerts',
  rollouts: 'Rollouts',
  rollout: 'Rollout',
  'not-found': 'Not found',
};

function NavLink(props: { href: string; active: boolean; children: string }) {
  return (
    <li>
      <Link href={props.href} aria-current={props.active ? 'page' : undefined}>
        {props.children}
      </Link>
    </li>
  );
}

function View(props: { route: Route; search: string }) {
  const { route, search } = props;
  switch (route.view) {
    case 'overview':
      return <FleetOverview />;
    case 'devices':
      return <DeviceList search={search} />;
    case 'device':
      return <DeviceDetail key={route.id} id={route.id} search={search} />;
    case 'alerts':
      return <AlertsView search={search} />;
    case 'rollouts':
      return <RolloutsView />;
    case 'rollout':
      return <RolloutDetail key={route.id} id={route.id} />;
    case 'not-found':
      return (
        <section class="page">
          <h1>Not found</h1>
          <p>
            There is no page here. <Link href={paths.overview()}>Go to the overview</Link>.
          </p>
        </section>
      );
  }
}
