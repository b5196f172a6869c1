import { Fragment } from 'preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import type {
  Alert,
  AlertMessage,
  Device,
  Latest,
  Page,
  ReadingsEvent,
  StatusEvent,
} from '../api/types.js';
import { useLiveStream } from '../api/use-live-stream.js';
import { useApp } from '../app-context.js';
import { rangeById, TIME_RANGES, type TimeRange } from '../charts/aggregation-window.js';
import { MetricChart } from '../charts/metric-chart.js';
import { ReadingsHub } from '../charts/readings-hub.js';
import {
  formatAgo,
  formatBytes,
  formatCount,
  formatDuration,
  formatTime,
  formatValue,
} from '../format.js';
import { Link } from '../link.js';
import { navigate, paths } from '../router.js';
import { useNow } from '../use-now.js';
import { useRequest } from '../use-request.js';
import { StateBadge } from './state-badge.js';

interface MetricInfo {
  metric: string;
  unit: string | undefined;
  /** Text metrics get a value, not a chart. */
  numeric: boolean;
  latest: number | string | boolean | null;
}

interface RecentEvent {
  key: string;
  at: string;
  kind: 'status' | 'alert' | 'state';
  text: string;
}

const MAX_EVENTS = 50;

export function DeviceDetail(props: { id: string; search: string }) {
  const { api, capabilities } = useApp();
  const { id } = props;
  const base = `/api/v1/devices/${encodeURIComponent(id)}`;
  const range = rangeById(new URLSearchParams(props.search).get('range'));
  const device = useRequest(base, () => api.get<Device>(base));
  const latest = useRequest(`${base}/latest`, () => api.get<Latest>(`${base}/latest`));
  const alertsAvailable = capabilities.paths.has('/api/v1/alerts');
  const alerts = useRequest(alertsAvailable ? `alerts:${id}` : null, () =>
    api.get<Page<Alert>>('/api/v1/alerts', { device: id, limit: 20 }),
  );
  const hub = useMemo(() => new ReadingsHub(), []);
  const [resync, setResync] = useState(0);
  const [extra, setExtra] = useState<MetricInfo[]>([]);
  const [live, setLive] = useState<RecentEvent[]>([]);
  const [status, setStatus] = useState<StatusEvent | null>(null);
  const now = useNow(5000);

  // Reported state changes without a stream event: read the record again now and then.
  useEffect(() => {
    const timer = setInterval(device.reload, 30_000);
    return () => clearInterval(timer);
  }, [device.reload]);

  const known = useRef(new Set<string>());
  const metrics = useMemo(() => {
    const list: MetricInfo[] = (latest.data?.metrics ?? []).map((m) => ({
      metric: m.metric,
      unit: m.unit,
      numeric: typeof m.value !== 'string',
      latest: m.value,
    }));
    for (const e of extra) if (!list.some((m) => m.metric === e.metric)) list.push(e);
    list.sort((a, b) => a.metric.localeCompare(b.metric));
    known.current = new Set(list.map((m) => m.metric));
    return list;
  }, [latest.data, extra]);

  const addEvent = (e: RecentEvent) => setLive((prev) => [e, ...prev].slice(0, MAX_EVENTS));

  useLiveStream(
    { types: ['readings', 'status', 'alerts'], device: [id] },
    (event, data) => {
      if (event === 'readings') {
        const fresh: MetricInfo[] = [];
        for (const r of (data as ReadingsEvent).readings) {
          if (r.device !== id) continue;
          const t = Date.parse(r.time);
          if (!hub.emit(r.metric, t, r.value) && !known.current.has(r.metric)) {
            known.current.add(r.metric);
            fresh.push({
              metric: r.metric,
              unit: r.unit,
              numeric: typeof r.value !== 'string',
              latest: r.value,
            });
          }
        }
        if (fresh.length > 0) setExtra((prev) => [...prev, ...fresh]);
      } else if (event === 'status') {
        const s = data as StatusEvent;
        setStatus(s);
        addEvent({
          key: `s${s.at}${s.online}`,
          at: s.at,
          kind: 'status',
          text: s.online ? 'Connected' : `Disconnected${s.reason ? `: ${s.reason}` : ''}`,
        });
        device.reload();
      } else if (event === 'alerts') {
        const m = data as AlertMessage;
        addEvent({ key: `a${m.id}`, at: m.at, kind: 'alert', text: `${m.type}: ${m.summary}` });
      }
    },
    (resumed) => {
      if (resumed) {
        setResync((n) => n + 1);
        device.reload();
      }
    },
  );

  const setRange = (r: TimeRange) => {
    const p = new URLSearchParams(props.search);
    p.set('range', r.id);
    navigate(`${paths.device(id)}?${p.toString()}`, { replace: true });
  };

  if (device.error && !device.data) {
    return (
      <section class="page">
        <h1>{id}</h1>
        <p class="error" role="alert">
          {device.error.status === 404 ? 'There is no such device.' : device.error.message}
        </p>
        <Link href={paths.devices()}>All devices</Link>
      </section>
    );
  }
  const d = device.data;
  const state =
    status && d && d.connectivity.state !== 'revoked'
      ? status.online
        ? 'online'
        : d.connectivity.state === 'online'
          ? 'offline'
          : d.connectivity.state
      : (d?.connectivity.state ?? null);

  const events: RecentEvent[] = [...live];
  for (const a of alerts.data?.items ?? []) {
    events.push({
      key: `h${a.id}`,
      at: a.updatedAt,
      kind: 'alert',
      text: `Alert ${a.state}${a.acknowledgedBy ? ` (acknowledged by ${a.acknowledgedBy})` : ''}: ${a.summary}`,
    });
  }
  if (d?.reportedAt) {
    events.push({ key: 'reported', at: d.reportedAt, kind: 'state', text: 'Reported its state' });
  }
  events.sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : 0));

  return (
    <section class="page" aria-labelledby="device-title">
      <div class="page__head">
        <h1 id="device-title">{d?.name ?? id}</h1>
        {state && <StateBadge state={state} />}
        <span class="muted">
          {d
            ? state === 'online'
              ? 'seen now'
              : `last seen ${formatAgo(d.connectivity.lastSeen, now)}`
            : ''}
        </span>
      </div>
      <dl class="facts">
        <dt>Id</dt>
        <dd>{id}</dd>
        <dt>Kind</dt>
        <dd>{d?.kind ?? '–'}</dd>
        <dt>Gateway</dt>
        <dd>{d?.gateway ? <Link href={paths.device(d.gateway)}>{d.gateway}</Link> : '–'}</dd>
        <dt>Tags</dt>
        <dd class="tags">
          {d && Object.keys(d.tags).length > 0
            ? Object.entries(d.tags).map(([k, v]) => (
                <span key={k} class="tag">
                  {k}={v}
                </span>
              ))
            : '–'}
        </dd>
      </dl>

      <section aria-labelledby="telemetry-title">
        <div class="section-head">
          <h2 id="telemetry-title">Telemetry</h2>
          <fieldset class="range-picker">
            <legend>Time range</legend>
            {TIME_RANGES.map((r) => (
              <label key={r.id} class={r.id === range.id ? 'range range--on' : 'range'}>
                <input
                  type="radio"
                  name="range"
                  value={r.id}
                  checked={r.id === range.id}
                  onChange={() => setRange(r)}
                />
                <span>{r.id}</span>
              </label>
            ))}
          </fieldset>
        </div>
        {latest.error ? (
          <p class="error">Metrics could not be loaded: {latest.error.message}</p>
        ) : metrics.length === 0 ? (
          <p class="empty">
            {latest.data
              ? 'No readings from this device yet; charts appear as readings arrive.'
              : 'Loading metrics…'}
          </p>
        ) : (
          <div class="charts">
            {metrics.map((m) =>
              m.numeric ? (
                <MetricChart
                  key={m.metric}
                  device={id}
                  metric={m.metric}
                  unit={m.unit}
                  range={range}
                  hub={hub}
                  resync={resync}
                />
              ) : (
                <figure key={m.metric} class="chart chart--text">
                  <figcaption class="chart__head">
                    <span class="chart__title">{m.metric}</span>
                  </figcaption>
                  <p class="chart__text">{formatValue(m.latest)}</p>
                </figure>
              ),
            )}
          </div>
        )}
      </section>

      <div class="columns">
        <ReportedState device={d} now={now} />
        <section class="panel" aria-labelledby="events-title">
          <h2 id="events-title">Recent events</h2>
          {events.length === 0 ? (
            <p class="muted">Nothing recorded yet.</p>
          ) : (
            <ol class="events">
              {events.slice(0, MAX_EVENTS).map((e) => (
                <li key={e.key} class={`event event--${e.kind}`}>
                  <time dateTime={e.at}>{formatTime(e.at)}</time> <span>{e.text}</span>
                </li>
              ))}
            </ol>
          )}
        </section>
      </div>
    </section>
  );
}

