/**
 * Static checks of deploy/: nothing here needs Docker or a cluster. Every YAML and JSON file
 * parses cleanly; compose, Kubernetes and HAProxy files have the parts that matter; every
 * INGEST_* and AGENT_* variable set anywhere in deploy/ is one the apps actually read.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { z } from 'zod';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const DEPLOY = join(ROOT, 'deploy');

function walk(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((name) => {
      const path = join(dir, name);
      return statSync(path).isDirectory() ? walk(path) : [path];
    });
}

const FILES = walk(DEPLOY);
const rel = (path: string): string => relative(ROOT, path);
const read = (path: string): string => readFileSync(path, 'utf8');
const YAML_FILES = FILES.filter((f) => /\.(ya?ml|json)$/.test(f));

/** Every document of a YAML (or JSON) file; any error or warning fails the test. */
function documents(path: string): unknown[] {
  const docs = parseAllDocuments(read(path), { prettyErrors: true, uniqueKeys: true });
  if (!Array.isArray(docs)) return [];
  const problems = docs.flatMap((d) => [...d.errors, ...d.warnings]).map((e) => e.message);
  if (problems.length > 0) throw new Error(`${rel(path)}:\n${problems.join('\n')}`);
  return docs.map((d) => d.toJS()).filter((d) => d !== null && d !== undefined);
}

// ---- the variables the apps read --------------------------------------------------------

/** The keys of `envSchema = z.object({...})` in apps/ingest/src/config.ts. */
function ingestVariables(): Set<string> {
  const text = read(join(ROOT, 'apps/ingest/src/config.ts'));
  const start = text.indexOf('const envSchema = z.object({');
  expect(start, 'envSchema in apps/ingest/src/config.ts').toBeGreaterThan(-1);
  const end = text.indexOf('\n});', start);
  expect(end).toBeGreaterThan(start);
  const body = text.slice(start, end);
  return new Set([...body.matchAll(/^\s*(INGEST_[A-Z0-9_]+)\s*:/gm)].map((m) => m[1]!));
}

/** The same rule as envName() in apps/edge-agent/src/config.ts. */
function agentEnvName(path: string): string {
  return `AGENT_${path
    .split('.')
    .map((part) => part.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase())
    .join('_')}`;
}

/** ENV_KEYS plus every `envName('...')` the agent's config reads (AGENT_CONFIG). */
function agentVariables(): Set<string> {
  const text = read(join(ROOT, 'apps/edge-agent/src/config.ts'));
  const list = /export const ENV_KEYS = \[([\s\S]*?)\] as const/.exec(text);
  expect(list, 'ENV_KEYS in apps/edge-agent/src/config.ts').not.toBeNull();
  const keys = [...list![1]!.matchAll(/'([^']+)'/g)].map((m) => m[1]!);
  const direct = [...text.matchAll(/envName\('([^']+)'\)/g)].map((m) => m[1]!);
  return new Set([...keys, ...direct].map(agentEnvName));
}

// ---- schemas of the parts that matter ---------------------------------------------------

const envMap = z.union([
  z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()])),
  z.array(z.string()),
]);

const composeHealthcheck = z.object({
  test: z.union([z.string().min(1), z.array(z.string()).min(2)]),
  interval: z.string().optional(),
  timeout: z.string().optional(),
  retries: z.number().int().positive().optional(),
});

const composeService = z
  .object({
    image: z.string().min(1).optional(),
    build: z
      .union([z.string(), z.object({ context: z.string(), dockerfile: z.string().optional() })])
      .optional(),
    ports: z.array(z.union([z.string(), z.number()])).optional(),
    expose: z.array(z.union([z.string(), z.number()])).optional(),
    environment: envMap.optional(),
    healthcheck: composeHealthcheck,
    deploy: z.object({ replicas: z.number().int().positive().optional() }).optional(),
  })
  .refine((s) => s.image !== undefined || s.build !== undefined, 'image or build')
  .refine((s) => (s.ports?.length ?? 0) + (s.expose?.length ?? 0) > 0, 'ports or expose');

const compose = z.object({
  services: z.record(z.string(), composeService),
  volumes: z.record(z.string(), z.unknown()).optional(),
});

const k8sDoc = z.looseObject({
  apiVersion: z.string().min(1),
  kind: z.string().min(1),
  metadata: z.looseObject({ name: z.string().min(1), labels: z.record(z.string(), z.string()) }),
});

