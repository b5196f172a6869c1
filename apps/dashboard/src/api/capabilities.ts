/**
 * What this server offers, read from its OpenAPI document (`/api/docs/openapi.json`, public):
 * which routes exist and which kinds of events the stream sends. Alerts and rollouts arrive
 * in releases of their own; a view whose route is missing shows an empty state, and the
 * stream is never asked for a type it would refuse.
 */
export interface Capabilities {
  paths: ReadonlySet<string>;
  streamTypes: ReadonlySet<string>;
}

/** Assumed when the document cannot be read: the API as first released. */
export const BASELINE: Capabilities = {
  paths: new Set(['/api/v1/devices', '/api/v1/devices/{id}', '/api/v1/stream']),
  streamTypes: new Set(['readings', 'status']),
};

interface OpenApiParameter {
  name?: string;
  schema?: JsonSchema;
}
interface JsonSchema {
  enum?: unknown[];
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
}

function enumValues(schema: JsonSchema | undefined, out: Set<string>): void {
  if (!schema) return;
  for (const v of schema.enum ?? []) if (typeof v === 'string') out.add(v);
  enumValues(schema.items, out);
  for (const s of schema.anyOf ?? []) enumValues(s, out);
  for (const s of schema.oneOf ?? []) enumValues(s, out);
}

export function capabilitiesOf(document: unknown): Capabilities {
  const paths = (document as { paths?: Record<string, Record<string, unknown>> })?.paths;
  if (!paths || typeof paths !== 'object') return BASELINE;
  const streamTypes = new Set<string>();
  const stream = paths['/api/v1/stream']?.get as { parameters?: OpenApiParameter[] } | undefined;
  for (const p of stream?.parameters ?? []) {
    if (p.name === 'types') enumValues(p.schema, streamTypes);
  }
  return {
    paths: new Set(Object.keys(paths)),
    streamTypes: streamTypes.size > 0 ? streamTypes : BASELINE.streamTypes,
  };
}

export async function loadCapabilities(
  fetchImpl: typeof fetch = (...a) => globalThis.fetch(...a),
): Promise<Capabilities> {
  try {
    const res = await fetchImpl('/api/docs/openapi.json', { cache: 'no-store' });
    if (!res.ok) return BASELINE;
    return capabilitiesOf(await res.json());
  } catch {
    return BASELINE;
  }
}

/** The requested stream types this server sends. */
export function supportedTypes(c: Capabilities, wanted: readonly string[]): string[] {
  return wanted.filter((t) => c.streamTypes.has(t));
}
