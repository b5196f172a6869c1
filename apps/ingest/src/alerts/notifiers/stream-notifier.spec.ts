import { LiveEvents } from '../../stream/live-events.js';
import type { AlertMessage } from '../notification.js';
import { notifierContract } from './notifier.contract.js';
import { StreamNotifier } from './stream-notifier.js';

// Real: the in-process LiveEvents emitter the SSE controller listens to.

notifierContract('stream', async () => {
  const live = new LiveEvents();
  const seen: AlertMessage[] = [];
  const listener = (m: AlertMessage) => seen.push(m);
  live.on('alerts', listener);
  return {
    notifier: new StreamNotifier(live),
    received: async () =>
      seen.map((m) => ({
        id: m.id,
        type: m.type,
        alertId: m.alert.id,
        device: m.alert.device,
        summary: m.summary,
      })),
    close: async () => {
      live.off('alerts', listener);
    },
  };
});