function ReportedState(props: { device: Device | undefined; now: number }) {
  const d = props.device;
  const s = d?.reportedState ?? null;
  const components = Object.entries(s?.firmware?.components ?? {});
  return (
    <section class="panel" aria-labelledby="reported-title">
      <h2 id="reported-title">Reported state</h2>
      {!d ? (
        <p class="muted">Loading…</p>
      ) : !s ? (
        <p class="muted">This device has not reported its state.</p>
      ) : (
        <>
          <dl class="facts">
            <dt>Reported</dt>
            <dd>{formatAgo(d.reportedAt, props.now)}</dd>
            <dt>Firmware</dt>
            <dd>{s.firmware?.version ?? '–'}</dd>
            {components.map(([name, version]) => (
              <Fragment key={name}>
                <dt>· {name}</dt>
                <dd>{version}</dd>
              </Fragment>
            ))}
            <dt>Agent</dt>
            <dd>{s.agent?.version ?? '–'}</dd>
            <dt>Uptime</dt>
            <dd>{s.uptime_s === undefined ? '–' : formatDuration(s.uptime_s)}</dd>
            <dt>Config version</dt>
            <dd>{s.config_version ?? '–'}</dd>
            <dt>Outbox</dt>
            <dd>
              {d.outbox
                ? `${formatCount(d.outbox.pending)} readings waiting (${formatBytes(d.outbox.bytes)}), oldest ${formatDuration(d.outbox.oldestS)}, ${formatCount(d.outbox.dropped)} dropped`
                : '–'}
            </dd>
          </dl>
          <h3>Serial ports</h3>
          {(s.ports ?? []).length === 0 ? (
            <p class="muted">No serial ports reported.</p>
          ) : (
            <ul class="ports">
              {(s.ports ?? []).map((p) => (
                <li key={p.path}>
                  <code>{p.path}</code>{' '}
                  <span class={`badge badge--port-${p.state}`}>{p.state}</span>
                </li>
              ))}
            </ul>
          )}
        </>
      )}
    </section>
  );
}
