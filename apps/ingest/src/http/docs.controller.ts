import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Controller, Get, Header, Inject, Param, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { Public } from '../auth/access.js';
import { NotFound } from '../errors.js';

export const OPENAPI_DOCUMENT = Symbol('OPENAPI_DOCUMENT');

const ASSETS: Record<string, string> = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
};
const uiDir = dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));

const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Outpost API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/api/docs/assets/swagger-ui.css"></head>
<body><div id="ui"></div><script src="/api/docs/assets/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({ url: '/api/docs/openapi.json', dom_id: '#ui' });</script></body></html>`;

/** OpenAPI document and a browser UI, served from local files only. */
@Controller('api/docs')
@Public()
export class DocsController {
  private readonly assets = new Map<string, Buffer>();

  constructor(@Inject(OPENAPI_DOCUMENT) private readonly document: Record<string, unknown>) {}

  @Get()
  @Header('content-type', 'text/html; charset=utf-8')
  page(): string {
    return PAGE;
  }

  @Get('openapi.json')
  openapi(): Record<string, unknown> {
    return this.document;
  }

  @Get('assets/:name')
  @Header('cache-control', 'public, max-age=3600')
  asset(@Param('name') name: string, @Res({ passthrough: true }) reply: FastifyReply): Buffer {
    // Only the listed file names are served: a name is never used as a path.
    if (!Object.hasOwn(ASSETS, name)) throw new NotFound('asset', name);
    let body = this.assets.get(name);
    if (!body) {
      body = readFileSync(join(uiDir, name));
      this.assets.set(name, body);
    }
    void reply.header('content-type', ASSETS[name]);
    return body;
  }
}
