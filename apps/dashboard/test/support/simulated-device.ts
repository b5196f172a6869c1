import { randomBytes } from 'node:crypto';
import { topics } from '@outpost/protocol/topics';
import { signBatch } from '@outpost/signing/batch';
import { signDeviceJwt } from '@outpost/signing/device-jwt';
import { signEnrollmentProof } from '@outpost/signing/enrollment';
import { generateKeyPair, type KeyPair } from '@outpost/signing/keys';
import mqtt, { type MqttClient } from 'mqtt';

/** A JSON client of the ingest's API with one token. */
export type Api = (
  method: string,
  path: string,
  body?: unknown,
) => Promise<{ status: number; body: unknown }>;

export function apiClient(baseUrl: string, token: string): Api {
  return async (method, path, body) => {
    const res = await fetch(`${baseUrl}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: text ? (JSON.parse(text) as unknown) : undefined };
  };
}

export interface Reading {
  metric: string;
  value: number;
  unit?: string;
  /** Epoch milliseconds; now by default. */
  timeMs?: number;
}

/**
 * A device as firmware would be: enrolled through the API with its own key pair (proof of
 * possession, PROTOCOL.md §2), connected over MQTT with a device JWT, publishing signed
 * telemetry batches (§5) and its reported state (§6).
 */
export class SimulatedDevice {
  private client: MqttClient | undefined;
  private readonly boot = randomBytes(12).toString('base64url');
  private seq = 0;

  private constructor(
    readonly id: string,
    private readonly keys: KeyPair,
  ) {}

  static async enroll(
    api: Api,
    id: string,
    extra: { tags?: Record<string, string>; kind?: 'device' | 'gateway'; name?: string } = {},
  ): Promise<SimulatedDevice> {
    const created = await api('POST', '/api/v1/enrollments', { deviceId: id, ...extra });
    if (created.status !== 201)
      throw new Error(`enrollment of ${id}: ${JSON.stringify(created.body)}`);
    const { token, jti } = created.body as { token: string; jti: string };
    const keys = await generateKeyPair('EdDSA');
    const { token: proof } = await signEnrollmentProof(keys.privateJwk, { jti, deviceId: id });
    const enrolled = await api('POST', '/api/v1/enroll', {
      token,
      publicKey: keys.publicJwk,
      proof,
    });
    if (enrolled.status !== 201) throw new Error(`enroll ${id}: ${JSON.stringify(enrolled.body)}`);
    return new SimulatedDevice(id, keys);
  }

  /** Connects and stays connected: reconnects by itself when the broker goes away. */
  async connect(mqttUrl: string): Promise<void> {
    const { token } = await signDeviceJwt(this.keys.privateJwk, { deviceId: this.id });
    this.client = mqtt.connect(mqttUrl, {
      protocolVersion: 4,
      clientId: this.id,
      username: this.id,
      password: token,
      reconnectPeriod: 500,
      connectTimeout: 5000,
    });
    await new Promise<void>((resolve, reject) => {
      this.client!.once('connect', () => resolve());
      this.client!.once('error', reject);
    });
  }

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  async publishState(state: Record<string, unknown>): Promise<void> {
    await this.client!.publishAsync(topics.state(this.id), JSON.stringify({ v: 1, ...state }), {
      qos: 1,
      retain: true,
    });
  }

  /** One signed batch of readings of this device. */
  async publish(readings: readonly Reading[]): Promise<void> {
    if (readings.length === 0) return;
    const now = Date.now();
    const base = Math.floor((readings[0]!.timeMs ?? now) / 1000);
    const records = readings.map((r, i) => ({
      ...(i === 0 ? { bt: base } : {}),
      n: r.metric,
      ...(r.unit ? { u: r.unit } : {}),
      v: r.value,
      t: ((r.timeMs ?? now) - base * 1000) / 1000,
    }));
    const first = this.seq + 1;
    this.seq += records.length;
    const jws = await signBatch(this.keys.privateJwk, {
      v: 1,
      boot: this.boot,
      seq: [first, this.seq],
      records,
    });
    await this.client!.publishAsync(topics.telemetry(this.id), jws, { qos: 1 });
  }

  async close(): Promise<void> {
    await this.client?.endAsync(true);
  }
}
