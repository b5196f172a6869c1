import { Controller, Delete, Get, Post, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { z } from 'zod';
import { CurrentPrincipal } from '../auth/access.guard.js';
import { type Principal, Roles } from '../auth/access.js';
import { ApiDoc } from '../http/openapi.js';
import { ZBody, ZParam } from '../http/zod.js';
import {
  kidSchema,
  type RegisterReleaseKey,
  registerReleaseKeySchema,
  releaseKeyViewSchema,
} from './ota-schemas.js';
import { ReleaseKeysService } from './release-keys.service.js';

@Controller('api/v1/release-keys')
@Roles('firmware')
export class ReleaseKeysController {
  constructor(private readonly releaseKeys: ReleaseKeysService) {}

  @Post()
  @ApiDoc({
    summary: 'Trust a release key (its public JWK) for firmware manifests (PROTOCOL.md §1)',
    description:
      'Devices receive the trusted keys at enrollment and in a `keys.release` command when the set changes. 201 when added, 200 when already trusted.',
    body: registerReleaseKeySchema,
    response: releaseKeyViewSchema,
  })
  async register(
    @ZBody(registerReleaseKeySchema) body: RegisterReleaseKey,
    @CurrentPrincipal() caller: Principal,
    @Res({ passthrough: true }) reply: FastifyReply,
  ) {
    const { created, key } = await this.releaseKeys.register(body, caller);
    reply.status(created ? 201 : 200);
    return key;
  }

  @Get()
  @ApiDoc({
    summary: 'Release keys, revoked ones included',
    response: z.array(releaseKeyViewSchema),
  })
  list() {
    return this.releaseKeys.list();
  }

  @Delete(':kid')
  @ApiDoc({
    summary: 'Stop trusting a release key (never the last one); devices are told at once',
    response: releaseKeyViewSchema,
  })
  revoke(@ZParam('kid', kidSchema) kid: string, @CurrentPrincipal() caller: Principal) {
    return this.releaseKeys.revoke(kid, caller);
  }
}