const labels = z.record(z.string(), z.string());
const httpProbe = z.looseObject({
  httpGet: z.looseObject({ path: z.string(), port: z.union([z.string(), z.number()]) }),
});
const container = z.looseObject({
  name: z.string(),
  image: z.string(),
  ports: z.array(
    z.looseObject({ name: z.string(), containerPort: z.number(), protocol: z.literal('TCP') }),
  ),
  env: z.array(z.looseObject({ name: z.string() })).optional(),
  envFrom: z.array(
    z.union([
      z.object({ configMapRef: z.object({ name: z.string() }) }),
      z.object({ secretRef: z.object({ name: z.string() }) }),
    ]),
  ),
  readinessProbe: httpProbe,
  livenessProbe: httpProbe,
  resources: z.object({
    requests: z.object({ cpu: z.string(), memory: z.string() }),
    limits: z.looseObject({ memory: z.string() }),
  }),
  securityContext: z.looseObject({
    allowPrivilegeEscalation: z.literal(false),
    readOnlyRootFilesystem: z.literal(true),
    capabilities: z.object({ drop: z.array(z.literal('ALL')) }),
  }),
  volumeMounts: z.array(z.object({ name: z.string(), mountPath: z.string() })),
});
const deployment = z.looseObject({
  spec: z.looseObject({
    replicas: z.number().int().positive(),
    selector: z.object({ matchLabels: labels }),
    template: z.looseObject({
      metadata: z.looseObject({ labels }),
      spec: z.looseObject({
        securityContext: z.looseObject({
          runAsNonRoot: z.literal(true),
          runAsUser: z.number().int().positive(),
        }),
        containers: z.array(container).min(1),
        volumes: z.array(z.looseObject({ name: z.string(), emptyDir: z.unknown().optional() })),
      }),
    }),
  }),
});
const service = z.looseObject({
  spec: z.looseObject({
    type: z.enum(['ClusterIP', 'LoadBalancer', 'NodePort']),
    selector: labels,
    ports: z.array(
      z.looseObject({
        name: z.string(),
        port: z.number(),
        targetPort: z.union([z.string(), z.number()]),
      }),
    ),
  }),
});
const pdb = z.looseObject({
  spec: z
    .looseObject({
      selector: z.object({ matchLabels: labels }),
      minAvailable: z.union([z.number(), z.string()]).optional(),
      maxUnavailable: z.union([z.number(), z.string()]).optional(),
    })
    .refine((s) => (s.minAvailable === undefined) !== (s.maxUnavailable === undefined)),
});
const hpa = z.looseObject({
  apiVersion: z.literal('autoscaling/v2'),
  spec: z
    .looseObject({
      scaleTargetRef: z.object({ apiVersion: z.string(), kind: z.string(), name: z.string() }),
      minReplicas: z.number().int().positive(),
      maxReplicas: z.number().int().positive(),
      metrics: z.array(z.unknown()).min(1),
    })
    .refine((s) => s.minReplicas <= s.maxReplicas, 'minReplicas <= maxReplicas'),
});
const stringMap = z.record(z.string(), z.string());
const configMap = z.looseObject({ data: stringMap });
const secret = z.looseObject({
  type: z.string(),
  stringData: stringMap.optional(),
  data: stringMap.optional(),
});
const kustomization = z.looseObject({
  apiVersion: z.literal('kustomize.config.k8s.io/v1beta1'),
  kind: z.literal('Kustomization'),
  resources: z.array(z.string()).min(1),
});

type K8sDoc = z.infer<typeof k8sDoc> & { file: string };

function k8sDocuments(): K8sDoc[] {
  return FILES.filter((f) => f.startsWith(join(DEPLOY, 'k8s')) && /\.ya?ml$/.test(f))
    .filter((f) => !f.endsWith('kustomization.yaml'))
    .flatMap((file) => documents(file).map((doc) => ({ ...k8sDoc.parse(doc), file })));
}

function only<T>(docs: K8sDoc[], kind: string, schema: z.ZodType<T>): (T & K8sDoc)[] {
  return docs.filter((d) => d.kind === kind).map((d) => ({ ...d, ...schema.parse(d) }));
}

