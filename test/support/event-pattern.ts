/**
 * EventBridge's pattern matching for the subset the stack's rules use (test code): exact values in a list, `{ exists:
 * true | false }`, nested objects, and arrays in the event (a field matches when any element of the array does,
 * arrays of objects included). Anything else in a pattern throws, so a test never passes on a pattern it does not
 * understand. (EventBridge User Guide, "Event patterns", "Exists matching", "Arrays".)
 */

type Pattern = Record<string, unknown>;

/** The values at `key` of `value`, reading through arrays as EventBridge does (flattened). */
function valuesAt(value: unknown, key: string): unknown[] {
  if (Array.isArray(value)) return value.flatMap((v) => valuesAt(v, key));
  if (value !== null && typeof value === 'object' && key in value) {
    const v = (value as Record<string, unknown>)[key];
    return Array.isArray(v) ? v.flat(Number.POSITIVE_INFINITY) : [v];
  }
  return [];
}

function leafMatches(values: unknown[], rules: unknown[]): boolean {
  return rules.some((rule) => {
    if (rule !== null && typeof rule === 'object') {
      const keys = Object.keys(rule);
      if (keys.length === 1 && keys[0] === 'exists')
        return (rule as { exists: boolean }).exists === values.some((v) => v !== undefined);
      throw new Error(`event-pattern: unsupported rule ${JSON.stringify(rule)}`);
    }
    return values.some((v) => v === rule);
  });
}

/** Whether `event` matches `pattern` (every field of the pattern must match). */
export function matchesEventPattern(pattern: Pattern, event: unknown): boolean {
  return Object.entries(pattern).every(([key, rule]) => {
    if (key.startsWith('$')) throw new Error(`event-pattern: unsupported operator ${key}`);
    const values = valuesAt(event, key);
    if (Array.isArray(rule)) return leafMatches(values, rule);
    if (rule !== null && typeof rule === 'object')
      return values.some(
        (v) => v !== null && typeof v === 'object' && matchesEventPattern(rule as Pattern, v),
      );
    throw new Error(`event-pattern: a pattern field must be a list or an object: ${key}`);
  });
}
