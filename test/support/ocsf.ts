import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Ajv, { type ErrorObject } from 'ajv';

/**
 * Validates events against the pinned OCSF 1.5.0 Detection Finding (test/fixtures/ocsf/1.5.0, PROVENANCE.md there):
 * the transcribed schema is compiled into a JSON Schema (draft-07) and checked with ajv. What it enforces:
 * - every attribute of the class and of each object is one the schema defines (no other: OCSF puts source-specific
 *   data under `unmapped`), with the schema's type (string_t and the other string types → string; integer_t, long_t,
 *   timestamp_t → integer; boolean_t → boolean; json_t → any JSON; object → a JSON object) and arrays where the
 *   schema says is_array;
 * - required attributes (the class's, each object's, and `cloud` when `metadata.profiles` names the cloud profile;
 *   `cloud` is refused without it);
 * - enum attributes hold one of the schema's ids; class_uid 2004, category_uid 2;
 * and, beyond JSON Schema: type_uid = class_uid * 100 + activity_id, and each caption sibling (activity_name,
 * severity, status, observable type) is the caption of its id. An attribute whose object type was not transcribed
 * cannot be emitted (its schema is `false`).
 */

interface Attribute {
  type: string;
  required?: boolean;
  is_array?: boolean;
  enum?: number[];
}
type Attributes = Record<string, Attribute>;
interface Extract {
  version: string;
  class: { name: string; uid: number; category_uid: number; attributes: Attributes };
  profiles: Record<string, Attributes>;
  objects: Record<string, Attributes>;
  enum_captions: Record<string, Record<string, string>>;
}

export const OCSF_FIXTURE_DIR = join(__dirname, '..', 'fixtures', 'ocsf', '1.5.0');
export const OCSF_EXTRACT: Extract = JSON.parse(
  readFileSync(join(OCSF_FIXTURE_DIR, 'detection_finding.extract.json'), 'utf8'),
);

const STRING_TYPES = new Set(['string_t', 'email_t', 'file_path_t', 'ip_t', 'url_t', 'uuid_t', 'datetime_t']);
const INTEGER_TYPES = new Set(['integer_t', 'long_t', 'timestamp_t', 'port_t']);

function scalar(type: string, objects: Record<string, Attributes>): object | boolean {
  if (STRING_TYPES.has(type)) return { type: 'string' };
  if (INTEGER_TYPES.has(type)) return { type: 'integer' };
  if (type === 'boolean_t') return { type: 'boolean' };
  if (type === 'float_t') return { type: 'number' };
  if (type === 'json_t') return true;
  if (type === 'object') return { type: 'object' };
  if (Object.hasOwn(objects, type)) return { $ref: `#/definitions/${type}` };
  return false;
}

function attributeSchema(a: Attribute, objects: Record<string, Attributes>): object | boolean {
  let s = scalar(a.type, objects);
  if (a.enum && typeof s === 'object') s = { ...s, enum: a.enum };
  return a.is_array ? { type: 'array', items: s } : s;
}

function objectSchema(attrs: Attributes, objects: Record<string, Attributes>): object {
  return {
    type: 'object',
    additionalProperties: false,
    properties: Object.fromEntries(Object.entries(attrs).map(([k, a]) => [k, attributeSchema(a, objects)])),
    required: Object.entries(attrs)
      .filter(([, a]) => a.required)
      .map(([k]) => k),
  };
}

/** The JSON Schema compiled from the transcribed OCSF extract (exported for the docs test and inspection). */
export function detectionFindingJsonSchema(x: Extract = OCSF_EXTRACT): object {
  const cloud = x.profiles.cloud ?? {};
  const attrs: Attributes = { ...x.class.attributes };
  for (const [k, a] of Object.entries(cloud)) attrs[k] = { ...a, required: false };
  const usesCloud = {
    type: 'object',
    required: ['metadata'],
    properties: {
      metadata: {
        type: 'object',
        required: ['profiles'],
        properties: { profiles: { type: 'array', contains: { const: 'cloud' } } },
      },
    },
  };
  const cloudRequired = Object.entries(cloud)
    .filter(([, a]) => a.required)
    .map(([k]) => k);
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    title: `OCSF ${x.version} ${x.class.name} (transcribed subset)`,
    ...objectSchema(attrs, x.objects),
    // `cloud` is part of the class only with the cloud profile, and then required (if/then/else, spelled anyOf).
    anyOf: [
      { allOf: [usesCloud, { required: cloudRequired }] },
      { allOf: [{ not: usesCloud }, { not: { anyOf: Object.keys(cloud).map((k) => ({ required: [k] })) } }] },
    ],
    definitions: Object.fromEntries(
      Object.entries(x.objects).map(([k, o]) => [k, objectSchema(o, x.objects)]),
    ),
  };
}

const ajv = new Ajv({ allErrors: true, strict: true, strictRequired: false, allowUnionTypes: true });
const validate = ajv.compile(detectionFindingJsonSchema());

function caption(field: string, id: unknown): string | undefined {
  return OCSF_EXTRACT.enum_captions[field]?.[String(id)];
}

/** Problems of one event (empty: valid), each naming the path and what is wrong. */
export function ocsfProblems(event: unknown): string[] {
  const problems: string[] = [];
  if (!validate(event)) {
    for (const e of validate.errors ?? []) problems.push(describe(e));
  }
  if (typeof event !== 'object' || event === null) return problems;
  const ev = event as Record<string, unknown>;
  if (typeof ev.activity_id === 'number' && ev.type_uid !== OCSF_EXTRACT.class.uid * 100 + ev.activity_id)
    problems.push(`/type_uid: ${String(ev.type_uid)} is not class_uid * 100 + activity_id`);
  for (const [id, name] of [
    ['activity_id', 'activity_name'],
    ['severity_id', 'severity'],
    ['status_id', 'status'],
  ] as const) {
    if (ev[name] !== undefined && ev[name] !== caption(id, ev[id]))
      problems.push(`/${name}: ${JSON.stringify(ev[name])} is not the caption of ${id} ${String(ev[id])}`);
  }
  const observables = Array.isArray(ev.observables) ? ev.observables : [];
  observables.forEach((o: { type?: unknown; type_id?: unknown }, i) => {
    const c = caption('observable.type_id', o.type_id);
    if (o.type !== undefined && c !== undefined && o.type !== c)
      problems.push(
        `/observables/${i}/type: ${JSON.stringify(o.type)} is not the caption of ${String(o.type_id)}`,
      );
  });
  return problems;
}

function describe(e: ErrorObject): string {
  const extra =
    e.keyword === 'additionalProperties'
      ? ` (${String((e.params as { additionalProperty: string }).additionalProperty)})`
      : e.keyword === 'enum'
        ? ` (${JSON.stringify((e.params as { allowedValues: unknown }).allowedValues)})`
        : '';
  return `${e.instancePath || '/'}: ${e.message ?? e.keyword}${extra}`;
}
