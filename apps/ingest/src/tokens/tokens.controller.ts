import { Controller, Delete, Get, Post } from '@nestjs/common';
import { z } from 'zod';
import { CurrentPrincipal } from '../auth/access.guard.js';
import { type Principal, Roles } from '../auth/access.js';
import { ApiDoc } from '../http/openapi.js';
import { ZBody, ZParam } from '../http/zod.js';
import {
  type CreateToken,
  createTokenSchema,
  issuedTokenSchema,
  tokenIdSchema,
  tokenViewSchema,
} from './token-schemas.js';
import { TokensService } from './tokens.service.js';

@Controller('api/v1/tokens')
@Roles('admin')
export class TokensController {
  constructor(private readonly tokens: TokensService) {}

  @Post()
  @ApiDoc({
    summary: 'Issue an API token (shown once)',
    body: createTokenSchema,
    response: issuedTokenSchema,
  })
  issue(@ZBody(createTokenSchema) body: CreateToken, @CurrentPrincipal() caller: Principal) {
    return this.tokens.issue(body, caller.tokenId);
  }

  @Get()
  @ApiDoc({ summary: 'List API tokens', response: z.array(tokenViewSchema) })
  list() {
    return this.tokens.list();
  }

  @Delete(':id')
  @ApiDoc({ summary: 'Revoke an API token', response: tokenViewSchema, responseStatus: 200 })
  revoke(@ZParam('id', tokenIdSchema) id: string) {
    return this.tokens.revoke(id);
  }
}
