import { Component } from 'preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import type { Device, Page, StatusEvent } from '../api/types.js';
import { useLiveStream } from '../api/use-live-stream.js';
import { useApp } from '../app-context.js';
import { applyStatus, entryOf } from '../fleet/fleet-counts.js';
import { formatAgo, formatCount, formatDuration } from '../format.js';
import { Link } from '../link.js';
import { navigate, paths } from '../router.js';
import { useNow } from '../use-now.js';
import { useRequest } from '../use-request.js';
import {
  type DeviceFilters,
  filtersFromSearch,
  listQuery,
  PAGE_SIZES,
  parseTags,
  STATUS_FILTERS,
  searchFromFilters,
} from './device-filters.js';
import { StateBadge } from './state-badge.js';

/**
 * Devices, one page at a time (cursor pagination of the list API), so a fleet of any size
 * costs one page of DOM. Filters live in the address; status changes stream in.
 */
export function DeviceList(props: { search: string }) {
  const { api } = useApp();
  const applied = useMemo(() => filtersFromSearch(props.search), [props.search]);
  const [draft, setDraft] = useState<DeviceFilters>(applied);
  // Cursors of the pages visited: page i starts after cursors[i].
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const page = cursors.length - 1;
  const appliedKey = searchFromFilters(applied);

  // The address we set from the form: when it comes back as `applied`, the form (which may
  // have moved on while the user kept typing) is left alone.
  const pushed = useRef<string | null>(null);
  useEffect(() => {
    if (pushed.current !== appliedKey) setDraft(applied);
    pushed.current = null;
    setCursors([null]);
  }, [applied, appliedKey]);

  // Typing filters the list after a pause; the address follows (replace, not push).
  useEffect(() => {
    const next = searchFromFilters(draft);
    if (next === appliedKey) return;
    const timer = setTimeout(() => {
      pushed.current = next;
      navigate(paths.devices(next), { replace: true });
    }, 300);
    return () => clearTimeout(timer);
  }, [draft, appliedKey]);

  const after = cursors[page] ?? null;
  const request = useRequest(`${appliedKey}|${after ?? ''}`, () =>
    api.get<Page<Device>>('/api/v1/devices', listQuery(applied, after)),
  );

  const [live, setLive] = useState<Record<string, StatusEvent>>({});
  useEffect(() => setLive({}), [request.data]);
  const pending = useRef<StatusEvent[]>([]);
  const flush = useRef<number | undefined>(undefined);
  useEffect(() => () => clearTimeout(flush.current), []);
  useLiveStream(
    { types: ['status'] },
    (event, data) => {
      if (event !== 'status') return;
      pending.current.push(data as StatusEvent);
      if (flush.current !== undefined) return;
      // One render per burst of status changes, however large the fleet.
      flush.current = window.setTimeout(() => {
        flush.current = undefined;
        const batch = pending.current;
        pending.current = [];
        setLive((prev) => {
          const next = { ...prev };
          for (const e of batch) next[e.deviceId] = e;
          return next;
        });
      }, 250);
    },
    (resumed) => {
      if (resumed) request.reload();
    },
  );

  const now = useNow(10_000);
  const tagProblems = parseTags(draft.tags).invalid;
  const items = request.data?.items ?? [];
  const shown = useProgressive(request.data?.items);
  const set = (patch: Partial<DeviceFilters>) => setDraft((d) => ({ ...d, ...patch }));

  return (
    <section class="page" aria-labelledby="devices-title">
      <div class="page__head">
        <h1 id="devices-title">Devices</h1>
        <p class="muted" aria-live="polite">
          {request.loading ? 'Loading…' : `Page ${page + 1} · ${formatCount(items.length)} shown`}
        </p>
      </div>
      <form class="filters" onSubmit={(e) => e.preventDefault()} aria-label="Filter devices">
        <div class="field">
          <label for="f-q">Search</label>
          <input
            id="f-q"
            type="search"
            placeholder="id or name"
            maxLength={64}
            value={draft.q}
            onInput={(e) => set({ q: e.currentTarget.value })}
          />
        </div>
        <div class="field">
          <label for="f-status">Status</label>
          <select
            id="f-status"
            value={draft.status}
            onChange={(e) => set({ status: e.currentTarget.value as DeviceFilters['status'] })}
          >
            <option value="">any</option>
            {STATUS_FILTERS.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="f-tag">Tags</label>
          <input
            id="f-tag"
            type="text"
            placeholder="site=north room=boiler"
            value={draft.tags}
            aria-invalid={tagProblems.length > 0 ? 'true' : undefined}
            aria-describedby="f-tag-help"
            onInput={(e) => set({ tags: e.currentTarget.value })}
          />
          <span id="f-tag-help" class={tagProblems.length > 0 ? 'hint error' : 'hint'}>
            {tagProblems.length > 0
              ? `Not key=value: ${tagProblems.join(' ')}`
              : 'key=value, all must match'}
          </span>
        </div>
        <div class="field">
          <label for="f-gateway">Gateway</label>
          <input
            id="f-gateway"
            type="text"
            placeholder="gateway id"
            value={draft.gateway}
            onInput={(e) => set({ gateway: e.currentTarget.value })}
          />
        </div>
        <div class="field field--narrow">
          <label for="f-limit">Per page</label>
          <select
            id="f-limit"
            value={String(draft.limit)}
            onChange={(e) => set({ limit: Number(e.currentTarget.value) })}
          >
            {PAGE_SIZES.map((n) => (
              <option key={n} value={String(n)}>
                {n}
              </option>
            ))}
          </select>
        </div>
      </form>
      {request.error && (
        <p class="error" role="alert">
          Devices could not be loaded: {request.error.message}
        </p>
      )}
      <div class="table-wrap">
        <table class="table devices" aria-busy={request.loading ? 'true' : 'false'}>
          <caption class="visually-hidden">Devices matching the filters</caption>
          <thead>
            <tr>
              <th scope="col">Device</th>
              <th scope="col">State</th>
              <th scope="col">Last seen</th>
              <th scope="col">Firmware</th>
              <th scope="col">Outbox</th>
              <th scope="col">Gateway</th>
              <th scope="col">Tags</th>
            </tr>
          </thead>
          <tbody>
            {items.slice(0, shown).map((d) => (
              <DeviceRow key={d.id} device={d} live={live[d.id]} now={now} />
            ))}
          </tbody>
        </table>
      </div>
      {request.data && items.length === 0 && <p class="empty">No device matches these filters.</p>}
      <nav class="pager" aria-label="Pages">
        <button
          type="button"
          disabled={page === 0 || request.loading}
          onClick={() => setCursors((c) => c.slice(0, -1))}
        >
          Previous page
        </button>
        <span class="pager__page">Page {page + 1}</span>
        <button
          type="button"
          disabled={!request.data?.next || request.loading}
          onClick={() => {
            const next = request.data?.next;
            if (next) setCursors((c) => [...c, next]);
          }}
        >
          Next page
        </button>
      </nav>
    </section>
  );
}

/** Rows rendered per frame when a page arrives: a 500-row page never blocks input for long. */
const ROWS_PER_FRAME = 100;

/**
 * How many of `total` rows to render: the first screenful at once, the rest over the next
 * frames (below the fold, so nothing visible moves).
 */
function useProgressive(rows: readonly unknown[] | undefined): number {
  const total = rows?.length ?? 0;
  const [shown, setShown] = useState(Math.min(total, ROWS_PER_FRAME));
  // A new page starts over, whether or not it has as many rows as the last one.
  useEffect(() => {
    let n = Math.min(total, ROWS_PER_FRAME);
    setShown(n);
    if (n >= total) return;
    let frame = requestAnimationFrame(function more() {
      n = Math.min(total, n + ROWS_PER_FRAME);
      setShown(n);
      if (n < total) frame = requestAnimationFrame(more);
    });
    return () => cancelAnimationFrame(frame);
  }, [rows]);
  return shown;
}

interface RowProps {
  device: Device;
  live: StatusEvent | undefined;
  now: number;
}

function rowView({ device: d, live, now }: RowProps) {
  const state = live ? applyStatus(entryOf(d), live).state : d.connectivity.state;
  const lastSeen = live ? (live.online ? null : live.at) : d.connectivity.lastSeen;
  return { state, seen: state === 'online' ? 'now' : formatAgo(lastSeen, now) };
}

/**
 * One row; re-rendered only when its device, its live status or its shown "last seen" text
 * changes, so a status event or the clock's tick touches a few rows, not a page of 500.
 */
class DeviceRow extends Component<RowProps> {
  override shouldComponentUpdate(next: RowProps): boolean {
    return (
      next.device !== this.props.device ||
      next.live !== this.props.live ||
      rowView(next).seen !== rowView(this.props).seen
    );
  }

  override render() {
    const d = this.props.device;
    const { state, seen } = rowView(this.props);
    const firmware = d.reportedState?.firmware?.version;
    const tags = Object.entries(d.tags);
    return (
      <tr data-device={d.id}>
        <th scope="row" data-label="Device">
          <Link href={paths.device(d.id)}>{d.name ?? d.id}</Link>
          {d.name && <span class="muted id"> {d.id}</span>}
        </th>
        <td data-label="State">
          <StateBadge state={state} />
        </td>
        <td data-label="Last seen">{seen}</td>
        <td data-label="Firmware">{firmware ?? '–'}</td>
        <td data-label="Outbox">
          {d.outbox && d.outbox.pending > 0
            ? `${formatCount(d.outbox.pending)} waiting, oldest ${formatDuration(d.outbox.oldestS)}`
            : d.outbox
              ? 'empty'
              : '–'}
        </td>
        <td data-label="Gateway">
          {d.gateway ? (
            <Link href={paths.devices(`?gateway=${encodeURIComponent(d.gateway)}`)}>
              {d.gateway}
            </Link>
          ) : (
            '–'
          )}
        </td>
        <td data-label="Tags" class="tags">
          {tags.length === 0
            ? '–'
            : tags.map(([k, v]) => (
                <span key={k} class="tag">
                  {k}={v}
                </span>
              ))}
        </td>
      </tr>
    );
  }
}
