/**
 * The API token lives in session storage: gone when the tab closes, never in a URL, a
 * cookie or local storage.
 */
const KEY = 'outpost.apiToken';

export function readToken(storage: Storage = sessionStorage): string | null {
  try {
    return storage.getItem(KEY);
  } catch {
    return null;
  }
}

export function writeToken(token: string, storage: Storage = sessionStorage): void {
  storage.setItem(KEY, token);
}

export function clearToken(storage: Storage = sessionStorage): void {
  storage.removeItem(KEY);
}
