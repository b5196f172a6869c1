import { readFile } from 'node:fs/promises';
import type { z } from 'zod';

/** What a small JSON state file held: nothing yet, something unreadable, or a valid value. */
export type JsonFileRead<T> =
  | { state: 'missing' }
  | { state: 'damaged' }
  | { state: 'ok'; value: T };

/**
 * Reads a JSON file the agent wrote itself (with writeFileAtomic) and checks it with its
 * schema. A missing file is not an error; a damaged one is told apart so the caller can log
 * it and start over from what it knows.
 */
export async function readJsonFile<S extends z.ZodType>(
  path: string,
  schema: S,
): Promise<JsonFileRead<z.output<S>>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return { state: 'missing' };
  }
  try {
    return { state: 'ok', value: schema.parse(JSON.parse(text)) };
  } catch {
    return { state: 'damaged' };
  }
}
