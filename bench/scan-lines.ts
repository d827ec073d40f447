import type { Prng } from './prng';

/**
 * The lines of the scan corpus: fake Bedrock API keys built to the documented formats (never real keys), the
 * contexts they are planted in, decoys, and filler lines per file type. All drawn from the caller's seeded PRNG.
 */

export type FileType = 'ts' | 'py' | 'yaml' | 'json' | 'sh' | 'env' | 'jsonlog' | 'textlog';

/**
 * How a planted key appears: as is and unquoted (`plain`), between quotes (`quoted`), inside a JSON string whose
 * serializer escapes `/` (and sometimes `+`, or a JSON line nested in a JSON record: `json-escaped`), or
 * percent-encoded in a URL (`url-encoded`).
 */
export type Context = 'plain' | 'quoted' | 'json-escaped' | 'url-encoded';
export const CONTEXTS: readonly Context[] = ['plain', 'quoted', 'json-escaped', 'url-encoded'];

/**
 * Not keys: the prefixes in prose; `ABSK` + random base64 of a key's length; keys cut short (at a length that is
 * not a multiple of 4: a cut at a multiple of 4 decodes to a valid, shorter key); short-term prefixes over a
 * presigned URL for another host, or for the right host and another action.
 */
export type DecoyKind =
  | 'prose-prefix'
  | 'absk-random'
  | 'truncated-long'
  | 'truncated-short'
  | 'short-wrong-host'
  | 'short-wrong-action';
export const DECOY_KINDS: readonly DecoyKind[] = [
  'prose-prefix',
  'absk-random',
  'truncated-long',
  'truncated-short',
  'short-wrong-host',
  'short-wrong-action',
];

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const LOWER_DIGITS = 'abcdefghijklmnopqrstuvwxyz0123456789';
const DIGITS = '0123456789';
const REGIONS = ['us-east-1', 'us-west-2', 'eu-west-1', 'eu-central-1', 'ap-northeast-1', 'ap-southeast-2'];

function pad2(n: number): string {
  return String(n).padStart(2, '0');
}

/** `ABSK` + base64(`BedrockAPIKey-xxxx-at-<account>:<secret>`), as the console makes them (about 132 characters). */
export function longTermKey(rng: Prng): string {
  const user = rng.chance(0.85)
    ? `BedrockAPIKey-${rng.chars(4, LOWER_DIGITS)}`
    : rng.pick(['ci-bot', 'svc.chat', 'data@team', 'build-agent-7']);
  const account = rng.chars(12, DIGITS);
  const secret = rng.chars(rng.pick([60, 60, 60, 44, 80]), B64);
  return `ABSK${Buffer.from(`${user}-at-${account}:${secret}`).toString('base64')}`;
}

interface PresignOptions {
  host?: string;
  action?: string;
}

/**
 * `bedrock-api-key-` + base64 of a SigV4-presigned URL in @aws/bedrock-token-generator's parameter order, with a
 * fake access key id and signature (sometimes a session token: a key made from temporary credentials).
 */
export function shortTermKey(rng: Prng, opts: PresignOptions = {}): string {
  const akid = `${rng.chance(0.8) ? 'AKIA' : 'ASIA'}${rng.chars(16, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567')}`;
  const day = 1 + rng.int(28);
  const date = `202611${pad2(day)}`;
  const time = `${date}T${pad2(rng.int(24))}${pad2(rng.int(60))}${pad2(rng.int(60))}Z`;
  const region = rng.pick(REGIONS);
  const token = akid.startsWith('ASIA')
    ? `&X-Amz-Security-Token=${encodeURIComponent(`IQoJb3JpZ2luX2Vj${rng.chars(rng.between(300, 700), B64)}`)}`
    : '';
  const url =
    `${opts.host ?? 'bedrock.amazonaws.com'}/?Action=${opts.action ?? 'CallWithBearerToken'}` +
    `&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=${encodeURIComponent(`${akid}/${date}/${region}/bedrock/aws4_request`)}` +
    `&X-Amz-Date=${time}&X-Amz-Expires=${rng.pick([900, 3600, 43200])}${token}` +
    `&X-Amz-SignedHeaders=host&X-Amz-Signature=${rng.hex(64)}&Version=1`;
  return `bedrock-api-key-${Buffer.from(url).toString('base64')}`;
}

