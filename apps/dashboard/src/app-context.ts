import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import type { Api } from './api/api-client.js';
import type { Capabilities } from './api/capabilities.js';
import type { StreamState } from './api/live-stream.js';
import type { Grants } from './session/roles.js';

/** What every view needs: the API, what the token may do, and what the server offers. */
export interface AppContextValue {
  api: Api;
  token: () => string | null;
  grants: Grants;
  capabilities: Capabilities;
  signOut(reason?: string): void;
  /** Views report their stream's state here; the header shows it. */
  reportStream(state: StreamState): void;
}

export const AppContext = createContext<AppContextValue | null>(null);

export function useApp(): AppContextValue {
  const value = useContext(AppContext);
  if (!value) throw new Error('useApp outside AppContext');
  return value;
}
