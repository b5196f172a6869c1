import type { SenmlRecord } from '@outpost/protocol/senml';
import { signDeviceJwt } from '@outpost/signing/device-jwt';
import { signEnrollmentProof } from '@outpost/signing/enrollment';
import { generateKeyPair, type PrivateJwk } from '@outpost/signing/keys';

/**
 * The simulated fleet: gateways with children, the 100-record batches they publish, and
 * their enrollment through the ingest's HTTP API (PROTOCOL.md §2) as a user would do it.
 */

/** Ten metrics of each child, with their SenML units. */
export const METRICS: readonly (readonly [metric: string, unit: string])[] = [
  ['temperature', 'Cel'],
  ['humidity', '%RH'],
  ['pressure', 'Pa'],
  ['co2', 'ppm'],
  ['voltage', 'V'],
  ['current', 'A'],
  ['power', 'W'],
  ['energy', 'J'],
  ['rssi', 'dBW'],
  ['battery', '%EL'],
];
export const CHILDREN_PER_GATEWAY = 10;
/** Every child reports every metric once per batch. */
export const READINGS_PER_BATCH = CHILDREN_PER_GATEWAY * METRICS.length;

export interface GatewayPlan {
  id: string;
  children: string[];
}

export function gatewayPlans(count: number, prefix: string): GatewayPlan[] {
  return Array.from({ length: count }, (_, g) => {
    const id = `${prefix}-${String(g + 1).padStart(4, '0')}`;
    return {
      id,
      children: Array.from({ length: CHILDREN_PER_GATEWAY }, (_, c) => `${id}-c${c}`),
    };
  });
}

/**
 * Batch `index` of a gateway: every child's ten metrics at one instant, `t0Ms + index` ms,
 * so each reading is a distinct (series, millisecond) and the store's count is exact.
 * Compressed as a gateway would send it: `bn` per child, `bt` once (RFC 8428 §4.5).
 */
export function batchRecords(plan: GatewayPlan, index: number, t0Ms: number): SenmlRecord[] {
  const records: SenmlRecord[] = [];
  plan.children.forEach((child, c) => {
    METRICS.forEach(([n, u], m) => {
      const v = ((index * 7 + c * 13 + m * 31) % 1000) / 10;
      const record: SenmlRecord = { n, u, v };
      if (m === 0) record.bn = `${child}/`;
      if (c === 0 && m === 0) record.bt = (t0Ms + index) / 1000;
      records.push(record);
    });
  });
  return records;
}

/** The ingest's HTTP API with the admin token. */
export class AdminApi {
  constructor(
    readonly url: string,
    private readonly token: string,
  ) {}

  async request<T = Record<string, unknown>>(
    method: string,
    path: string,
    body?: unknown,
    options: { anonymous?: boolean; expect?: number } = {},
  ): Promise<T> {
    const headers: Record<string, string> = {};
    if (!options.anonymous) headers.authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${this.url}${path}`, {
      method,
      headers,
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    if (res.status !== (options.expect ?? res.status) || res.status >= 400) {
      throw new Error(`${method} ${path} answered ${res.status}: ${text.slice(0, 500)}`);
    }
    return (text ? JSON.parse(text) : {}) as T;
  }

  /**
   * Text of `/metrics`, parsed into `name{labels}` → value, without the `service` label
   * every series carries (`name` alone when no other label is left).
   */
  async metrics(): Promise<Map<string, number>> {
    const res = await fetch(`${this.url}/metrics`);
    const out = new Map<string, number>();
    for (const line of (await res.text()).split('\n')) {
      if (line === '' || line.startsWith('#')) continue;
      const space = line.lastIndexOf(' ');
      const key = line
        .slice(0, space)
        .replace(/(service|replica)="[^"]*",?/g, '')
        .replace(/,}$/, '}')
        .replace(/\{\}$/, '');
      out.set(key, Number(line.slice(space + 1)));
    }
    return out;
  }
}

export interface EnrolledDevice {
  id: string;
  privateJwk: PrivateJwk;
  /** A device JWT for the MQTT password (PROTOCOL.md §3). */
  password: string;
}

/** Enrollment token, fresh key pair, proof of possession, enroll; then a device JWT. */
export async function enrollDevice(
  api: AdminApi,
  deviceId: string,
  extra: { kind?: 'device' | 'gateway'; tags?: Record<string, string> } = {},
): Promise<EnrolledDevice> {
  const created = await api.request<{ token: string; jti: string }>(
    'POST',
    '/api/v1/enrollments',
    { deviceId, ...extra },
    { expect: 201 },
  );
  const pair = await generateKeyPair('Ed25519');
  const { token: proof } = await signEnrollmentProof(pair.privateJwk, {
    jti: created.jti,
    deviceId,
  });
  await api.request(
    'POST',
    '/api/v1/enroll',
    { token: created.token, publicKey: pair.publicJwk, proof },
    { anonymous: true, expect: 201 },
  );
  const { token } = await signDeviceJwt(pair.privateJwk, { deviceId, lifetimeS: 4 * 3600 });
  return { id: deviceId, privateJwk: pair.privateJwk, password: token };
}

/** Runs `fn` over `items` with at most `limit` at a time; results in order. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
