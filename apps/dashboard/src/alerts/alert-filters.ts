import type { QueryValue } from '../api/api-client.js';

/** The alert list's filters, in the page's address and as `GET /api/v1/alerts` takes them. */
export const STATE_FILTERS = ['open', 'firing', 'pending', 'resolved', 'cancelled', 'all'] as const;
export type AlertStateFilter = (typeof STATE_FILTERS)[number];
export const SEVERITIES = ['critical', 'warning', 'info'] as const;

export interface AlertFilters {
  state: AlertStateFilter;
  severity: string;
  device: string;
  acknowledged: '' | 'true' | 'false';
}

export const DEFAULT_ALERT_FILTERS: AlertFilters = {
  state: 'open',
  severity: '',
  device: '',
  acknowledged: '',
};

export function alertFiltersFromSearch(search: string): AlertFilters {
  const p = new URLSearchParams(search);
  const state = p.get('state') ?? '';
  const severity = p.get('severity') ?? '';
  const ack = p.get('acknowledged') ?? '';
  return {
    state: (STATE_FILTERS as readonly string[]).includes(state)
      ? (state as AlertStateFilter)
      : DEFAULT_ALERT_FILTERS.state,
    severity: (SEVERITIES as readonly string[]).includes(severity) ? severity : '',
    device: p.get('device') ?? '',
    acknowledged: ack === 'true' || ack === 'false' ? ack : '',
  };
}

export function alertSearch(f: AlertFilters): string {
  const p = new URLSearchParams();
  if (f.state !== DEFAULT_ALERT_FILTERS.state) p.set('state', f.state);
  if (f.severity) p.set('severity', f.severity);
  if (f.device.trim()) p.set('device', f.device.trim());
  if (f.acknowledged) p.set('acknowledged', f.acknowledged);
  const s = p.toString();
  return s ? `?${s}` : '';
}

export function alertQuery(f: AlertFilters, after: string | null): Record<string, QueryValue> {
  return {
    state: f.state === 'all' ? undefined : f.state,
    severity: f.severity || undefined,
    device: f.device.trim() || undefined,
    acknowledged: f.acknowledged || undefined,
    limit: 100,
    after: after ?? undefined,
  };
}

/** Whether an alert may still be acknowledged (the server answers the same when it already is). */
export function acknowledgeable(a: { state: string; acknowledgedAt: string | null }): boolean {
  return (a.state === 'pending' || a.state === 'firing') && a.acknowledgedAt === null;
}