const matches = (selector: Record<string, string>, podLabels: Record<string, string>) =>
  Object.keys(selector).length > 0 &&
  Object.entries(selector).every(([k, v]) => podLabels[k] === v);

// ---- where variables are set --------------------------------------------------------------

interface Setting {
  name: string;
  where: string;
}

function composeSettings(): Setting[] {
  const file = join(DEPLOY, 'compose/compose.yaml');
  const doc = compose.parse(documents(file)[0]);
  return Object.entries(doc.services).flatMap(([name, s]) => {
    const env = s.environment ?? {};
    const keys = Array.isArray(env) ? env.map((e) => e.split('=')[0]!) : Object.keys(env);
    return keys.map((key) => ({ name: key, where: `${rel(file)} services.${name}` }));
  });
}

function k8sSettings(): Setting[] {
  return k8sDocuments().flatMap((d): Setting[] => {
    const where = `${rel(d.file)} ${d.kind}/${d.metadata.name}`;
    if (d.kind === 'ConfigMap') {
      return Object.keys(configMap.parse(d).data).map((name) => ({ name, where }));
    }
    if (d.kind === 'Secret') {
      const s = secret.parse(d);
      return Object.keys({ ...s.data, ...s.stringData }).map((name) => ({ name, where }));
    }
    if (d.kind === 'Deployment') {
      return deployment
        .parse(d)
        .spec.template.spec.containers.flatMap((c) => c.env ?? [])
        .map((e) => ({ name: e.name, where }));
    }
    return [];
  });
}

