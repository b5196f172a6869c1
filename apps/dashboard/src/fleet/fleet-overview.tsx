import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { isMissingRoute } from '../api/api-client.js';
import type { Alert, Device, Page, StatusEvent } from '../api/types.js';
import { useLiveStream } from '../api/use-live-stream.js';
import { useApp } from '../app-context.js';
import { formatAgo, formatCount, formatDuration } from '../format.js';
import { Link } from '../link.js';
import { isActive, label, type Rollout } from '../rollouts/rollout-model.js';
import { paths } from '../router.js';
import { useNow } from '../use-now.js';
import { applyStatus, entryOf, type FleetCounts, type FleetEntry, tally } from './fleet-counts.js';

/** Devices counted per scan; beyond it the overview says "at least". */
const MAX_SCAN = 50_000;
const PAGE = 500;
/** Reported state (outboxes, new devices) is re-read this often; status events are live. */
const RESCAN_MS = 60_000;

interface ScanState {
  scanned: number;
  done: boolean;
  capped: boolean;
  error: string | null;
}

function useFleetCounts(): {
  counts: FleetCounts | null;
  scan: ScanState;
  rescan(): Promise<void>;
  onStatus(e: StatusEvent): void;
} {
  const { api } = useApp();
  const entries = useRef(new Map<string, FleetEntry>());
  const [counts, setCounts] = useState<FleetCounts | null>(null);
  const [scan, setScan] = useState<ScanState>({
    scanned: 0,
    done: false,
    capped: false,
    error: null,
  });
  const recountTimer = useRef<number | undefined>(undefined);
  const scanning = useRef(false);

  const recount = useCallback(() => {
    if (recountTimer.current !== undefined) return;
    // Status events come in bursts (a gateway with many children): count once per burst.
    recountTimer.current = window.setTimeout(() => {
      recountTimer.current = undefined;
      setCounts(tally(entries.current.values()));
    }, 250);
  }, []);

  const rescan = useCallback(async () => {
    if (scanning.current) return;
    scanning.current = true;
    const fresh = new Map<string, FleetEntry>();
    let after: string | null = null;
    try {
      do {
        const page: Page<Device> = await api.get<Page<Device>>('/api/v1/devices', {
          limit: PAGE,
          after: after ?? undefined,
        });
        for (const d of page.items) fresh.set(d.id, entryOf(d));
        after = page.next;
        setScan((s) => ({ ...s, scanned: fresh.size }));
      } while (after && fresh.size < MAX_SCAN);
      entries.current = fresh;
      setCounts(tally(fresh.values()));
      setScan({ scanned: fresh.size, done: true, capped: after !== null, error: null });
    } catch (err) {
      setScan((s) => ({ ...s, error: (err as Error).message }));
    } finally {
      scanning.current = false;
    }
  }, [api]);

  useEffect(() => {
    void rescan();
    const timer = setInterval(() => void rescan(), RESCAN_MS);
    return () => {
      clearInterval(timer);
      clearTimeout(recountTimer.current);
    };
  }, [rescan]);

  const onStatus = useCallback(
    (e: StatusEvent) => {
      entries.current.set(e.deviceId, applyStatus(entries.current.get(e.deviceId), e));
      recount();
    },
    [recount],
  );
  return { counts, scan, rescan, onStatus };
}

interface AlertSummary {
  firing: Alert[];
  more: boolean;
  pending: number;
  missing: boolean;
}

/** Changes `version` at most once per `ms`, however often `bump` is called. */
function useThrottledVersion(ms: number): [number, () => void] {
  const [version, setVersion] = useState(0);
  const timer = useRef<number | undefined>(undefined);
  useEffect(() => () => clearTimeout(timer.current), []);
  const bump = useCallback(() => {
    if (timer.current !== undefined) return;
    timer.current = window.setTimeout(() => {
      timer.current = undefined;
      setVersion((v) => v + 1);
    }, ms);
  }, [ms]);
  return [version, bump];
}

export function FleetOverview() {
  const { counts, scan, rescan, onStatus } = useFleetCounts();
  const [alertsVersion, alertsChanged] = useThrottledVersion(1000);
  const [rolloutsVersion, rolloutsChanged] = useThrottledVersion(2000);
  const now = useNow(10_000);
  useLiveStream(
    { types: ['status', 'alerts', 'rollouts'] },
    (event, data) => {
      if (event === 'status') onStatus(data as StatusEvent);
      else if (event === 'alerts') alertsChanged();
      else if (event === 'rollouts' && (data as { kind?: string }).kind === 'progress')
        rolloutsChanged();
    },
    (resumed) => {
      if (resumed) {
        void rescan();
        alertsChanged();
        rolloutsChanged();
      }
    },
  );
  const c = counts;
  const pendingNote = (n: number | undefined) => (n === undefined ? '' : formatCount(n));
  const at = scan.capped ? '≥ ' : '';
  return (
    <section class="page" aria-labelledby="overview-title">
      <div class="page__head">
        <h1 id="overview-title">Fleet overview</h1>
        <p class="muted scan" aria-live="polite">
          {scan.error
            ? `Counting failed: ${scan.error}`
            : scan.done
              ? `${at}${formatCount(scan.scanned)} devices`
              : `Counting devices… ${formatCount(scan.scanned)}`}
        </p>
      </div>
      <ul class="tiles" aria-label="Devices by connectivity">
        <Tile
          label="Online"
          value={c ? at + pendingNote(c.online) : null}
          href={paths.devices('?status=online')}
          tone="good"
        />
        <Tile
          label="Offline"
          value={c ? at + pendingNote(c.offline) : null}
          href={paths.devices('?status=offline')}
          tone="bad"
        />
        <Tile
          label="Offline, buffering"
          value={c ? at + pendingNote(c.buffering) : null}
          href={paths.devices('?status=buffering')}
          tone="warn"
          detail={
            c && c.buffering > 0
              ? `${formatCount(c.pendingReadings)} readings waiting, oldest ${formatDuration(c.oldestPendingS ?? 0)}`
              : 'no readings waiting'
          }
        />
        <Tile
          label="Never connected"
          value={c ? at + pendingNote(c.neverConnected) : null}
          tone="idle"
        />
        <Tile
          label="Revoked"
          value={c ? at + pendingNote(c.revoked) : null}
          href={paths.devices('?status=revoked')}
          tone="idle"
        />
      </ul>
      <div class="columns">
        <FiringAlerts now={now} version={alertsVersion} />
        <RunningRollouts version={rolloutsVersion} />
      </div>
    </section>
  );
}

