import { Body, Param, type PipeTransform, Query } from '@nestjs/common';
import type { z } from 'zod';
import { InvalidInput } from '../errors.js';

/** HTTP input is parsed once, here, with the protocol's zod schemas. */
export class ZodPipe<S extends z.ZodType> implements PipeTransform<unknown, z.infer<S>> {
  constructor(
    readonly schema: S,
    private readonly where: 'body' | 'query' | 'path',
  ) {}

  transform(value: unknown): z.infer<S> {
    return parseInput(this.schema, value, this.where);
  }
}

export function parseInput<S extends z.ZodType>(
  schema: S,
  value: unknown,
  where: string,
): z.infer<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const errors = result.error.issues.slice(0, 50).map((i) => ({
    path: [where, ...i.path.map(String)].join('.'),
    message: i.message,
  }));
  throw new InvalidInput(
    `invalid ${where}: ${errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`,
    errors,
  );
}

export const ZBody = (schema: z.ZodType) => Body(new ZodPipe(schema, 'body'));
export const ZQuery = (schema: z.ZodType) => Query(new ZodPipe(schema, 'query'));
export const ZParam = (name: string, schema: z.ZodType) => Param(name, new ZodPipe(schema, 'path'));