/** The key inside a JSON string: `/` → `\/`, sometimes `+` → `\u002B`, sometimes a JSON line inside a JSON record. */
function jsonEscaped(rng: Prng, key: string): string {
  const variant = rng.int(3);
  if (variant === 0) return key.replaceAll('/', '\\/');
  if (variant === 1) return key.replaceAll('/', '\\/').replaceAll('+', '\\u002B');
  return key.replaceAll('/', '\\\\\\/');
}

function ts(rng: Prng): string {
  return `2026-11-${pad2(1 + rng.int(28))}T${pad2(rng.int(24))}:${pad2(rng.int(60))}:${pad2(rng.int(60))}.${String(rng.int(1000)).padStart(3, '0')}Z`;
}

/** A line holding `key` in a context that suits the file type. */
export function plantedLine(rng: Prng, type: FileType, key: string): { text: string; context: Context } {
  const context = rng.pick(CONTEXTS);
  const k =
    context === 'json-escaped'
      ? jsonEscaped(rng, key)
      : context === 'url-encoded'
        ? encodeURIComponent(key)
        : key;
  const q = rng.pick(['"', "'"]);
  const templates: Record<
    Context,
    Partial<Record<FileType, readonly string[]>> & { any: readonly string[] }
  > = {
    plain: {
      ts: [`// AWS_BEARER_TOKEN_BEDROCK=${k}`, `  // temporary token ${k} (remove before merge)`],
      py: [`# token: ${k}`, `    # export AWS_BEARER_TOKEN_BEDROCK=${k}`],
      yaml: [`  api_key: ${k}`, `      AWS_BEARER_TOKEN_BEDROCK: ${k}`],
      env: [`AWS_BEARER_TOKEN_BEDROCK=${k}`, `BEDROCK_API_KEY=${k}`],
      sh: [`export AWS_BEARER_TOKEN_BEDROCK=${k}`, `curl -s -H Authorization:Bearer\\ ${k} "$ENDPOINT"`],
      textlog: [
        `${ts(rng)} INFO  auth: using Authorization: Bearer ${k}`,
        `${ts(rng)} DEBUG client token=${k}, region=us-east-1, retries=3`,
      ],
      any: [`  "note": "rotate ${k} after the demo",`],
    },
    quoted: {
      ts: [`  const bedrockKey = ${q}${k}${q};`, `  headers: { Authorization: \`Bearer ${k}\` },`],
      py: [`BEDROCK_API_KEY = ${q}${k}${q}`, `    client = make_client(api_key=${q}${k}${q})`],
      yaml: [`  api_key: "${k}"`, `    token: '${k}'`],
      env: [`AWS_BEARER_TOKEN_BEDROCK="${k}"`],
      sh: [`export AWS_BEARER_TOKEN_BEDROCK='${k}'`, `curl -H "Authorization: Bearer ${k}" "$ENDPOINT"`],
      json: [`  "apiKey": "${k}",`],
      textlog: [`${ts(rng)} WARN  config api_key="${k}" loaded from environment`],
      any: [`"${k}"`],
    },
    'json-escaped': {
      ts: [`const fixture = '{"auth":{"token":"${k}"}}';`],
      py: [`RECORDED = '{"headers": {"Authorization": "Bearer ${k}"}}'`],
      json: [`  "raw": "{\\"token\\":\\"${k}\\"}",`],
      jsonlog: [
        `{"ts":"${ts(rng)}","level":"debug","msg":"outgoing request","headers":{"Authorization":"Bearer ${k}"}}`,
        `{"log":"{\\"level\\":\\"info\\",\\"apiKey\\":\\"${k}\\"}\\n","stream":"stdout","time":"${ts(rng)}"}`,
      ],
      any: [`{"event":"config","value":"${k}"}`],
    },
    'url-encoded': {
      ts: [`const url = 'https://proxy.internal/v1/invoke?api_key=${k}&model=claude';`],
      py: [`WEBHOOK = "https://hooks.example.com/notify?token=${k}"`],
      yaml: [`  callback: https://hooks.example.com/cb?token=${k}&v=2`],
      textlog: [
        `10.0.${rng.int(256)}.${rng.int(256)} - - [${ts(rng)}] "GET /v1/models?api_key=${k} HTTP/1.1" 200 ${rng.int(9000)}`,
      ],
      jsonlog: [`{"ts":"${ts(rng)}","level":"info","path":"/invoke?key=${k}&stream=true","status":200}`],
      any: [`redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb&token=${k}`],
    },
  };
  const options = templates[context][type] ?? templates[context].any;
  return { text: rng.pick(options), context };
}