function Tile(props: {
  label: string;
  value: string | null;
  href?: string;
  tone: string;
  detail?: string;
}) {
  const body = (
    <>
      <span class="tile__label">{props.label}</span>
      <span class="tile__value" data-count={props.label}>
        {props.value ?? '–'}
      </span>
      <span class="tile__detail">{props.detail ?? ''}</span>
    </>
  );
  return (
    <li class={`tile tile--${props.tone}`}>
      {props.href ? (
        <Link href={props.href} class="tile__link">
          {body}
        </Link>
      ) : (
        <div class="tile__link">{body}</div>
      )}
    </li>
  );
}

function FiringAlerts(props: { now: number; version: number }) {
  const { api, capabilities } = useApp();
  const [summary, setSummary] = useState<AlertSummary | null>(null);
  const [error, setError] = useState<string | null>(null);
  const available = capabilities.paths.has('/api/v1/alerts');

  const load = useCallback(async () => {
    try {
      const [firing, pending] = await Promise.all([
        api.get<Page<Alert>>('/api/v1/alerts', { state: 'firing', limit: 500 }),
        api.get<Page<Alert>>('/api/v1/alerts', { state: 'pending', limit: 500 }),
      ]);
      setSummary({
        firing: firing.items,
        more: firing.next !== null,
        pending: pending.items.length,
        missing: false,
      });
      setError(null);
    } catch (err) {
      if (isMissingRoute(err)) setSummary({ firing: [], more: false, pending: 0, missing: true });
      else setError((err as Error).message);
    }
  }, [api]);

  useEffect(() => {
    if (available) void load();
  }, [available, load, props.version]);

  const missing = !available || summary?.missing;
  return (
    <section class="panel" aria-labelledby="firing-title">
      <h2 id="firing-title">
        Firing alerts{' '}
        <span class="count">
          {missing
            ? ''
            : summary
              ? `${formatCount(summary.firing.length)}${summary.more ? '+' : ''}`
              : '–'}
        </span>
      </h2>
      {missing ? (
        <p class="muted">Alerts are not available on this server.</p>
      ) : error ? (
        <p class="error">Alerts could not be loaded: {error}</p>
      ) : summary && summary.firing.length === 0 ? (
        <p class="muted">
          Nothing is firing.{summary.pending > 0 ? ` ${summary.pending} pending.` : ''}
        </p>
      ) : (
        <ul class="compact-list">
          {(summary?.firing ?? []).slice(0, 8).map((a) => (
            <li key={a.id}>
              <span class={`badge badge--${a.severity}`}>{a.severity}</span>{' '}
              <Link href={paths.alerts('?state=firing')}>{a.ruleName ?? a.ruleId}</Link> on{' '}
              <Link href={paths.device(a.device)}>{a.device}</Link>{' '}
              <span class="muted">since {formatAgo(a.firedAt, props.now)}</span>
            </li>
          ))}
        </ul>
      )}
      {!missing && summary && summary.pending > 0 && summary.firing.length > 0 && (
        <p class="muted">{summary.pending} more pending.</p>
      )}
    </section>
  );
}

function RunningRollouts(props: { version: number }) {
  const { api, capabilities } = useApp();
  const available = capabilities.paths.has('/api/v1/rollouts');
  const [rollouts, setRollouts] = useState<Rollout[] | null>(null);
  const [missing, setMissing] = useState(false);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    if (!available) return;
    api.get<Page<Rollout>>('/api/v1/rollouts', { status: ['running', 'paused'], limit: 500 }).then(
      (page) => {
        setRollouts(page.items);
        setError(null);
      },
      (err: unknown) => {
        if (isMissingRoute(err)) setMissing(true);
        else setError((err as Error).message);
      },
    );
  }, [api, available, props.version]);

  const running = (rollouts ?? []).filter(isActive);
  const none = !available || missing;
  return (
    <section class="panel" aria-labelledby="rollouts-title">
      <h2 id="rollouts-title">
        Running rollouts <span class="count">{none ? '' : rollouts ? running.length : '–'}</span>
      </h2>
      {none ? (
        <p class="muted">Rollouts are not available on this server.</p>
      ) : error ? (
        <p class="error">Rollouts could not be loaded: {error}</p>
      ) : running.length === 0 ? (
        <p class="muted">{rollouts ? 'No rollout is running.' : 'Loading…'}</p>
      ) : (
        <ul class="compact-list">
          {running.slice(0, 8).map((r) => (
            <li key={r.id}>
              <Link href={paths.rollout(r.id)}>{label(r)}</Link>{' '}
              <span class={`badge badge--${r.status}`}>{r.status}</span>{' '}
              <span class="muted">
                wave {r.currentWave + 1} of {r.plan.waves.length}
              </span>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
