import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fakeClock } from '@outpost/test-kit/clock';
import { type InfluxDb1Handle, startInfluxDb1 } from '@outpost/test-kit/influxdb1';
import { freePort } from '@outpost/test-kit/ports';
import {
  startVictoriaMetrics,
  type VictoriaMetricsHandle,
} from '@outpost/test-kit/victoria-metrics';
import { useServices } from '@outpost/test-kit/vitest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  InfluxTelemetryStore,
  influxqlIdent,
  influxqlString,
  parseRetryAfter,
} from '../src/telemetry/influx-telemetry-store.js';
import { storedName } from '../src/telemetry/line-protocol.js';
import { telemetryStoreContract } from '../src/telemetry/telemetry-store.contract.js';
import {
  type SeriesRow,
  StoreRefused,
  StoreUnavailable,
  type TelemetryPoint,
} from '../src/telemetry/telemetry-store.js';

// Real: InfluxDB 1.x and VictoriaMetrics (test-kit), the official client's HTTP transport,
// a node:http stub for statuses the real servers will not produce on demand. Mocked: nothing.
const services = useServices();
let influx: InfluxDb1Handle;
let vm: VictoriaMetricsHandle;
let n = 0;

beforeAll(async () => {
  [influx, vm] = await Promise.all([
    services.add(startInfluxDb1()),
    // InfluxDB overwrites a point written twice; VictoriaMetrics needs dedup for the same.
    services.add(startVictoriaMetrics({ args: ['-dedup.minScrapeInterval=1ms'] })),
  ]);
});

telemetryStoreContract('InfluxDB 1.x (v1 API, InfluxQL)', async () => {
  const database = `telemetry_${++n}`;
  await influx.createDatabase(database);
  return new InfluxTelemetryStore({ url: influx.url, api: 'v1', database });
});

/** A MetricsQL label matcher value (Go string syntax, which JSON strings are part of). */
const label = (value: string): string => JSON.stringify(value);

telemetryStoreContract(
  'VictoriaMetrics (v2 write API, read back through /api/v1/export)',
  async () =>
    new InfluxTelemetryStore({ url: vm.url, api: 'v2', org: 'outpost', bucket: 'telemetry' }),
  {
    verify: {
      async points(device, metric, fromMs, toMs) {
        await vm.flush();
        const match = (field: string) =>
          `{__name__=${label(`${storedName(metric)}_${field}`)},device=${label(storedName(device))}}`;
        const series = await vm.exportSeries([match('value'), match('flag')], {
          start: fromMs / 1000,
          end: toMs / 1000,
        });
        const rows: SeriesRow[] = [];
        for (const s of series) {
          const isFlag = s.metric.__name__?.endsWith('_flag') === true;
          s.timestamps.forEach((timeMs, i) => {
            const v = s.values[i] ?? null;
            if (timeMs >= fromMs && timeMs < toMs)
              rows.push({ timeMs, value: isFlag ? v === 1 : v });
          });
        }
        return rows.sort((a, b) => a.timeMs - b.timeMs);
      },
      // VictoriaMetrics keeps no string values (a string field becomes a 0 sample, or the
      // line is dropped when the string holds a newline).
      shows: (value) => (typeof value === 'string' ? undefined : value),
    },
  },
);

describe('InfluxTelemetryStore on VictoriaMetrics', () => {
  it('writes tags as labels and the markers as their own series', async () => {
    const store = new InfluxTelemetryStore({ url: vm.url, api: 'v2', bucket: 'telemetry' });
    try {
      const t = 1_700_000_100_000;
      const tags = { site: `north, =east "x" it's`, line: 'a' };
      await store.write([
        {
          device: 'vm-tags',
          metric: 'temp',
          timeMs: t,
          value: 20.5,
          unit: 'Cel',
          tags,
          backfilled: true,
        },
        {
          device: 'vm-tags',
          metric: 'temp',
          timeMs: t + 1,
          value: 21,
          unit: 'Cel',
          tags,
          unsynced: true,
        },
      ]);
      await vm.flush();
      const [value] = await vm.exportSeries('{__name__="temp_value",device="vm-tags"}');
      expect(value?.metric).toEqual({
        __name__: 'temp_value',
        device: 'vm-tags',
        unit: 'Cel',
        t_site: tags.site,
        t_line: 'a',
      });
      expect(value?.values).toEqual([20.5, 21]);
      const [backfilled] = await vm.exportSeries('{__name__="temp_backfilled",device="vm-tags"}');
      expect(backfilled?.timestamps).toEqual([t]);
      const [unsynced] = await vm.exportSeries('{__name__="temp_unsynced",device="vm-tags"}');
      expect(unsynced?.timestamps).toEqual([t + 1]);
    } finally {
      await store.close();
    }
  });
});

