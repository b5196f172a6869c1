import type { EnrollmentRequest } from '@outpost/protocol/enrollment';
import { z } from 'zod';

/**
 * The few calls of the Outpost HTTP API a simulated device or fleet makes (PROTOCOL.md §2):
 * create an enrollment (admin token), enroll (public), set a device's payload signing policy.
 */

const enrollmentCreatedSchema = z.looseObject({ token: z.string().min(1), jti: z.string().min(1) });
export type EnrollmentCreated = z.infer<typeof enrollmentCreatedSchema>;

/** PROTOCOL.md §2 step 3: what enrollment returns (only the parts a device uses). */
export const enrollReplySchema = z.looseObject({
  device: z.looseObject({ id: z.string() }),
  kid: z.string(),
  endpoints: z.looseObject({
    http: z.string(),
    mqtt: z.looseObject({ host: z.string().min(1), port: z.int().positive() }),
  }),
  audience: z.string().min(1),
  jwks: z.looseObject({ keys: z.array(z.unknown()) }),
});
export type EnrollReply = z.infer<typeof enrollReplySchema>;

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export class OutpostApi {
  readonly #base: string;
  readonly #adminToken: string | undefined;

  /** `server`: the service's HTTP URL; `adminToken` for the calls that need a role. */
  constructor(server: string, adminToken?: string) {
    this.#base = server.replace(/\/+$/, '');
    this.#adminToken = adminToken;
  }

  createEnrollment(deviceId: string): Promise<EnrollmentCreated> {
    return this.#call('POST', '/api/v1/enrollments', { deviceId }, enrollmentCreatedSchema, true);
  }

  enroll(request: EnrollmentRequest): Promise<EnrollReply> {
    return this.#call('POST', '/api/v1/enroll', request, enrollReplySchema, false);
  }

  async setPayloadSigning(deviceId: string, payloadSigning: 'required' | 'optional') {
    await this.#call(
      'PATCH',
      `/api/v1/devices/${encodeURIComponent(deviceId)}`,
      { policy: { payloadSigning } },
      z.unknown(),
      true,
    );
  }

  async #call<T>(
    method: string,
    path: string,
    body: unknown,
    schema: z.ZodType<T>,
    admin: boolean,
  ): Promise<T> {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (admin) {
      if (this.#adminToken === undefined) {
        throw new ApiError(0, `${method} ${path} needs an admin token (--admin-token)`);
      }
      headers.authorization = `Bearer ${this.#adminToken}`;
    }
    let response: Response;
    try {
      response = await fetch(`${this.#base}${path}`, {
        method,
        headers,
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(30_000),
      });
    } catch (err) {
      // fetch says only "fetch failed"; the reason (ECONNREFUSED, …) is its cause.
      const cause = (err as { cause?: { message?: string } }).cause?.message;
      throw new ApiError(0, `${method} ${this.#base}${path}: ${cause ?? (err as Error).message}`);
    }
    const text = await response.text();
    if (!response.ok) {
      // RFC 9457 problem details: the `detail` (or `title`) says what went wrong.
      let reason = text.slice(0, 300);
      try {
        const problem = JSON.parse(text) as { detail?: unknown; title?: unknown };
        reason = String(problem.detail ?? problem.title ?? reason);
      } catch {}
      throw new ApiError(response.status, `${method} ${path}: ${response.status} ${reason}`);
    }
    const parsed = schema.safeParse(text === '' ? undefined : JSON.parse(text));
    if (!parsed.success) {
      throw new ApiError(response.status, `${method} ${path}: unexpected reply shape`);
    }
    return parsed.data;
  }
}
