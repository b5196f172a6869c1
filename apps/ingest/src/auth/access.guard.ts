import {
  type CanActivate,
  createParamDecorator,
  type ExecutionContext,
  Injectable,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyRequest } from 'fastify';
import type { DeviceSession } from '../broker/broker-auth.js';
import { Forbidden } from '../errors.js';
import { TokensService } from '../tokens/tokens.service.js';
import { ACCESS_METADATA, type AccessPolicy, mayCall, type Principal } from './access.js';
import { DeviceTokens } from './device-tokens.js';

type AuthedRequest = FastifyRequest & { principal?: Principal; device?: DeviceSession };

/** Applies each route's declared access policy; a route that declares none is refused. */
@Injectable()
export class AccessGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly tokens: TokensService,
    private readonly devices: DeviceTokens,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const policy = this.reflector.getAllAndOverride<AccessPolicy | undefined>(ACCESS_METADATA, [
      context.getHandler(),
      context.getClass(),
    ]);
    if (!policy) throw new Forbidden('this route declares no access policy', 'no_access_policy');
    if (policy.type === 'public') return true;
    const request = context.switchToHttp().getRequest<AuthedRequest>();
    if (policy.type === 'device') {
      request.device = await this.devices.authenticate(request.headers.authorization, request.ip);
      return true;
    }
    const principal = await this.tokens.authenticate(request.headers.authorization, request.ip);
    if (!mayCall(principal.roles, policy.roles)) {
      throw new Forbidden(`this needs the role ${policy.roles.join(' or ')}`, 'role_required');
    }
    request.principal = principal;
    return true;
  }
}

export const CurrentPrincipal = createParamDecorator(
  (_: unknown, context: ExecutionContext): Principal => {
    const principal = context.switchToHttp().getRequest<AuthedRequest>().principal;
    if (!principal) throw new Forbidden('no authenticated caller', 'no_principal');
    return principal;
  },
);

export const CurrentDevice = createParamDecorator(
  (_: unknown, context: ExecutionContext): DeviceSession => {
    const device = context.switchToHttp().getRequest<AuthedRequest>().device;
    if (!device) throw new Forbidden('no authenticated device', 'no_device');
    return device;
  },
);
