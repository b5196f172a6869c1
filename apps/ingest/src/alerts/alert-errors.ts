import { AppError } from '@outpost/protocol/errors';

/** A well-formed rule that could never work, e.g. a clear limit on the wrong side. */
export class RuleImpossible extends AppError {
  constructor(readonly problems: readonly string[]) {
    super('invalid', 'rule_impossible', `rule refused: ${problems.join('; ')}`, {
      details: { problems },
    });
  }
}

export class AlertNotOpen extends AppError {
  constructor(id: string, status: string) {
    super(
      'conflict',
      'alert_not_open',
      `alert ${id} is ${status}: only open alerts are acknowledged`,
      {
        details: { id, status },
      },
    );
  }
}

export class TooManyRules extends AppError {
  constructor(max: number) {
    super('conflict', 'too_many_rules', `at most ${max} alert rules (INGEST_ALERT_MAX_RULES)`, {
      details: { max },
    });
  }
}
