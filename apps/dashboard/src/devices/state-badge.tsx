import type { ConnectivityState } from '../api/types.js';

const LABELS: Record<ConnectivityState, string> = {
  online: 'online',
  offline: 'offline',
  buffering: 'offline, buffering',
  never_connected: 'never connected',
  revoked: 'revoked',
};

/** Connectivity as text and colour (the text alone carries the meaning). */
export function StateBadge(props: { state: ConnectivityState }) {
  return (
    <span class={`badge badge--${props.state}`} data-state={props.state}>
      {LABELS[props.state] ?? props.state}
    </span>
  );
}
