import { deviceIdSchema, deviceKindSchema } from '@outpost/protocol/ids';
import { tagsSchema } from '@outpost/protocol/tags';
import { parse as parseCsv } from 'csv-parse/sync';
import { z } from 'zod';
import type { NewDevice } from '../registry/registry-store.js';
import { deviceNameSchema, policySchema } from './device-schemas.js';

/**
 * Bulk import, validated whole before anything is written. Pure: parsing and checks only;
 * the service asks the registry about gateways and writes in one transaction.
 *
 * CSV: a header row with `id` and any of `kind,name,gateway,tags,payload_signing`; `tags` is
 * `k=v;k=v`. Columns named `tag.<key>` add one tag each. JSON: an array of objects (or
 * `{devices: [...]}`) with `id, kind?, name?, gateway?, tags?, policy?`.
 */

export interface ImportError {
  /** 1-based line of the CSV file (the header is line 1), or 1-based index of a JSON item. */
  line: number;
  id?: string;
  message: string;
}

export type ImportPlan =
  | {
      ok: true;
      devices: NewDevice[];
      gatewaysToCheck: string[];
      lineOf: ReadonlyMap<string, number>;
    }
  | { ok: false; errors: ImportError[]; errorCount: number };

const MAX_REPORTED_ERRORS = 100;

const rowSchema = z.strictObject({
  id: deviceIdSchema,
  kind: deviceKindSchema.default('device'),
  name: deviceNameSchema.optional(),
  gateway: deviceIdSchema.optional(),
  tags: tagsSchema.default({}),
  policy: policySchema.optional(),
});

const CSV_COLUMNS = new Set(['id', 'kind', 'name', 'gateway', 'tags', 'payload_signing']);

function csvRows(text: string, errors: ImportError[]): { line: number; value: unknown }[] {
  let records: { record: Record<string, string>; info: { lines: number } }[];
  try {
    records = parseCsv(text, {
      columns: (header: string[]) => header.map((h) => h.trim()),
      skip_empty_lines: true,
      trim: true,
      bom: true,
      info: true,
      max_record_size: 64 * 1024,
    });
  } catch (err) {
    const e = err as { lines?: number; message?: string };
    errors.push({ line: e.lines ?? 1, message: `CSV: ${e.message ?? 'unreadable'}` });
    return [];
  }
  const first = records[0]?.record;
  if (first) {
    const unknown = Object.keys(first).filter((c) => !CSV_COLUMNS.has(c) && !c.startsWith('tag.'));
    if (unknown.length > 0) {
      errors.push({ line: 1, message: `unknown column(s): ${unknown.join(', ')}` });
      return [];
    }
    if (!('id' in first)) {
      errors.push({ line: 1, message: 'the header needs an "id" column' });
      return [];
    }
  }
  return records.map(({ record, info }) => {
    const tags: Record<string, string> = {};
    const tagProblems: string[] = [];
    for (const pair of (record.tags ?? '').split(';').filter((p) => p.trim() !== '')) {
      const i = pair.indexOf('=');
      if (i <= 0) tagProblems.push(`tag "${pair}" is not key=value`);
      else tags[pair.slice(0, i).trim()] = pair.slice(i + 1).trim();
    }
    for (const [col, v] of Object.entries(record)) {
      if (col.startsWith('tag.') && v !== '') tags[col.slice(4)] = v;
    }
    const value: Record<string, unknown> = { id: record.id, tags };
    if (record.kind) value.kind = record.kind;
    if (record.name) value.name = record.name;
    if (record.gateway) value.gateway = record.gateway;
    if (record.payload_signing) value.policy = { payloadSigning: record.payload_signing };
    if (tagProblems.length > 0) value.__tagProblems = tagProblems;
    return { line: info.lines, value };
  });
}

function jsonRows(value: unknown, errors: ImportError[]): { line: number; value: unknown }[] {
  const list = Array.isArray(value)
    ? value
    : ((value as { devices?: unknown } | null)?.devices ?? null);
  if (!Array.isArray(list)) {
    errors.push({ line: 1, message: 'expected a JSON array of devices or {"devices": [...]}' });
    return [];
  }
  return list.map((v, i) => ({ line: i + 1, value: v }));
}

export function planImport(
  input: { csv: string } | { json: unknown },
  maxRows: number,
): ImportPlan {
  const errors: ImportError[] = [];
  const rows = 'csv' in input ? csvRows(input.csv, errors) : jsonRows(input.json, errors);
  if (errors.length === 0 && rows.length === 0) {
    errors.push({ line: 1, message: 'no devices to import' });
  }
  if (rows.length > maxRows) {
    errors.push({ line: 1, message: `at most ${maxRows} devices per import (got ${rows.length})` });
  }
  if (errors.length > 0) return { ok: false, errors, errorCount: errors.length };

  let errorCount = 0;
  const fail = (e: ImportError) => {
    errorCount++;
    if (errors.length < MAX_REPORTED_ERRORS) errors.push(e);
  };
  const devices: NewDevice[] = [];
  const lineOf = new Map<string, number>();
  for (const { line, value } of rows) {
    const tagProblems = (value as { __tagProblems?: string[] }).__tagProblems;
    if (tagProblems) {
      const id = (value as { id?: unknown }).id;
      for (const m of tagProblems)
        fail({ line, ...(typeof id === 'string' ? { id } : {}), message: m });
      continue;
    }
    const parsed = rowSchema.safeParse(value);
    if (!parsed.success) {
      const id = (value as { id?: unknown } | null)?.id;
      for (const issue of parsed.error.issues.slice(0, 5)) {
        fail({
          line,
          ...(typeof id === 'string' ? { id: id.slice(0, 80) } : {}),
          message: `${issue.path.join('.') || 'row'}: ${issue.message}`,
        });
      }
      continue;
    }
    const d = parsed.data;
    const previous = lineOf.get(d.id);
    if (previous !== undefined) {
      fail({ line, id: d.id, message: `duplicate id (also on line ${previous})` });
      continue;
    }
    if (d.gateway === d.id) {
      fail({ line, id: d.id, message: 'a device cannot be its own gateway' });
      continue;
    }
    lineOf.set(d.id, line);
    devices.push({
      id: d.id,
      kind: d.kind,
      name: d.name ?? null,
      tags: d.tags,
      gateway: d.gateway ?? null,
      ...(d.policy ? { policy: d.policy } : {}),
    });
  }
  // Gateways named in the file must be gateways there; others must exist in the registry.
  const kindInFile = new Map(devices.map((d) => [d.id, d.kind]));
  const gatewaysToCheck = new Set<string>();
  for (const d of devices) {
    if (!d.gateway) continue;
    const k = kindInFile.get(d.gateway);
    if (k === undefined) gatewaysToCheck.add(d.gateway);
    else if (k !== 'gateway') {
      fail({
        line: lineOf.get(d.id)!,
        id: d.id,
        message: `gateway ${d.gateway} is not of kind gateway`,
      });
    }
  }
  if (errorCount > 0) return { ok: false, errors, errorCount };
  return { ok: true, devices, gatewaysToCheck: [...gatewaysToCheck], lineOf };
}
