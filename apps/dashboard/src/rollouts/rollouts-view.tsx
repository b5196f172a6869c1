import { useEffect, useRef, useState } from 'preact/hooks';
import { isMissingRoute } from '../api/api-client.js';
import type { Page } from '../api/types.js';
import { useLiveStream } from '../api/use-live-stream.js';
import { useApp } from '../app-context.js';
import { formatTime } from '../format.js';
import { Link } from '../link.js';
import { paths } from '../router.js';
import { useRequest } from '../use-request.js';
import {
  applyToList,
  label,
  type Rollout,
  type RolloutStreamEvent,
  targetText,
} from './rollout-model.js';

/** Without a `rollouts` stream, progress is polled this often. */
export const ROLLOUT_POLL_MS = 5000;

export function RolloutsView() {
  const { api, capabilities } = useApp();
  const available = capabilities.paths.has('/api/v1/rollouts');
  const list = useRequest(available ? 'rollouts' : null, () =>
    api.get<Page<Rollout>>('/api/v1/rollouts', { limit: 100 }),
  );
  const [items, setItems] = useState<Rollout[] | null>(null);
  useEffect(() => {
    if (list.data) setItems(list.data.items);
  }, [list.data]);

  const streamed = capabilities.streamTypes.has('rollouts');
  const reloadTimer = useRef<number | undefined>(undefined);
  useEffect(() => () => clearTimeout(reloadTimer.current), []);
  useLiveStream(
    streamed && available ? { types: ['rollouts'] } : null,
    (event, data) => {
      if (event !== 'rollouts' || !items) return;
      const next = applyToList(items, data as RolloutStreamEvent);
      if (next !== 'unknown') {
        setItems(next);
        return;
      }
      // A rollout this page has not seen: read the list again (once per burst).
      if (reloadTimer.current !== undefined) return;
      reloadTimer.current = window.setTimeout(() => {
        reloadTimer.current = undefined;
        list.reload();
      }, 1000);
    },
    (resumed) => {
      if (resumed) list.reload();
    },
  );
  useEffect(() => {
    if (!available || streamed) return;
    const timer = setInterval(list.reload, ROLLOUT_POLL_MS);
    return () => clearInterval(timer);
  }, [available, streamed, list.reload]);

  const missing = !available || isMissingRoute(list.error);
  return (
    <section class="page" aria-labelledby="rollouts-title">
      <div class="page__head">
        <h1 id="rollouts-title">Rollouts</h1>
      </div>
      {missing ? (
        <p class="empty">Rollouts are not available on this server yet.</p>
      ) : list.error && !items ? (
        <p class="error">Rollouts could not be loaded: {list.error.message}</p>
      ) : items && items.length === 0 ? (
        <p class="empty">No rollouts yet. Start one with `outpost rollout create`.</p>
      ) : (
        <div class="table-wrap">
          <table class="table">
            <caption class="visually-hidden">Rollouts, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Firmware</th>
                <th scope="col">State</th>
                <th scope="col">Wave</th>
                <th scope="col">Target</th>
                <th scope="col">Created</th>
              </tr>
            </thead>
            <tbody>
              {(items ?? []).map((r) => (
                <tr key={r.id} data-rollout={r.id}>
                  <th scope="row" data-label="Firmware">
                    <Link href={paths.rollout(r.id)}>{label(r)}</Link>
                  </th>
                  <td data-label="State">
                    <span class={`badge badge--${r.status}`}>{r.status}</span>
                    {r.reason && <span class="muted"> {r.reason}</span>}
                  </td>
                  <td data-label="Wave">
                    {r.currentWave + 1} of {r.plan.waves.length}
                  </td>
                  <td data-label="Target">{targetText(r.target)}</td>
                  <td data-label="Created">
                    {formatTime(r.createdAt)} by {r.createdBy}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
