import { describe, expect, it } from 'vitest';
import { BASELINE, capabilitiesOf, supportedTypes } from './capabilities.js';

describe('capabilities from the OpenAPI document', () => {
  it('lists the routes and the stream types the server offers', () => {
    const c = capabilitiesOf({
      paths: {
        '/api/v1/devices': { get: {} },
        '/api/v1/alerts': { get: {} },
        '/api/v1/stream': {
          get: {
            parameters: [
              { name: 'device', schema: { type: 'array', items: { type: 'string' } } },
              {
                name: 'types',
                schema: {
                  type: 'array',
                  items: { type: 'string', enum: ['readings', 'status', 'alerts'] },
                },
              },
            ],
          },
        },
      },
    });
    expect(c.paths.has('/api/v1/alerts')).toBe(true);
    expect(c.paths.has('/api/v1/rollouts')).toBe(false);
    expect([...c.streamTypes]).toEqual(['readings', 'status', 'alerts']);
    expect(supportedTypes(c, ['status', 'rollouts', 'alerts'])).toEqual(['status', 'alerts']);
  });

  it('assumes the first release when the document is unreadable', () => {
    expect(capabilitiesOf(null)).toBe(BASELINE);
    expect(capabilitiesOf({ paths: 'x' })).toBe(BASELINE);
    expect(capabilitiesOf({ paths: {} }).streamTypes).toBe(BASELINE.streamTypes);
  });
});
