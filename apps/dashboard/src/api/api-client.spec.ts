import { describe, expect, it } from 'vitest';
import { ApiError, createApi, isMissingRoute, queryString } from './api-client.js';

describe('API client', () => {
  it('repeats array keys and leaves out empty values', () => {
    expect(queryString({ tag: ['a=1', 'b=2'], q: '', status: undefined, limit: 5, x: null })).toBe(
      '?tag=a%3D1&tag=b%3D2&limit=5',
    );
    expect(queryString({})).toBe('');
  });

  it('sends the token as a header and turns problem details into errors', async () => {
    const seen: [string, RequestInit][] = [];
    let unauthorized = 0;
    const answers = [
      new Response('{"items":[]}', { status: 200 }),
      new Response('{"code":"route_not_found","detail":"no such route"}', { status: 404 }),
      new Response('{"code":"token_invalid","detail":"the API token is not valid"}', {
        status: 401,
      }),
    ];
    const api = createApi(
      () => 'tok',
      () => unauthorized++,
      (async (url: string, init: RequestInit) => {
        seen.push([url, init]);
        return answers.shift()!;
      }) as unknown as typeof fetch,
    );
    expect(await api.get('/api/v1/devices', { limit: 1 })).toEqual({ items: [] });
    expect(seen[0]![0]).toBe('/api/v1/devices?limit=1');
    expect((seen[0]![1].headers as Record<string, string>).authorization).toBe('Bearer tok');
    const missing = await api.get('/api/v1/rollouts').catch((e: unknown) => e);
    expect(isMissingRoute(missing)).toBe(true);
    const denied = await api.post('/api/v1/alerts/a/ack').catch((e: unknown) => e);
    expect(denied).toBeInstanceOf(ApiError);
    expect((denied as ApiError).message).toBe('the API token is not valid');
    expect(unauthorized).toBe(1);
  });
});