describe('InfluxTelemetryStore on InfluxDB 1.x', () => {
  it('reports an unknown database as misconfigured, keeping the data for later', async () => {
    const store = new InfluxTelemetryStore({ url: influx.url, api: 'v1', database: 'missing' });
    try {
      const err = await store
        .write([{ device: 'd', metric: 'm', timeMs: 1, value: 1, tags: {} }])
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StoreUnavailable);
      expect(err).toMatchObject({
        code: 'store_misconfigured',
        message: /404.*database not found/,
      });
      await expect(store.latest('d')).rejects.toMatchObject({ code: 'store_misconfigured' });
    } finally {
      await store.close();
    }
  });

  it('reports a server that went away as unavailable, then works again', async () => {
    const own = await startInfluxDb1();
    const store = new InfluxTelemetryStore({
      url: own.url,
      api: 'v1',
      database: 'db',
      timeoutMs: 2_000,
    });
    try {
      await own.createDatabase('db');
      await own.kill9();
      await expect(store.ping()).rejects.toBeInstanceOf(StoreUnavailable);
      await expect(
        store.write([{ device: 'd', metric: 'm', timeMs: 1_000, value: 1, tags: {} }]),
      ).rejects.toMatchObject({ code: 'store_unavailable' });
      await own.restart();
      await store.write([{ device: 'd', metric: 'm', timeMs: 1_000, value: 1, tags: {} }]);
      expect(await store.latest('d')).toEqual([{ metric: 'm', timeMs: 1_000, value: 1 }]);
    } finally {
      await store.close();
      await own.stop();
    }
  });
});

interface Seen {
  method: string;
  url: string;
  authorization: string | undefined;
  body: string;
}

