/**
 * One versioned schema change. Each store keeps its lists (one per dialect) in its
 * `*-migrations.ts`, append only, and records what it applied in its own table.
 */
export interface SchemaMigration {
  readonly version: number;
  readonly sql: string;
}
