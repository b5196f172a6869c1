import { Fragment } from 'preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { ApiError, isMissingRoute } from '../api/api-client.js';
import type { Alert, AlertMessage, Page } from '../api/types.js';
import { useLiveStream } from '../api/use-live-stream.js';
import { useApp } from '../app-context.js';
import { formatAgo, formatDuration, formatTime, formatValue } from '../format.js';
import { Link } from '../link.js';
import { navigate, paths } from '../router.js';
import { mayOffer } from '../session/roles.js';
import { useNow } from '../use-now.js';
import {
  type AlertFilters,
  acknowledgeable,
  alertFiltersFromSearch,
  alertQuery,
  alertSearch,
  SEVERITIES,
  STATE_FILTERS,
} from './alert-filters.js';

export function AlertsView(props: { search: string }) {
  const { api, capabilities, grants } = useApp();
  const available = capabilities.paths.has('/api/v1/alerts');
  const filters = useMemo(() => alertFiltersFromSearch(props.search), [props.search]);
  const [items, setItems] = useState<Alert[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [missing, setMissing] = useState(!available);
  const [loading, setLoading] = useState(false);
  // Transitions seen on the stream while this page is open, per alert, newest first.
  const [transitions, setTransitions] = useState<Record<string, AlertMessage[]>>({});
  const generation = useRef(0);
  const reloadTimer = useRef<number | undefined>(undefined);
  const now = useNow(10_000);

  const load = async (after: string | null) => {
    const mine = ++generation.current;
    setLoading(true);
    try {
      const page = await api.get<Page<Alert>>('/api/v1/alerts', alertQuery(filters, after));
      if (mine !== generation.current) return;
      setItems((prev) => (after && prev ? [...prev, ...page.items] : page.items));
      setNext(page.next);
      setError(null);
      setMissing(false);
    } catch (err) {
      if (mine !== generation.current) return;
      if (isMissingRoute(err)) setMissing(true);
      else setError((err as Error).message);
    } finally {
      if (mine === generation.current) setLoading(false);
    }
  };
  const loadRef = useRef(load);
  loadRef.current = load;

  useEffect(() => {
    if (available) void loadRef.current(null);
    return () => clearTimeout(reloadTimer.current);
  }, [available, filters]);

  useLiveStream(
    available ? { types: ['alerts'] } : null,
    (event, data) => {
      if (event !== 'alerts') return;
      const m = data as AlertMessage;
      setTransitions((prev) => ({
        ...prev,
        [m.alert.id]: [m, ...(prev[m.alert.id] ?? [])].slice(0, 20),
      }));
      // The list is read again (once per burst): new alerts appear, states and summaries change.
      if (reloadTimer.current !== undefined) return;
      reloadTimer.current = window.setTimeout(() => {
        reloadTimer.current = undefined;
        void loadRef.current(null);
      }, 1000);
    },
    (resumed) => {
      if (resumed) void loadRef.current(null);
    },
  );

  const setFilter = (patch: Partial<AlertFilters>) =>
    navigate(paths.alerts(alertSearch({ ...filters, ...patch })), { replace: true });

  const onAcknowledged = (a: Alert) =>
    setItems((prev) => prev?.map((x) => (x.id === a.id ? a : x)) ?? prev);

  return (
    <section class="page" aria-labelledby="alerts-title">
      <div class="page__head">
        <h1 id="alerts-title">Alerts</h1>
        <p class="muted" aria-live="polite">
          {loading ? 'Loading…' : items ? `${items.length}${next ? '+' : ''} shown` : ''}
        </p>
      </div>
      {missing ? (
        <p class="empty">Alerts are not available on this server yet.</p>
      ) : (
        <>
          <form class="filters" onSubmit={(e) => e.preventDefault()} aria-label="Filter alerts">
            <div class="field">
              <label for="a-state">State</label>
              <select
                id="a-state"
                value={filters.state}
                onChange={(e) =>
                  setFilter({ state: e.currentTarget.value as AlertFilters['state'] })
                }
              >
                {STATE_FILTERS.map((s) => (
                  <option key={s} value={s}>
                    {s === 'open' ? 'open (pending or firing)' : s}
                  </option>
                ))}
              </select>
            </div>
            <div class="field">
              <label for="a-severity">Severity</label>
              <select
                id="a-severity"
                value={filters.severity}
                onChange={(e) => setFilter({ severity: e.currentTarget.value })}
              >
                <option value="">any</option>
                {SEVERITIES.map((s) => (
                  <option key={s} value={s}>
                    {s}
                  </option>
                ))}
              </select>
            </div>
            <div class="field">
              <label for="a-ack">Acknowledged</label>
              <select
                id="a-ack"
                value={filters.acknowledged}
                onChange={(e) =>
                  setFilter({ acknowledged: e.currentTarget.value as AlertFilters['acknowledged'] })
                }
              >
                <option value="">either</option>
                <option value="false">not yet</option>
                <option value="true">acknowledged</option>
              </select>
            </div>
            <DeviceFilter value={filters.device} onChange={(device) => setFilter({ device })} />
          </form>
          {error && (
            <p class="error" role="alert">
              Alerts could not be loaded: {error}
            </p>
          )}
          {items && items.length === 0 ? (
            <p class="empty">No alert matches these filters.</p>
          ) : (
            <ol class="alerts">
              {(items ?? []).map((a) => (
                <AlertItem
                  key={a.id}
                  alert={a}
                  seen={transitions[a.id] ?? []}
                  canAck={mayOffer(grants, 'operator')}
                  now={now}
                  onAcknowledged={onAcknowledged}
                />
              ))}
            </ol>
          )}
          {next && (
            <button type="button" disabled={loading} onClick={() => void load(next)}>
              Show more
            </button>
          )}
        </>
      )}
    </section>
  );
}

function DeviceFilter(props: { value: string; onChange(v: string): void }) {
  const [draft, setDraft] = useState(props.value);
  const onChange = useRef(props.onChange);
  onChange.current = props.onChange;
  useEffect(() => setDraft(props.value), [props.value]);
  useEffect(() => {
    if (draft === props.value) return;
    const timer = setTimeout(() => onChange.current(draft), 400);
    return () => clearTimeout(timer);
  }, [draft, props.value]);
  return (
    <div class="field">
      <label for="a-device">Device</label>
      <input
        id="a-device"
        type="search"
        placeholder="device id"
        value={draft}
        onInput={(e) => setDraft(e.currentTarget.value)}
      />
    </div>
  );
}

function AlertItem(props: {
  alert: Alert;
  seen: AlertMessage[];
  canAck: boolean;
  now: number;
  onAcknowledged(a: Alert): void;
}) {
  const { api } = useApp();
  const { alert: a, seen, now } = props;
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const ack = async () => {
    setBusy(true);
    setError(null);
    try {
      props.onAcknowledged(await api.post<Alert>(`/api/v1/alerts/${encodeURIComponent(a.id)}/ack`));
    } catch (err) {
      setError(
        err instanceof ApiError && err.status === 403
          ? 'This token may not acknowledge alerts (it needs the operator role).'
          : (err as Error).message,
      );
    } finally {
      setBusy(false);
    }
  };
  const titleId = `alert-${a.id}`;
  return (
    <li
      class={`alert alert--${a.severity} alert--${a.state}`}
      aria-labelledby={titleId}
      data-alert={a.id}
    >
      <div class="alert__head">
        <span class={`badge badge--${a.severity}`}>{a.severity}</span>
        <h2 id={titleId} class="alert__title">
          {a.ruleName ?? a.ruleId} on <Link href={paths.device(a.device)}>{a.device}</Link>
        </h2>
        <span class={`badge badge--${a.state}`} data-alert-state={a.state}>
          {a.state}
        </span>
        {a.flapping && <span class="badge badge--warning">flapping</span>}
      </div>
      <p class="alert__summary">{a.summary}</p>
      <dl class="facts facts--inline">
        <dt>Opened</dt>
        <dd title={formatTime(a.openedAt)}>{formatAgo(a.openedAt, now)}</dd>
        {a.firedAt && (
          <>
            <dt>Firing</dt>
            <dd title={formatTime(a.firedAt)}>
              {a.firingMs !== null ? formatDuration(a.firingMs / 1000) : formatAgo(a.firedAt, now)}
            </dd>
          </>
        )}
        {a.closedAt && (
          <>
            <dt>Closed</dt>
            <dd>{formatTime(a.closedAt)}</dd>
          </>
        )}
        <dt>Value</dt>
        <dd>
          {formatValue(a.value)}
          {a.peak !== null ? ` (peak ${formatValue(a.peak)})` : ''}
        </dd>
        {!a.paged && a.quiet && (
          <>
            <dt>Paging</dt>
            <dd>not paged: {a.quiet} data</dd>
          </>
        )}
      </dl>
      <div class="alert__ack">
        {a.acknowledgedAt ? (
          <p class="muted" data-acknowledged="true">
            Acknowledged by {a.acknowledgedBy ?? 'someone'} {formatAgo(a.acknowledgedAt, now)}
          </p>
        ) : acknowledgeable(a) && props.canAck ? (
          <button type="button" class="primary" disabled={busy} onClick={ack}>
            {busy ? 'Acknowledging…' : 'Acknowledge'}
          </button>
        ) : acknowledgeable(a) ? (
          <p class="muted" data-ack-needs-role="operator">
            Not acknowledged; acknowledging needs the operator role.
          </p>
        ) : null}
        <p class="error" role="alert">
          {error ?? ''}
        </p>
      </div>
      {seen.length > 0 && (
        <details class="transitions">
          <summary>Transitions seen here ({seen.length})</summary>
          <ol>
            {seen.map((m) => (
              <li key={m.id}>
                <p>
                  <time dateTime={m.at}>{formatTime(m.at)}</time>{' '}
                  <strong>{m.type.replace('alert.', '')}</strong>: {m.summary}
                </p>
                <Explanation message={m} />
              </li>
            ))}
          </ol>
        </details>
      )}
    </li>
  );
}

/** Why a transition happened, field by field (alerts/notification.ts `explain`). */
function Explanation(props: { message: AlertMessage }) {
  const x = props.message.explain;
  const rows: [string, string][] = [['Condition', x.condition]];
  if (x.value !== null) rows.push(['Value', formatValue(x.value)]);
  if (x.limit !== null) rows.push(['Limit', formatValue(x.limit)]);
  if (x.clearLimit !== null) rows.push(['Clears at', formatValue(x.clearLimit)]);
  if (x.heldMs !== null) rows.push(['Held for', formatDuration(x.heldMs / 1000)]);
  if (x.for) rows.push(['Must hold', x.for]);
  if (x.incidentMs !== null) rows.push(['Incident', formatDuration(x.incidentMs / 1000)]);
  if (x.peak !== null) rows.push(['Peak', formatValue(x.peak)]);
  if (x.silentMs !== null) rows.push(['Silent for', formatDuration(x.silentMs / 1000)]);
  if (x.backfilled) rows.push(['Data', 'backfilled']);
  if (x.timer) rows.push(['Decided by', 'a timer']);
  if (x.reason !== 'condition') rows.push(['Reason', x.reason.replace(/_/g, ' ')]);
  if (props.message.acknowledged)
    rows.push([
      'Acknowledged',
      `${props.message.acknowledged.by}, ${formatTime(props.message.acknowledged.at)}`,
    ]);
  return (
    <dl class="facts facts--inline">
      {rows.map(([k, v]) => (
        <Fragment key={k}>
          <dt>{k}</dt>
          <dd>{v}</dd>
        </Fragment>
      ))}
    </dl>
  );
}
