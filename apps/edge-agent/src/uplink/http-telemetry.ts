import { telemetryRejectionReasonSchema } from '@outpost/protocol/telemetry';
import { type HttpFetch, type HttpResponse, nodeHttpFetch } from '../http/node-http-fetch.js';
import type { DeviceTokens } from './device-token.js';

/**
 * The HTTP fallback (PROTOCOL.md §5): `POST /api/v1/telemetry` with the device JWT as bearer
 * and the signed batch as `application/jose`. The ingest answers once the batch is durably
 * accepted (200), or refuses it for good with a problem whose `code` is `telemetry_<reason>`.
 */
export type HttpSendResult =
  | { kind: 'acked' }
  | { kind: 'rejected'; reason: string; detail: string | undefined };

export class TransientSendError extends Error {}

export interface HttpTelemetryOptions {
  server: string;
  tokens: DeviceTokens;
  fetch?: HttpFetch;
  timeoutMs?: number;
}

export class HttpTelemetry {
  readonly #url: string;
  readonly #o: HttpTelemetryOptions;

  constructor(options: HttpTelemetryOptions) {
    this.#o = options;
    this.#url = new URL('/api/v1/telemetry', options.server).toString();
  }

  async send(jws: string): Promise<HttpSendResult> {
    const doFetch = this.#o.fetch ?? nodeHttpFetch;
    const { token } = await this.#o.tokens.current();
    let res: HttpResponse;
    try {
      res = await doFetch(this.#url, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/jose' },
        body: jws,
        signal: AbortSignal.timeout(this.#o.timeoutMs ?? 30_000),
      });
    } catch (cause) {
      throw new TransientSendError('ingest unreachable over HTTP', { cause });
    }
    const text = await res.text();
    if (res.ok) return { kind: 'acked' };
    const problem = parseProblem(text);
    const reason = problem.code?.startsWith('telemetry_')
      ? telemetryRejectionReasonSchema.safeParse(problem.code.slice('telemetry_'.length))
      : undefined;
    if (reason?.success && res.status >= 400 && res.status < 500) {
      return { kind: 'rejected', reason: reason.data, detail: problem.detail };
    }
    if (res.status === 401) this.#o.tokens.invalidate();
    throw new TransientSendError(
      `HTTP ${res.status} ${problem.code ?? ''} ${problem.detail ?? ''}`.trim(),
    );
  }
}

function parseProblem(text: string): { code?: string; detail?: string } {
  try {
    const body = JSON.parse(text) as { code?: unknown; detail?: unknown };
    return {
      ...(typeof body.code === 'string' ? { code: body.code } : {}),
      ...(typeof body.detail === 'string' ? { detail: body.detail.slice(0, 500) } : {}),
    };
  } catch {
    return {};
  }
}