function cutNotMultipleOf4(rng: Prng, body: string, min: number, max: number): string {
  let n = rng.between(min, Math.min(max, body.length - 1));
  if (n % 4 === 0) n -= 1;
  return body.slice(0, n);
}

/** A line holding a decoy (never a valid key). */
export function decoyLine(rng: Prng, type: FileType): { text: string; decoy: DecoyKind } {
  const decoy = rng.pick(DECOY_KINDS);
  let value: string;
  switch (decoy) {
    case 'prose-prefix':
      return {
        decoy,
        text: rng.pick([
          '# Long-term Bedrock API keys start with ABSK, short-term ones with bedrock-api-key- (never commit either).',
          '// keys look like ABSK... or bedrock-api-key-YmVkcm9jay5hbWF6b25hd3MuY29t... see the runbook',
          `${ts(rng)} INFO  policy: reject tokens with prefix ABSK or bedrock-api-key- in request bodies`,
        ]),
      };
    case 'absk-random':
      value = `ABSK${rng.chars(128, B64)}`;
      break;
    case 'truncated-long': {
      const key = longTermKey(rng);
      value = `ABSK${cutNotMultipleOf4(rng, key.slice(4), 60, 127)}`;
      break;
    }
    case 'truncated-short': {
      const key = shortTermKey(rng);
      value = `bedrock-api-key-${cutNotMultipleOf4(rng, key.slice(16), 40, 300)}`;
      break;
    }
    case 'short-wrong-host':
      value = shortTermKey(rng, {
        host: rng.pick(['bedrock-runtime.us-east-1.amazonaws.com', 'sts.amazonaws.com']),
      });
      break;
    case 'short-wrong-action':
      value = shortTermKey(rng, { action: rng.pick(['InvokeModel', 'ListFoundationModels']) });
      break;
  }
  const text =
    type === 'jsonlog'
      ? `{"ts":"${ts(rng)}","level":"debug","msg":"token","value":"${value}"}`
      : type === 'json'
        ? `  "sample": "${value}",`
        : type === 'textlog'
          ? `${ts(rng)} DEBUG sample token "${value}"`
          : `example_token = "${value}"`;
  return { decoy, text };
}

function ident(rng: Prng): string {
  return `${rng.pick(['get', 'set', 'load', 'parse', 'build', 'fetch', 'handle', 'resolve'])}${rng.pick(['User', 'Order', 'Config', 'Model', 'Request', 'Token', 'Region', 'Cache'])}${rng.int(100)}`;
}

