import { MAX_TAG_KEY_LENGTH, MAX_TAG_VALUE_LENGTH } from '@outpost/protocol/limits';
import type { QueryValue } from '../api/api-client.js';

/**
 * The device list's filters as they appear in the page's address (shareable, no secrets)
 * and as the list API takes them (`GET /api/v1/devices`).
 */
export const STATUS_FILTERS = [
  'online',
  'offline',
  'buffering',
  'pending',
  'active',
  'revoked',
] as const;
export type StatusFilter = (typeof STATUS_FILTERS)[number];

export const PAGE_SIZES = [50, 100, 250, 500] as const;

export interface DeviceFilters {
  q: string;
  status: StatusFilter | '';
  /** `k=v` pairs, as typed: comma or space separated. */
  tags: string;
  gateway: string;
  limit: number;
}

export const NO_FILTERS: DeviceFilters = { q: '', status: '', tags: '', gateway: '', limit: 100 };

/** A tag filter as the API takes it (`tags.ts` in the protocol package); spaces separate pairs here. */
const TAG = new RegExp(
  `^[A-Za-z0-9_.-]{1,${MAX_TAG_KEY_LENGTH}}=[^\\s,]{0,${MAX_TAG_VALUE_LENGTH}}$`,
);

/** `site=north, room=boiler` → the pairs, and the parts that are not `k=v`. */
export function parseTags(text: string): { pairs: string[]; invalid: string[] } {
  const pairs: string[] = [];
  const invalid: string[] = [];
  for (const part of text.split(/[\s,]+/)) {
    if (part === '') continue;
    if (TAG.test(part)) pairs.push(part);
    else invalid.push(part);
  }
  return { pairs, invalid };
}

export function filtersFromSearch(search: string): DeviceFilters {
  const p = new URLSearchParams(search);
  const status = p.get('status') ?? '';
  const limit = Number(p.get('limit'));
  return {
    q: p.get('q') ?? '',
    status: (STATUS_FILTERS as readonly string[]).includes(status) ? (status as StatusFilter) : '',
    tags: p.getAll('tag').join(', '),
    gateway: p.get('gateway') ?? '',
    limit: (PAGE_SIZES as readonly number[]).includes(limit) ? limit : NO_FILTERS.limit,
  };
}

export function searchFromFilters(f: DeviceFilters): string {
  const p = new URLSearchParams();
  if (f.q.trim()) p.set('q', f.q.trim());
  if (f.status) p.set('status', f.status);
  for (const t of parseTags(f.tags).pairs) p.append('tag', t);
  if (f.gateway.trim()) p.set('gateway', f.gateway.trim());
  if (f.limit !== NO_FILTERS.limit) p.set('limit', String(f.limit));
  const s = p.toString();
  return s ? `?${s}` : '';
}

/** The list API's query for one page. */
export function listQuery(f: DeviceFilters, after: string | null): Record<string, QueryValue> {
  return {
    q: f.q.trim().slice(0, 64) || undefined,
    status: f.status || undefined,
    tag: parseTags(f.tags).pairs,
    gateway: f.gateway.trim() || undefined,
    limit: f.limit,
    after: after ?? undefined,
  };
}
