import { useEffect, useState } from 'preact/hooks';
import type { StreamState } from './api/live-stream.js';

/** The live stream's state in the header: fixed width, announced politely. */
export function StreamIndicator(props: { state: StreamState | null }) {
  const { state } = props;
  const [now, setNow] = useState(Date.now);
  useEffect(() => {
    if (state?.kind !== 'waiting') return;
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, [state]);

  let text = 'not streaming';
  let kind = 'idle';
  let countdown = '';
  if (state) {
    switch (state.kind) {
      case 'open':
        text = 'live';
        kind = 'live';
        break;
      case 'connecting':
        text = state.attempt === 0 ? 'connecting…' : 'reconnecting…';
        kind = 'pending';
        break;
      case 'waiting':
        text = 'reconnecting';
        countdown = ` in ${Math.max(0, Math.ceil((state.retryAt - now) / 1000))}s`;
        kind = 'pending';
        break;
      case 'unavailable':
        text = 'stream unavailable';
        kind = 'down';
        break;
      case 'closed':
        break;
    }
  }
  const title =
    state?.kind === 'waiting' || state?.kind === 'unavailable' ? state.reason : undefined;
  return (
    <span class={`stream stream--${kind}`} title={title} data-stream={kind}>
      <span class="stream__dot" aria-hidden="true" />
      <span role="status" aria-live="polite">
        {text}
      </span>
      <span aria-hidden="true">{countdown}</span>
    </span>
  );
}
