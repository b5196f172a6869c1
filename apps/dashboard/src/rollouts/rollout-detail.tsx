import { useEffect, useState } from 'preact/hooks';
import { ApiError, isMissingRoute } from '../api/api-client.js';
import { useLiveStream } from '../api/use-live-stream.js';
import { useApp } from '../app-context.js';
import { formatDuration, formatTime } from '../format.js';
import { Link } from '../link.js';
import { paths } from '../router.js';
import { mayOffer } from '../session/roles.js';
import { useRequest } from '../use-request.js';
import {
  applyRolloutEvent,
  type RolloutDetail as Detail,
  deviceNote,
  isActive,
  label,
  progressText,
  type RolloutStreamEvent,
  targetText,
} from './rollout-model.js';
import { ROLLOUT_POLL_MS } from './rollouts-view.js';

type Action = 'pause' | 'resume' | 'cancel';

const plural = (n: number, noun: string) => `${n} ${noun}${n === 1 ? '' : 's'}`;

export function RolloutDetail(props: { id: string }) {
  const { api, capabilities, grants } = useApp();
  const available = capabilities.paths.has('/api/v1/rollouts/{id}');
  const path = `/api/v1/rollouts/${encodeURIComponent(props.id)}`;
  const request = useRequest(available ? path : null, () => api.get<Detail>(path));
  const [detail, setDetail] = useState<Detail | null>(null);
  useEffect(() => {
    if (request.data) setDetail(request.data);
  }, [request.data]);

  const streamed = capabilities.streamTypes.has('rollouts');
  useLiveStream(
    streamed && available ? { types: ['rollouts'] } : null,
    (event, data) => {
      if (event === 'rollouts')
        setDetail((d) => (d ? applyRolloutEvent(d, data as RolloutStreamEvent) : d));
    },
    (resumed) => {
      if (resumed) request.reload();
    },
  );
  useEffect(() => {
    if (!available || streamed) return;
    const timer = setInterval(request.reload, ROLLOUT_POLL_MS);
    return () => clearInterval(timer);
  }, [available, streamed, request.reload]);

  const [busy, setBusy] = useState<Action | null>(null);
  const [confirmCancel, setConfirmCancel] = useState(false);
  const [actionError, setActionError] = useState<string | null>(null);

  const act = async (action: Action) => {
    setBusy(action);
    setActionError(null);
    try {
      const answer = await api.post<Detail>(`${path}/${action}`);
      setDetail(answer);
    } catch (err) {
      setActionError(
        err instanceof ApiError && err.status === 403
          ? 'This token may not control rollouts (it needs the firmware role).'
          : (err as Error).message,
      );
    } finally {
      setBusy(null);
      setConfirmCancel(false);
    }
  };

  if (!available || isMissingRoute(request.error)) {
    return (
      <section class="page">
        <h1>Rollout {props.id}</h1>
        <p class="empty">Rollouts are not available on this server yet.</p>
      </section>
    );
  }
  if (request.error && !detail) {
    return (
      <section class="page">
        <h1>Rollout {props.id}</h1>
        <p class="error" role="alert">
          {request.error.status === 404 ? 'There is no such rollout.' : request.error.message}
        </p>
        <Link href={paths.rollouts()}>All rollouts</Link>
      </section>
    );
  }
  const r = detail;
  const control = mayOffer(grants, 'firmware') && r !== null && isActive(r);
  return (
    <section class="page" aria-labelledby="rollout-title">
      <div class="page__head">
        <h1 id="rollout-title">{r ? label(r) : `Rollout ${props.id}`}</h1>
        {r && (
          <span class={`badge badge--${r.status}`} data-rollout-status={r.status}>
            {r.status}
          </span>
        )}
      </div>
      {r === null ? (
        <p class="muted">Loading…</p>
      ) : (
        <>
          <dl class="facts">
            <dt>Rollout</dt>
            <dd>{r.id}</dd>
            <dt>Firmware</dt>
            <dd>{r.firmwareId}</dd>
            <dt>Target</dt>
            <dd>{targetText(r.target)}</dd>
            <dt>Plan</dt>
            <dd>
              waves {r.plan.waves.join('%, ')}%, soak {formatDuration(r.plan.soakSeconds)}, abort
              above {Math.round(r.plan.abortFailureRate * 100)}% failures after{' '}
              {plural(r.plan.minDevices, 'device')}
            </dd>
            <dt>Created</dt>
            <dd>
              {formatTime(r.createdAt)} by {r.createdBy}
            </dd>
            <dt>Progress</dt>
            <dd>{progressText(r.totals)}</dd>
            {r.reason && (
              <>
                <dt>Reason</dt>
                <dd>{r.reason}</dd>
              </>
            )}
          </dl>
          {control && (
            <fieldset class="actions">
              <legend class="visually-hidden">Control this rollout</legend>
              {r.status === 'running' && (
                <button type="button" disabled={busy !== null} onClick={() => act('pause')}>
                  {busy === 'pause' ? 'Pausing…' : 'Pause'}
                </button>
              )}
              {r.status === 'paused' && (
                <button type="button" disabled={busy !== null} onClick={() => act('resume')}>
                  {busy === 'resume' ? 'Resuming…' : 'Resume'}
                </button>
              )}
              {confirmCancel ? (
                <>
                  <button
                    type="button"
                    class="danger"
                    disabled={busy !== null}
                    onClick={() => act('cancel')}
                  >
                    {busy === 'cancel' ? 'Cancelling…' : 'Confirm: cancel rollout'}
                  </button>
                  <button type="button" onClick={() => setConfirmCancel(false)}>
                    Keep it
                  </button>
                </>
              ) : (
                <button type="button" class="danger" onClick={() => setConfirmCancel(true)}>
                  Cancel rollout…
                </button>
              )}
            </fieldset>
          )}
          <p class="error" role="alert">
            {actionError ?? ''}
          </p>
          <h2>Waves</h2>
          <ol class="waves">
            {r.waves.map((w) => (
              <li
                key={w.index}
                class={`wave wave--${w.phase}${r.currentWave === w.index ? ' wave--current' : ''}`}
                aria-current={r.currentWave === w.index ? 'step' : undefined}
              >
                <span class="wave__title">
                  Wave {w.index + 1} · up to {w.percent}% · {w.phase}
                </span>
                <span class="wave__counts">
                  {plural(w.devices, 'device')}: {w.counts.succeeded} succeeded,{' '}
                  {w.counts.failed + w.counts.rolledBack} failed,{' '}
                  {w.counts.offered + w.counts.updating} updating, {w.counts.pending} waiting
                </span>
                <span class="muted">
                  {w.soakUntil
                    ? `soaking until ${formatTime(w.soakUntil)}`
                    : w.completedAt
                      ? `completed ${formatTime(w.completedAt)}`
                      : w.startedAt
                        ? `started ${formatTime(w.startedAt)}`
                        : 'not started'}
                </span>
              </li>
            ))}
          </ol>
          <h2>Devices</h2>
          {r.devices.length === 0 ? (
            <p class="muted">No devices in this rollout.</p>
          ) : (
            <div class="table-wrap">
              <table class="table">
                <caption class="visually-hidden">Devices of this rollout, in rollout order</caption>
                <thead>
                  <tr>
                    <th scope="col">Device</th>
                    <th scope="col">Wave</th>
                    <th scope="col">State</th>
                    <th scope="col">Reason or progress</th>
                    <th scope="col">Version</th>
                    <th scope="col">Updated</th>
                  </tr>
                </thead>
                <tbody>
                  {r.devices.map((d) => (
                    <tr key={d.deviceId}>
                      <th scope="row" data-label="Device">
                        <Link href={paths.device(d.deviceId)}>{d.deviceId}</Link>
                      </th>
                      <td data-label="Wave">{d.wave + 1}</td>
                      <td data-label="State">
                        <span class={`badge badge--${d.state}`}>{d.state.replace('_', ' ')}</span>
                      </td>
                      <td data-label="Reason">{deviceNote(d)}</td>
                      <td data-label="Version">{d.version ?? '–'}</td>
                      <td data-label="Updated">{formatTime(d.updatedAt)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </>
      )}
    </section>
  );
}
