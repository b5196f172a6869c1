import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';
import { LOGGER } from '../../injection.js';
import { PAGING_EVENTS } from '../notification.js';
import type { Notifier, Outgoing, SendResult } from './notifier.js';

/**
 * Alert transitions in the service log, with stable keys. Transitions are rare (never per
 * reading); pending and cancelled are logged at debug, the rest at info.
 */
@Injectable()
export class LogNotifier implements Notifier {
  readonly channel = 'log' as const;
  private readonly log: Logger;

  constructor(@Inject(LOGGER) logger: Logger) {
    this.log = logger.child({ module: 'alerts' });
  }

  async send({ message }: Outgoing): Promise<SendResult> {
    const fields = {
      notificationId: message.id,
      event: message.type,
      alertId: message.alert.id,
      ruleId: message.alert.ruleId,
      deviceId: message.alert.device,
      severity: message.alert.severity,
    };
    if (PAGING_EVENTS.has(message.type)) this.log.info(fields, message.summary);
    else this.log.debug(fields, message.summary);
    return { ok: true, status: null };
  }
}