describe('InfluxTelemetryStore (stub HTTP server for error statuses)', () => {
  let server: Server;
  let base: string;
  const seen: Seen[] = [];
  /** The next answers, by path prefix; the default is 204. */
  let answer: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => {
    res.writeHead(204).end();
  };
  const clock = fakeClock(Date.UTC(2025, 0, 1));
  const point: TelemetryPoint = {
    device: 'd1',
    metric: 'temp',
    timeMs: 1_000,
    value: 1.5,
    tags: {},
  };
  const v2 = () =>
    new InfluxTelemetryStore({
      url: base,
      api: 'v2',
      token: 'secret-token',
      org: 'acme',
      bucket: 'telemetry',
      timeoutMs: 500,
      clock,
    });
  const status =
    (code: number, body: string, headers: Record<string, string> = {}) =>
    (_req: IncomingMessage, res: ServerResponse) => {
      res.writeHead(code, { 'content-type': 'application/json', ...headers }).end(body);
    };

  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => {
        body += chunk.toString();
      });
      req.on('end', () => {
        seen.push({
          method: req.method ?? '',
          url: req.url ?? '',
          authorization: req.headers.authorization,
          body,
        });
        answer(req, res);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  async function failure(store: InfluxTelemetryStore): Promise<unknown> {
    try {
      return await store.write([point]).then(
        () => 'written',
        (err: unknown) => err,
      );
    } finally {
      await store.close();
    }
  }

  it('posts hand-built lines to /api/v2/write with the token (v2)', async () => {
    answer = status(204, '');
    seen.length = 0;
    expect(await failure(v2())).toBe('written');
    expect(seen).toEqual([
      {
        method: 'POST',
        url: '/api/v2/write?bucket=telemetry&precision=ms&org=acme',
        authorization: 'Token secret-token',
        body: 'temp,device=d1 value=1.5 1000',
      },
    ]);
  });

  it('posts to /write?db= (v1)', async () => {
    answer = status(204, '');
    seen.length = 0;
    const store = new InfluxTelemetryStore({ url: base, api: 'v1', database: 'tele metry' });
    expect(await failure(store)).toBe('written');
    expect(seen[0]).toMatchObject({
      url: '/write?db=tele+metry&precision=ms',
      authorization: undefined,
    });
  });

  it('maps 400 to StoreRefused with the server message', async () => {
    answer = status(
      400,
      JSON.stringify({ code: 'invalid', message: 'unable to parse line 1: bad timestamp' }),
    );
    const err = await failure(v2());
    expect(err).toBeInstanceOf(StoreRefused);
    expect((err as Error).message).toBe(
      'write answered 400: unable to parse line 1: bad timestamp',
    );
  });

  it('maps 413 and 422 to StoreRefused, reading a v1 `error` body too', async () => {
    answer = status(413, JSON.stringify({ error: 'Request Entity Too Large' }));
    expect(await failure(v2())).toMatchObject({
      code: 'store_refused',
      message: 'write answered 413: Request Entity Too Large',
    });
    answer = status(422, 'points beyond retention policy', { 'content-type': 'text/plain' });
    expect(await failure(v2())).toMatchObject({
      code: 'store_refused',
      message: 'write answered 422: points beyond retention policy',
    });
  });

  it('maps 401, 403 and 404 to StoreUnavailable (misconfigured): the data is kept', async () => {
    for (const code of [401, 403, 404]) {
      answer = status(
        code,
        JSON.stringify({ code: 'unauthorized', message: 'unauthorized access' }),
      );
      const err = await failure(v2());
      expect(err, String(code)).toBeInstanceOf(StoreUnavailable);
      expect(err).toMatchObject({ kind: 'unavailable', code: 'store_misconfigured' });
    }
  });

  it('maps 429 with Retry-After: 7 to StoreUnavailable after 7 seconds (not milliseconds)', async () => {
    answer = status(429, JSON.stringify({ message: 'too many requests' }), { 'retry-after': '7' });
    const err = await failure(v2());
    expect(err).toBeInstanceOf(StoreUnavailable);
    expect(err).toMatchObject({ code: 'store_unavailable', retryAfterS: 7 });
  });

  it('maps 503 to StoreUnavailable, with or without a Retry-After HTTP-date', async () => {
    answer = status(503, 'service unavailable', { 'content-type': 'text/plain' });
    const plain = await failure(v2());
    expect(plain).toBeInstanceOf(StoreUnavailable);
    expect((plain as StoreUnavailable).retryAfterS).toBeUndefined();
    expect((plain as Error).message).toBe('write answered 503: service unavailable');
    const at = new Date(clock.now() + 30_000).toUTCString();
    answer = status(503, '', { 'retry-after': at });
    expect(await failure(v2())).toMatchObject({ code: 'store_unavailable', retryAfterS: 30 });
  });

  it('maps a timeout and a refused connection to StoreUnavailable', async () => {
    answer = () => {}; // never answers
    expect(await failure(v2())).toMatchObject({ code: 'store_unavailable', message: /timed out/i });
    const closed = new InfluxTelemetryStore({
      url: `http://127.0.0.1:${await freePort()}`,
      api: 'v1',
      database: 'x',
    });
    expect(await failure(closed)).toMatchObject({
      code: 'store_unavailable',
      message: /ECONNREFUSED/,
    });
  });

  it('maps the same statuses on queries, and quotes every name it sends', async () => {
    answer = status(401, JSON.stringify({ error: 'authorization failed' }));
    const store = new InfluxTelemetryStore({ url: base, api: 'v1', database: 'db' });
    try {
      await expect(store.latest('d1')).rejects.toMatchObject({ code: 'store_misconfigured' });
      answer = status(200, JSON.stringify({ results: [{ statement_id: 0 }] }));
      seen.length = 0;
      await store.query({
        device: `x' OR "device" =~ /.*/ OR 'a\\`,
        metric: 'te"mp',
        fromMs: 0,
        toMs: 10,
        limit: 5,
      });
      const q = new URL(seen[0]!.url, base).searchParams;
      expect(q.get('db')).toBe('db');
      expect(q.get('epoch')).toBe('ms');
      expect(q.get('q')).toBe(
        `SELECT "value","text","flag" FROM "te\\"mp" WHERE "device" = 'x\\' OR "device" =~ /.*/ OR \\'a\uFF3C' AND time >= 0ms AND time < 10ms ORDER BY time ASC LIMIT 5`,
      );
    } finally {
      await store.close();
    }
  });

  it('refuses a point it cannot write without sending anything', async () => {
    seen.length = 0;
    const store = v2();
    try {
      await expect(store.write([point, { ...point, value: Number.NaN }])).rejects.toBeInstanceOf(
        StoreRefused,
      );
      expect(seen).toEqual([]);
    } finally {
      await store.close();
    }
  });
});

describe('InfluxQL quoting and Retry-After', () => {
  it('escapes identifiers and string literals', () => {
    expect(influxqlIdent('a"b\\c')).toBe('"a\\"b\\\\c"');
    expect(influxqlString(`it's a\\b`)).toBe(`'it\\'s a\\\\b'`);
  });

  it('reads Retry-After as seconds or an HTTP-date', () => {
    const now = Date.UTC(2025, 0, 1);
    expect(parseRetryAfter('7', now)).toBe(7);
    expect(parseRetryAfter(' 120 ', now)).toBe(120);
    expect(parseRetryAfter(new Date(now + 90_500).toUTCString(), now)).toBe(90);
    expect(parseRetryAfter(new Date(now - 5_000).toUTCString(), now)).toBe(0);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
    expect(parseRetryAfter('-3', now)).toBeUndefined();
  });
});
