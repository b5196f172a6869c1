import { useEffect, useRef } from 'preact/hooks';
import { useApp } from '../app-context.js';
import { supportedTypes } from './capabilities.js';
import { LiveStream, type StreamQuery, streamPath } from './live-stream.js';

/**
 * Opens the event stream while the component is mounted (one per view). `onEvent` and
 * `onOpen` may change between renders without reopening the stream; the query may not.
 */
export function useLiveStream(
  query: StreamQuery | null,
  onEvent: (event: string, data: unknown) => void,
  onOpen?: (resumed: boolean) => void,
): void {
  const app = useApp();
  const handlers = useRef({ onEvent, onOpen });
  handlers.current = { onEvent, onOpen };
  const types = query ? supportedTypes(app.capabilities, query.types) : [];
  const key = query ? JSON.stringify([types, query.device ?? [], query.metric ?? []]) : '';

  useEffect(() => {
    if (!query || types.length === 0) return;
    const stream = new LiveStream(streamPath({ ...query, types }), app.token, {
      onEvent: (e, d) => handlers.current.onEvent(e, d),
      onOpen: (resumed) => handlers.current.onOpen?.(resumed),
      onState: app.reportStream,
      onUnauthorized: () => app.signOut('The server no longer accepts this token.'),
    });
    stream.start();
    return () => stream.stop();
  }, [key]);
}
