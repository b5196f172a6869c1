import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AlertMessage } from '../notification.js';
import type { Notifier, Outgoing } from './notifier.js';

/** What a channel's far end saw of one notification. */
export interface Received {
  id: string;
  type: string;
  alertId: string;
  device: string;
  summary: string;
}

export interface NotifierFixture {
  notifier: Notifier;
  /** Everything the far end has received so far, in arrival order. */
  received(): Promise<Received[]>;
  close(): Promise<void>;
}

export function sampleMessage(id: string, over: Partial<AlertMessage> = {}): AlertMessage {
  return {
    v: 1,
    id,
    type: 'alert.firing',
    at: '2025-03-01T12:00:30.000Z',
    summary: 'temperature on boiler-7 above 90 for 30s (now 97.25, peak 97.25)',
    alert: {
      id: `alert-${id}`,
      ruleId: 'r1',
      ruleName: 'boiler hot',
      device: 'boiler-7',
      metric: 'temperature',
      severity: 'critical',
      state: 'firing',
      openedAt: '2025-03-01T12:00:00.000Z',
      firedAt: '2025-03-01T12:00:30.000Z',
      closedAt: null,
      paged: true,
      flapping: false,
    },
    explain: {
      condition: 'temperature > 90 for 30s',
      value: 97.25,
      limit: 90,
      clearLimit: null,
      for: '30s',
      clearFor: null,
      heldMs: 30_000,
      incidentMs: null,
      peak: 97.25,
      silentMs: null,
      lastSeenAt: null,
      backfilled: false,
      timer: true,
      late: false,
      fires: null,
      reason: 'condition',
    },
    acknowledged: null,
    ...over,
  };
}

export function outgoing(message: AlertMessage, target?: Outgoing['target']): Outgoing {
  return {
    message,
    body: JSON.stringify(message),
    ...(target ? { target } : {}),
    deliveryId: `d-${message.id}`,
    attempt: 1,
  };
}

/**
 * The contract every Notifier passes: each send reaches the far end once, carrying the
 * notification's id, type, alert and explanation; send reports success and never rejects.
 * `target` is the webhook target when the channel needs one.
 */
export function notifierContract(
  name: string,
  make: () => Promise<NotifierFixture & { target?: Outgoing['target'] }>,
): void {
  describe(`Notifier contract: ${name}`, () => {
    let fixture: NotifierFixture & { target?: Outgoing['target'] };

    beforeEach(async () => {
      fixture = await make();
    });
    afterEach(async () => {
      await fixture.close();
    });

    it('delivers each notification once with what explains it', async () => {
      const messages = [
        sampleMessage('n1'),
        sampleMessage('n2', {
          type: 'alert.resolved',
          summary: 'temperature on boiler-7 back below 85 for 10s (now 84); firing lasted 11m20s',
        }),
      ];
      for (const m of messages) {
        await expect(fixture.notifier.send(outgoing(m, fixture.target))).resolves.toMatchObject({
          ok: true,
        });
      }
      expect(await fixture.received()).toEqual(
        messages.map((m) => ({
          id: m.id,
          type: m.type,
          alertId: m.alert.id,
          device: m.alert.device,
          summary: m.summary,
        })),
      );
    });

    it('names its channel', () => {
      expect(['webhook', 'stream', 'log']).toContain(fixture.notifier.channel);
    });
  });
}