/** KEY=value lines of env files, and `Environment=` lines (several pairs each) of units. */
function textSettings(): Setting[] {
  return FILES.flatMap((file): Setting[] => {
    const lines = read(file).split('\n');
    if (/\.env(\.example)?$|(^|\/)\.env[^/]*$/.test(file)) {
      return lines
        .map((l) => /^\s*([A-Za-z_][A-Za-z0-9_]*)=/.exec(l)?.[1])
        .filter((n): n is string => n !== undefined)
        .map((name) => ({ name, where: rel(file) }));
    }
    if (file.endsWith('.service')) {
      return lines
        .filter((l) => l.startsWith('Environment='))
        .flatMap((l) => [
          ...l.slice('Environment='.length).matchAll(/(?:^|\s)"?([A-Z_][A-Z0-9_]*)=/g),
        ])
        .map((m) => ({ name: m[1]!, where: rel(file) }));
    }
    if (/Dockerfile$/.test(file)) {
      return dockerInstructions(read(file))
        .filter((i) => i.op === 'ENV')
        .flatMap((i) => [...i.args.matchAll(/(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=/g)])
        .map((m) => ({ name: m[1]!, where: rel(file) }));
    }
    return [];
  });
}

// ---- Dockerfiles ------------------------------------------------------------------------

interface Instruction {
  op: string;
  args: string;
}

function dockerInstructions(text: string): Instruction[] {
  const joined = text
    .split('\n')
    .filter((l) => !/^\s*#/.test(l))
    .join('\n')
    .replace(/\\\n/g, ' ');
  return joined
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .map((l) => {
      const [op, ...rest] = l.split(/\s+/);
      return { op: op!.toUpperCase(), args: rest.join(' ') };
    });
}

const DOCKERFILES = FILES.filter((f) => f.endsWith('.Dockerfile'));

// ---- the tests ----------------------------------------------------------------------------

describe('deploy/ files', () => {
  it('finds the expected files', () => {
    const names = FILES.map(rel);
    for (const f of [
      'deploy/README.md',
      'deploy/docker/ingest.Dockerfile',
      'deploy/docker/agent.Dockerfile',
      'deploy/docker/.dockerignore',
      'deploy/compose/compose.yaml',
      'deploy/compose/haproxy.cfg',
      'deploy/k8s/kustomization.yaml',
      'deploy/edge/outpost-agent.service',
      'deploy/edge/agent.yaml',
    ]) {
      expect(names).toContain(f);
    }
  });

  it.each(YAML_FILES.map(rel))('%s parses without errors or warnings', (file) => {
    expect(documents(join(ROOT, file)).length).toBeGreaterThan(0);
  });
});

describe('environment variables', () => {
  const ingest = ingestVariables();
  const agent = agentVariables();
  const settings = [...composeSettings(), ...k8sSettings(), ...textSettings()];

  it('reads the apps’ variables', () => {
    expect(ingest.size).toBeGreaterThan(20);
    for (const name of ['INGEST_DATABASE_URL', 'INGEST_REDIS_URL', 'INGEST_BOOTSTRAP_TOKEN']) {
      expect(ingest).toContain(name);
    }
    expect(agent).toContain('AGENT_CONFIG');
    expect(agent).toContain('AGENT_OUTBOX_MAX_BYTES');
  });

  it('finds settings in compose, Kubernetes, env files, the unit and the Dockerfiles', () => {
    const where = new Set(settings.map((s) => s.where.split(' ')[0]));
    for (const f of [
      'deploy/compose/compose.yaml',
      'deploy/k8s/configmap.yaml',
      'deploy/k8s/secret.yaml',
      'deploy/edge/outpost-agent.service',
      'deploy/docker/ingest.Dockerfile',
      'deploy/docker/agent.Dockerfile',
    ]) {
      expect(where).toContain(f);
    }
  });

  it('sets only INGEST_* variables the ingest config schema defines', () => {
    const unknown = settings.filter((s) => s.name.startsWith('INGEST_') && !ingest.has(s.name));
    expect(unknown).toEqual([]);
  });

  it('sets only AGENT_* variables the agent config reads', () => {
    const unknown = settings.filter((s) => s.name.startsWith('AGENT_') && !agent.has(s.name));
    expect(unknown).toEqual([]);
  });

  it('mentions no unknown INGEST_* or AGENT_* name anywhere in deploy/ (docs included)', () => {
    const unknown = FILES.filter((f) => !f.endsWith('.json')).flatMap((file) =>
      [...read(file).matchAll(/\b(INGEST|AGENT)_[A-Z0-9_]*[A-Z0-9]\b/g)]
        .map((m) => m[0])
        .filter((name) => !ingest.has(name) && !agent.has(name))
        .map((name) => `${rel(file)}: ${name}`),
    );
    expect(unknown).toEqual([]);
  });
});

describe('compose', () => {
  const doc = compose.parse(documents(join(DEPLOY, 'compose/compose.yaml'))[0]);

  it('has ingest, HAProxy, Redis, PostgreSQL and InfluxDB 2, each with a health check', () => {
    expect(Object.keys(doc.services).sort()).toEqual(
      ['haproxy', 'influxdb', 'ingest', 'postgres', 'redis'].sort(),
    );
    expect(doc.services.influxdb!.image).toMatch(/^influxdb:2/);
  });

  it('gives ingest the storage, cluster and public settings', () => {
    const env = doc.services.ingest!.environment as Record<string, string>;
    for (const name of [
      'INGEST_DATABASE_URL',
      'INGEST_REDIS_URL',
      'INGEST_INFLUX_URL',
      'INGEST_INFLUX_TOKEN',
      'INGEST_INFLUX_ORG',
      'INGEST_INFLUX_BUCKET',
      'INGEST_BOOTSTRAP_TOKEN',
      'INGEST_PUBLIC_URL',
    ]) {
      expect(env, name).toHaveProperty(name);
    }
    expect(env.INGEST_INFLUX_API).toBe('v2');
    expect(env.INGEST_DATABASE_URL).toMatch(/^postgres:\/\//);
    expect(env.INGEST_REDIS_URL).toMatch(/^redis:\/\//);
  });

  it('takes every secret from the env file, never inline', () => {
    const secretish = /PASSWORD|TOKEN|SECRET/;
    for (const [name, service] of Object.entries(doc.services)) {
      const env = (service.environment ?? {}) as Record<string, string>;
      for (const [key, value] of Object.entries(env)) {
        if (secretish.test(key)) expect(String(value), `${name}.${key}`).toMatch(/^\$\{[A-Z_]+:\?/);
      }
      for (const key of ['INGEST_DATABASE_URL', 'INGEST_REDIS_URL']) {
        if (key in env) expect(env[key], key).toMatch(/:\$\{[A-Z_]+:\?[^}]*\}@/);
      }
    }
    const example = read(join(DEPLOY, 'compose/.env.example'));
    const referenced = [
      ...read(join(DEPLOY, 'compose/compose.yaml')).matchAll(/\$\{([A-Z_]+):\?/g),
    ];
    for (const [, name] of referenced) expect(example).toMatch(new RegExp(`^${name}=`, 'm'));
  });

  it('builds ingest from its Dockerfile and runs at most as many replicas as cluster mode allows', () => {
    const ingestService = doc.services.ingest!;
    expect(ingestService.build).toMatchObject({ dockerfile: 'deploy/docker/ingest.Dockerfile' });
    const build = ingestService.build as { context: string; dockerfile: string };
    expect(existsSync(resolve(DEPLOY, 'compose', build.context, build.dockerfile))).toBe(true);
    expect(ingestService.deploy?.replicas).toBe(clusterMode() ? 3 : 1);
  });
});

/** Cluster mode exists once INGEST_REDIS_URL's value is used outside config.ts. */
function clusterMode(): boolean {
  const src = join(ROOT, 'apps/ingest/src');
  return walk(src)
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.spec.ts') && !f.endsWith('config.ts'))
    .some((f) => /\bredisUrl\b/.test(read(f)));
}

describe('HAProxy', () => {
  const cfg = read(join(DEPLOY, 'compose/haproxy.cfg'));
  const sections = new Map<string, string>();
  for (const block of cfg.split(/\n(?=(?:frontend|backend|defaults|global|resolvers) )/)) {
    const head = /^(frontend|backend|resolvers) (\S+)/m.exec(block);
    if (head) sections.set(`${head[1]} ${head[2]}`, block);
  }
  const backendOf = (frontend: string) =>
    sections.get(`backend ${/default_backend (\S+)/.exec(frontend)?.[1]}`) ?? '';

  it('balances MQTT TCP on 1883 by least connections with health checks', () => {
    const front = [...sections.entries()].find(
      ([k, v]) => k.startsWith('frontend') && /bind :1883\b/.test(v),
    )?.[1];
    expect(front).toMatch(/mode tcp/);
    const back = backendOf(front!);
    expect(back).toMatch(/mode tcp/);
    expect(back).toMatch(/balance leastconn/);
    expect(back).toMatch(/server(-template)? .*:1883 .*check/);
  });

  it('serves HTTP on 8080 with /readyz checks and long timeouts for SSE', () => {
    const front = [...sections.entries()].find(
      ([k, v]) => k.startsWith('frontend') && /bind :8080\b/.test(v),
    )?.[1];
    expect(front).toMatch(/mode http/);
    expect(front).toMatch(/timeout client (\d+h|\d{4,}s|\d+m)/);
    const back = backendOf(front!);
    expect(back).toMatch(/mode http/);
    expect(back).toMatch(/http-check send meth GET uri \/readyz|option httpchk GET \/readyz/);
    expect(back).toMatch(/timeout server (\d+h|\d{4,}s|\d+m)/);
    expect(back).toMatch(/server(-template)? .*:8080 .*check/);
  });
});

describe('Kubernetes', () => {
  const docs = k8sDocuments();
  const [dep] = only(docs, 'Deployment', deployment);
  const podLabels = dep?.spec.template.metadata.labels ?? {};

  it('lists every manifest in kustomization.yaml, and only existing ones', () => {
    const k = kustomization.parse(documents(join(DEPLOY, 'k8s/kustomization.yaml'))[0]);
    for (const r of k.resources) expect(existsSync(join(DEPLOY, 'k8s', r)), r).toBe(true);
    const files = new Set(docs.map((d) => rel(d.file).replace('deploy/k8s/', '')));
    expect(new Set(k.resources)).toEqual(files);
  });

  it('has the Deployment, PDB, HPA, Services, ConfigMap and Secret', () => {
    const kinds = docs.map((d) => d.kind);
    for (const kind of [
      'Deployment',
      'PodDisruptionBudget',
      'HorizontalPodAutoscaler',
      'Service',
      'ConfigMap',
      'Secret',
    ]) {
      expect(kinds).toContain(kind);
    }
  });

  it('runs the Deployment non-root on a read-only root with probes and an emptyDir data dir', () => {
    expect(dep).toBeDefined();
    expect(matches(dep!.spec.selector.matchLabels, podLabels)).toBe(true);
    expect(dep!.spec.replicas).toBe(clusterMode() ? 3 : 1);
    const c = dep!.spec.template.spec.containers[0]!;
    expect(c.readinessProbe.httpGet.path).toBe('/readyz');
    expect(c.livenessProbe.httpGet.path).toBe('/healthz');
    const ports = new Set(c.ports.map((p) => p.containerPort));
    for (const p of [8080, 1883, 8883]) expect(ports).toContain(p);
    const dataDir = only(docs, 'ConfigMap', configMap)[0]!.data.INGEST_DATA_DIR;
    const mount = c.volumeMounts.find((m) => m.mountPath === dataDir);
    expect(mount, 'a volume at INGEST_DATA_DIR').toBeDefined();
    const volume = dep!.spec.template.spec.volumes.find((v) => v.name === mount!.name);
    expect(volume?.emptyDir).toBeDefined();
  });

  it('takes env from the ConfigMap and Secret that exist', () => {
    const c = dep!.spec.template.spec.containers[0]!;
    const refs = c.envFrom.map((e) =>
      'configMapRef' in e ? `ConfigMap/${e.configMapRef.name}` : `Secret/${e.secretRef.name}`,
    );
    const names = new Set(docs.map((d) => `${d.kind}/${d.metadata.name}`));
    for (const r of refs) expect(names).toContain(r);
    expect(refs.some((r) => r.startsWith('Secret/'))).toBe(true);
    expect(refs.some((r) => r.startsWith('ConfigMap/'))).toBe(true);
  });

  it('keeps credentials in the Secret, as placeholders', () => {
    const s = only(docs, 'Secret', secret)[0]!;
    const values = { ...s.stringData };
    for (const key of ['INGEST_BOOTSTRAP_TOKEN', 'INGEST_DATABASE_URL', 'INGEST_INFLUX_TOKEN']) {
      expect(values[key], key).toMatch(/REPLACE/);
    }
    const cm = only(docs, 'ConfigMap', configMap)[0]!;
    for (const key of Object.keys(cm.data)) expect(key).not.toMatch(/TOKEN|PASSWORD|DATABASE_URL/);
  });

  it('selects the Deployment’s pods from the PDB and both Services', () => {
    for (const p of only(docs, 'PodDisruptionBudget', pdb)) {
      expect(p.apiVersion).toBe('policy/v1');
      expect(matches(p.spec.selector.matchLabels, podLabels)).toBe(true);
    }
    const services = only(docs, 'Service', service);
    for (const s of services)
      expect(matches(s.spec.selector, podLabels), s.metadata.name).toBe(true);
    const portNames = new Set(dep!.spec.template.spec.containers[0]!.ports.map((p) => p.name));
    for (const s of services) {
      for (const p of s.spec.ports) expect(portNames).toContain(String(p.targetPort));
    }
    const http = services.find((s) => s.spec.ports.some((p) => p.port === 8080));
    const mqtt = services.find((s) => s.spec.ports.some((p) => p.port === 1883));
    expect(http).toBeDefined();
    expect(mqtt?.spec.type).toBe('LoadBalancer');
  });

  it('scales the Deployment it names with the HPA, within what cluster mode allows', () => {
    const [h] = only(docs, 'HorizontalPodAutoscaler', hpa);
    expect(h!.spec.scaleTargetRef).toMatchObject({ kind: 'Deployment', name: dep!.metadata.name });
    if (!clusterMode()) expect(h!.spec.maxReplicas).toBe(1);
  });
});

describe('Dockerfiles', () => {
  it.each(DOCKERFILES.map(rel))('%s copies only files that exist', (file) => {
    const copies = dockerInstructions(read(join(ROOT, file))).filter(
      (i) => (i.op === 'COPY' || i.op === 'ADD') && !/--from=/.test(i.args),
    );
    for (const c of copies) {
      const parts = c.args.split(/\s+/).filter((p) => !p.startsWith('--'));
      for (const source of parts.slice(0, -1)) {
        expect(existsSync(join(ROOT, source)), `${file}: COPY ${source}`).toBe(true);
      }
    }
  });

  it.each(DOCKERFILES.map(rel))('%s runs as a non-root user with a health check', (file) => {
    const ins = dockerInstructions(read(join(ROOT, file)));
    const stages = ins.map((i, n) => ({ ...i, n })).filter((i) => i.op === 'FROM');
    const last = stages[stages.length - 1]!.n;
    const runtime = ins.slice(last);
    const users = runtime.filter((i) => i.op === 'USER');
    expect(users.length, 'a USER in the final stage').toBeGreaterThan(0);
    expect(users[users.length - 1]!.args).not.toMatch(/^(root|0)(:|$)/);
    const health = runtime.find((i) => i.op === 'HEALTHCHECK');
    expect(health?.args).toMatch(/\/healthz/);
    expect(runtime.some((i) => i.op === 'CMD' || i.op === 'ENTRYPOINT')).toBe(true);
    const from = ins.filter((i) => i.op === 'FROM').map((i) => i.args);
    expect(from.some((f) => / AS prune$/i.test(f))).toBe(true);
    expect(
      ins.some((i) => i.op === 'RUN' && /turbo prune @outpost\/\S+ .*--docker/.test(i.args)),
    ).toBe(true);
    expect(ins.some((i) => i.op === 'RUN' && /turbo run build/.test(i.args))).toBe(true);
    expect(ins.some((i) => i.op === 'RUN' && /npm ci --omit=dev/.test(i.args))).toBe(true);
    expect(ins.some((i) => i.op === 'RUN' && /g\+\+/.test(i.args))).toBe(true);
  });

  it('exposes the ingest ports', () => {
    const ins = dockerInstructions(read(join(DEPLOY, 'docker/ingest.Dockerfile')));
    const exposed = ins.filter((i) => i.op === 'EXPOSE').flatMap((i) => i.args.split(/\s+/));
    for (const p of ['8080', '1883', '8883']) expect(exposed).toContain(p);
  });

  it('keeps the .dockerignore files identical and leaves out built and local files', () => {
    const ignores = FILES.filter((f) => f.endsWith('.dockerignore')).map(read);
    expect(ignores.length).toBeGreaterThanOrEqual(1);
    for (const text of ignores) expect(text).toBe(ignores[0]);
    for (const p of ['.git', '**/node_modules', '**/dist']) {
      expect(ignores[0]!.split('\n')).toContain(p);
    }
  });
});

describe('the agent’s systemd unit', () => {
  const unit = read(join(DEPLOY, 'edge/outpost-agent.service'));

  it('runs as its own user and starts the built agent with the config it ships', () => {
    expect(unit).toMatch(/^User=(?!root$)\S+$/m);
    const exec = /^ExecStart=(.*)$/m.exec(unit)?.[1] ?? '';
    expect(exec).toMatch(/apps\/edge-agent\/dist\/main\.js run/);
    expect(existsSync(join(ROOT, 'apps/edge-agent/src/main.ts'))).toBe(true);
    const config = /AGENT_CONFIG=(\S+)/.exec(unit)?.[1];
    expect(config).toBe('/etc/outpost-agent/agent.yaml');
  });

  it('and the ingest image runs node with the flags npm start and the tests use', () => {
    const manifest = JSON.parse(read(join(ROOT, 'apps/ingest/package.json'))) as {
      outpost: { nodeFlags: string[] };
    };
    expect(manifest.outpost.nodeFlags.length).toBeGreaterThan(0);
    const ins = dockerInstructions(read(join(DEPLOY, 'docker/ingest.Dockerfile')));
    const cmd = JSON.parse(ins.findLast((i) => i.op === 'CMD')!.args) as string[];
    expect(cmd).toEqual(['node', ...manifest.outpost.nodeFlags, 'apps/ingest/dist/main.js']);
  });

  it('and the agent image runs node with the same flags and native memory settings', () => {
    const unitFlags = /^ExecStart=\S*node((?:\s+--\S+)*)\s/m.exec(unit)?.[1]?.trim().split(/\s+/);
    expect(unitFlags).toContain('--no-opt');
    const ins = dockerInstructions(read(join(DEPLOY, 'docker/agent.Dockerfile')));
    const cmd = JSON.parse(ins.findLast((i) => i.op === 'CMD')!.args) as string[];
    expect(cmd[0]).toBe('node');
    const args = cmd.slice(1);
    expect(
      args.slice(
        0,
        args.findIndex((a) => !a.startsWith('--')),
      ),
    ).toEqual(unitFlags);
    const env = ins
      .filter((i) => i.op === 'ENV')
      .map((i) => i.args)
      .join(' ');
    for (const setting of unit.match(/\b(?:MALLOC|UV)_[A-Z_]+=\S+/g) ?? []) {
      expect(env).toContain(setting);
    }
  });
});
