import { RequestMethod, SetMetadata, type Type } from '@nestjs/common';
import { METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants.js';
import { z } from 'zod';
import { ACCESS_METADATA, type AccessPolicy } from '../auth/access.js';

/** Route documentation, declared next to the route, from the same zod schemas that parse it. */
export interface RouteDoc {
  summary: string;
  description?: string;
  body?: z.ZodType;
  /** Non-JSON request bodies (e.g. `text/csv`); documented as strings. */
  bodyContentTypes?: readonly string[];
  query?: z.ZodObject;
  response?: z.ZodType;
  responseStatus?: number;
  tag?: string;
}

const DOC_METADATA = 'outpost:doc';
export const ApiDoc = (doc: RouteDoc) => SetMetadata(DOC_METADATA, doc);

type JsonSchema = Record<string, unknown>;

function schemaOf(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(schema, {
    io,
    unrepresentable: 'any',
  }) as JsonSchema;
  return rest;
}

const METHODS: Partial<Record<RequestMethod, string>> = {
  [RequestMethod.GET]: 'get',
  [RequestMethod.POST]: 'post',
  [RequestMethod.PUT]: 'put',
  [RequestMethod.PATCH]: 'patch',
  [RequestMethod.DELETE]: 'delete',
};

function joinPath(base: string, sub: string): string {
  const parts = [base, sub].flatMap((p) => p.split('/')).filter((p) => p.length > 0);
  return `/${parts.map((p) => (p.startsWith(':') ? `{${p.slice(1)}}` : p)).join('/')}`;
}

/** Builds the OpenAPI 3.1 document from the controllers' route metadata. */
export function buildOpenApi(controllers: readonly Type[], version: string): JsonSchema {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const controller of controllers) {
    const base = String(Reflect.getMetadata(PATH_METADATA, controller) ?? '');
    const proto = controller.prototype as Record<string, unknown>;
    for (const name of Object.getOwnPropertyNames(proto)) {
      const handler = proto[name];
      if (name === 'constructor' || typeof handler !== 'function') continue;
      const method = METHODS[Reflect.getMetadata(METHOD_METADATA, handler) as RequestMethod];
      const sub = Reflect.getMetadata(PATH_METADATA, handler) as string | undefined;
      if (!method || sub === undefined) continue;
      const doc = Reflect.getMetadata(DOC_METADATA, handler) as RouteDoc | undefined;
      if (!doc) continue;
      const access = (Reflect.getMetadata(ACCESS_METADATA, handler) ??
        Reflect.getMetadata(ACCESS_METADATA, controller)) as AccessPolicy | undefined;
      const path = joinPath(base, sub);
      const params = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => ({
        name: m[1],
        in: 'path',
        required: true,
        schema: { type: 'string' },
      }));
      const query = doc.query
        ? Object.entries(doc.query.shape).map(([qname, s]) => ({
            name: qname,
            in: 'query',
            required: !(s as z.ZodType).safeParse(undefined).success,
            schema: schemaOf(s as z.ZodType, 'input'),
          }))
        : [];
      const content: Record<string, unknown> = {};
      if (doc.body) content['application/json'] = { schema: schemaOf(doc.body, 'input') };
      for (const ct of doc.bodyContentTypes ?? []) content[ct] = { schema: { type: 'string' } };
      paths[path] ??= {};
      paths[path][method] = {
        summary: doc.summary,
        ...(doc.description ? { description: doc.description } : {}),
        tags: [doc.tag ?? base.split('/').filter(Boolean).at(-1) ?? 'service'],
        operationId: `${controller.name.replace(/Controller$/, '')}_${name}`,
        parameters: [...params, ...query],
        ...(Object.keys(content).length > 0 ? { requestBody: { required: true, content } } : {}),
        ...(access?.type === 'api'
          ? { security: [{ apiToken: [] }], 'x-roles': access.roles }
          : access?.type === 'device'
            ? { security: [{ deviceJwt: [] }] }
            : { security: [] }),
        responses: {
          [String(doc.responseStatus ?? (method === 'post' ? 201 : 200))]: {
            description: 'success',
            ...(doc.response
              ? { content: { 'application/json': { schema: schemaOf(doc.response, 'output') } } }
              : {}),
          },
          default: {
            description: 'RFC 9457 problem details',
            content: {
              'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } },
            },
          },
        },
      };
    }
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Outpost API',
      version,
      description:
        'HTTP API of the Outpost ingestion service. Errors are RFC 9457 problem details.',
    },
    paths,
    components: {
      securitySchemes: {
        apiToken: { type: 'http', scheme: 'bearer', bearerFormat: 'outpost-api+jwt' },
        deviceJwt: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
      },
      schemas: {
        Problem: {
          type: 'object',
          required: ['type', 'title', 'status', 'detail', 'code'],
          properties: {
            type: { type: 'string' },
            title: { type: 'string' },
            status: { type: 'integer' },
            detail: { type: 'string' },
            code: { type: 'string' },
            instance: { type: 'string' },
          },
        },
      },
    },
  };
}
