/**
 * EventBridge's input transformer, emulated for tests (EventBridge User Guide, "Transforming target input"): each
 * `<name>` of the template is replaced by the value at InputPathsMap[name] (a `$.a.b` path into the event): inside a
 * quoted string, the value's text as it is (not escaped, so a value holding a quote would break the JSON and a test
 * parsing the result would fail); outside one, the value as JSON.
 */

export interface InputTransformer {
  InputPathsMap: Record<string, string>;
  InputTemplate: string;
}

export function applyInputTransformer(transformer: InputTransformer, event: unknown): string {
  const { InputPathsMap, InputTemplate } = transformer;
  const atPath = (name: string): unknown => {
    const path = InputPathsMap[name];
    if (!path) throw new Error(`no path for <${name}>`);
    let value: unknown = event;
    for (const part of path.replace(/^\$\./, '').split('.'))
      value =
        value !== null && typeof value === 'object' ? (value as Record<string, unknown>)[part] : undefined;
    return value;
  };
  let out = '';
  let inString = false;
  for (let i = 0; i < InputTemplate.length; i += 1) {
    const c = InputTemplate[i] as string;
    const placeholder = c === '<' ? /^<([\w-]+)>/.exec(InputTemplate.slice(i)) : null;
    if (placeholder) {
      const value = atPath(placeholder[1] as string);
      out += inString ? String(value) : JSON.stringify(value);
      i += placeholder[0].length - 1;
      continue;
    }
    if (c === '\\') {
      out += c + (InputTemplate[i + 1] ?? '');
      i += 1;
      continue;
    }
    if (c === '"') inString = !inString;
    out += c;
  }
  return out;
}