/** Filler lines per file type, drawn once; files are made by picking from them. */
export function fillerPools(rng: Prng): Record<FileType, string[]> {
  const n = 4000;
  const make = (f: () => string): string[] => Array.from({ length: n }, f);
  return {
    ts: make(() =>
      rng.pick([
        `export async function ${ident(rng)}(input: ${rng.pick(['string', 'number', 'Request', 'unknown'])}): Promise<void> {`,
        `  const ${ident(rng)} = await client.send(new ${rng.pick(['GetItemCommand', 'PutObjectCommand', 'InvokeModelCommand'])}({ id: '${rng.uuid()}' }));`,
        `  if (!${ident(rng)}) throw new Error('${rng.alnum(12)} not found');`,
        `  // ${rng.pick(['TODO', 'NOTE', 'FIXME'])}: ${rng.alnum(8)} ${rng.alnum(5)} ${rng.alnum(10)}`,
        '}',
        `import { ${ident(rng)} } from './${rng.alnum(6).toLowerCase()}';`,
        `  return { status: ${rng.pick([200, 201, 404])}, body: JSON.stringify({ requestId: '${rng.uuid()}' }) };`,
        '',
      ]),
    ),
    py: make(() =>
      rng.pick([
        `def ${ident(rng).toLowerCase()}(self, value: int = ${rng.int(100)}) -> dict:`,
        `    result = self.session.get(f"{BASE_URL}/${rng.alnum(8).toLowerCase()}/{value}", timeout=${rng.between(1, 30)})`,
        `    logger.info("processed %s items in %.2fs", ${rng.int(1000)}, ${rng.next().toFixed(3)})`,
        `    # ${rng.alnum(10)} ${rng.alnum(7)} ${rng.alnum(4)}`,
        `import ${rng.pick(['os', 'json', 'boto3', 'logging', 'typing'])}`,
        `    return {"id": "${rng.uuid()}", "ok": ${rng.pick(['True', 'False'])}}`,
        '',
      ]),
    ),
    yaml: make(() =>
      rng.pick([
        `  ${rng.alnum(8).toLowerCase()}: ${rng.alnum(12)}`,
        `    - name: ${ident(rng)}`,
        `      image: public.ecr.aws/${rng.alnum(6).toLowerCase()}/app:${rng.int(50)}.${rng.int(10)}`,
        `  region: ${rng.pick(REGIONS)}`,
        `  checksum: sha256:${rng.hex(64)}`,
      ]),
    ),
    json: make(() =>
      rng.pick([
        `  "${rng.alnum(8).toLowerCase()}": "${rng.alnum(rng.between(4, 30))}",`,
        `    "integrity": "sha512-${rng.chars(86, B64)}==",`,
        `  "id": "${rng.uuid()}",`,
        `  "count": ${rng.int(100000)},`,
      ]),
    ),
    sh: make(() =>
      rng.pick([
        `aws s3 cp "s3://${rng.alnum(10).toLowerCase()}/${rng.alnum(6)}.tar.gz" "$TMP/" --region ${rng.pick(REGIONS)}`,
        `if [ -z "\${${rng.upperAlnum(6)}:-}" ]; then echo "missing" >&2; exit 1; fi`,
        `# ${rng.alnum(10)} ${rng.alnum(6)}`,
        `export ${rng.upperAlnum(8)}=${rng.alnum(16)}`,
      ]),
    ),
    env: make(() =>
      rng.pick([
        `${rng.upperAlnum(10)}=${rng.alnum(rng.between(4, 40))}`,
        `AWS_REGION=${rng.pick(REGIONS)}`,
        `# ${rng.alnum(12)}`,
      ]),
    ),
    jsonlog: make(() =>
      rng.pick([
        `{"ts":"${ts(rng)}","level":"info","msg":"request completed","requestId":"${rng.uuid()}","latencyMs":${rng.int(3000)},"status":${rng.pick([200, 200, 200, 404, 500])}}`,
        `{"ts":"${ts(rng)}","level":"debug","msg":"cache ${rng.pick(['hit', 'miss'])}","key":"${rng.alnum(24)}","traceId":"1-${rng.hex(8)}-${rng.hex(24)}"}`,
        `{"log":"{\\"level\\":\\"warn\\",\\"msg\\":\\"retrying ${rng.alnum(8)}\\",\\"attempt\\":${rng.int(5)}}\\n","stream":"stderr","time":"${ts(rng)}"}`,
        `{"ts":"${ts(rng)}","level":"info","msg":"session","token":"${rng.chars(rng.between(40, 200), B64)}"}`,
      ]),
    ),
    textlog: make(() =>
      rng.pick([
        `10.0.${rng.int(256)}.${rng.int(256)} - - [${ts(rng)}] "GET /api/${rng.alnum(8).toLowerCase()}?page=${rng.int(50)} HTTP/1.1" ${rng.pick([200, 304, 404])} ${rng.int(90000)}`,
        `${ts(rng)} INFO  worker-${rng.int(16)} processed batch ${rng.uuid()} in ${rng.int(5000)}ms`,
        `${ts(rng)} ERROR ${rng.pick(['ThrottlingException', 'ValidationException', 'ECONNRESET'])}: ${rng.alnum(20)}`,
        `${ts(rng)} DEBUG session=${rng.chars(rng.between(40, 160), B64)}`,
      ]),
    ),
  };
}
