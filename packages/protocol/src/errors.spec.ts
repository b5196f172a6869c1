import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { AppError, isAppError, isProtocolError, ProtocolError, parsePayload } from './errors.js';

describe('ProtocolError', () => {
  it('is an AppError of kind invalid, or too_large for limits', () => {
    const invalid = new ProtocolError('senml_name', 'bad name', { details: { index: 3 } });
    expect(invalid).toBeInstanceOf(AppError);
    expect(isAppError(invalid)).toBe(true);
    expect(isProtocolError(invalid)).toBe(true);
    expect(invalid).toMatchObject({
      name: 'ProtocolError',
      kind: 'invalid',
      code: 'senml_name',
      details: { index: 3 },
    });
    expect(new ProtocolError('too_many_records', 'x').kind).toBe('too_large');
    expect(isProtocolError(new AppError('invalid', 'x', 'x'))).toBe(false);
  });

  it('keeps its cause', () => {
    const cause = new Error('root');
    expect(new ProtocolError('payload_invalid', 'x', { cause }).cause).toBe(cause);
  });
});

describe('parsePayload', () => {
  const schema = z.object({ a: z.object({ b: z.number() }) });

  it('returns the parsed value', () => {
    expect(parsePayload(schema, { a: { b: 1 } })).toEqual({ a: { b: 1 } });
  });

  it('throws a ProtocolError listing paths and messages', () => {
    try {
      parsePayload(schema, { a: { b: 'x' } });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ProtocolError);
      expect(err).toMatchObject({
        code: 'payload_invalid',
        details: { issues: [{ path: 'a.b', message: expect.stringMatching(/number/) }] },
      });
      expect((err as Error).message).toContain('a.b');
    }
  });

  it('uses the code it is given and bounds the issue list', () => {
    const many = z.array(z.number());
    try {
      parsePayload(
        many,
        Array.from({ length: 50 }, () => 'x'),
        'senml_invalid',
      );
      expect.unreachable();
    } catch (err) {
      expect(err).toMatchObject({ code: 'senml_invalid' });
      expect((err as ProtocolError).details?.issues).toHaveLength(10);
    }
  });
});
