import { type ArgumentsHost, Catch, type ExceptionFilter, HttpException } from '@nestjs/common';
import { AppError, type ErrorKind } from '@outpost/protocol/errors';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { RateLimited } from '../errors.js';

/** The one place where errors become HTTP: RFC 9457 problem details. */
export const STATUS_BY_KIND: Record<ErrorKind, number> = {
  invalid: 400,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  too_large: 413,
  rate_limited: 429,
  unavailable: 503,
  internal: 500,
};

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  instance?: string;
  [extension: string]: unknown;
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** Errors Nest or Fastify raise before our code runs (unreadable JSON, unknown route…). */
const HTTP_CODES: Record<number, string> = {
  400: 'bad_request',
  404: 'route_not_found',
  405: 'method_not_allowed',
  413: 'body_too_large',
  415: 'unsupported_media_type',
};

export function problemFor(err: unknown): Problem {
  if (err instanceof AppError) {
    const status = STATUS_BY_KIND[err.kind];
    return {
      type: `urn:outpost:problem:${err.code}`,
      title: TITLES[status] ?? 'Error',
      status,
      detail: status >= 500 && err.kind === 'internal' ? 'internal error' : err.message,
      code: err.code,
      ...(err.details ?? {}),
    };
  }
  if (err instanceof HttpException) {
    const status = err.getStatus();
    const code = HTTP_CODES[status] ?? `http_${status}`;
    return {
      type: `urn:outpost:problem:${code}`,
      title: TITLES[status] ?? 'Error',
      status,
      detail: status === 404 ? 'no such route' : err.message,
      code,
    };
  }
  // Errors raised by fastify itself (body parsing, size limits, content type).
  const fe = err as { statusCode?: unknown; code?: unknown; message?: unknown };
  if (typeof fe?.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    const status = fe.statusCode;
    const code =
      fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE'
        ? 'body_too_large'
        : fe.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE'
          ? 'unsupported_media_type'
          : 'bad_request';
    return {
      type: `urn:outpost:problem:${code}`,
      title: TITLES[status] ?? 'Error',
      status,
      detail: typeof fe.message === 'string' ? fe.message : 'bad request',
      code,
    };
  }
  return {
    type: 'urn:outpost:problem:internal',
    title: TITLES[500]!,
    status: 500,
    detail: 'internal error',
    code: 'internal',
  };
}

@Catch()
export class ProblemDetailsFilter implements ExceptionFilter {
  constructor(private readonly log: Logger) {}

  catch(err: unknown, host: ArgumentsHost): void {
    const ctx = host.switchToHttp();
    const reply = ctx.getResponse<FastifyReply>();
    const request = ctx.getRequest<FastifyRequest>();
    const problem = problemFor(err);
    if (problem.status >= 500) {
      this.log.error({ err, method: request.method, url: request.url }, 'request failed');
    }
    if (err instanceof RateLimited) reply.header('retry-after', String(err.retryAfterS));
    if (problem.status === 401) reply.header('www-authenticate', 'Bearer');
    void reply
      .status(problem.status)
      .header('content-type', 'application/problem+json')
      .send({ ...problem, instance: request.url.split('?')[0] });
  }
}
