/**
 * Schedule expressions as EventBridge Scheduler (and scheduled rules) accept them, checked before `cdk deploy`
 * so that a config the schema accepts is one CloudFormation accepts.
 *
 * `rate(value unit)`: a positive whole number, `minute|hour|day` for 1, the plural otherwise.
 * `cron(minutes hours day-of-month month day-of-week year)`, from the cron expressions reference
 * (EventBridge user guide, "Cron expressions reference"):
 *
 * | field        | values              | wildcards       |
 * |--------------|---------------------|-----------------|
 * | minutes      | 0-59                | , - * /         |
 * | hours        | 0-23                | , - * /         |
 * | day-of-month | 1-31                | , - * ? / L W   |
 * | month        | 1-12 or JAN-DEC     | , - * /         |
 * | day-of-week  | 1-7 or SUN-SAT      | , - * ? L #     |
 * | year         | 1970-2199           | , - * /         |
 *
 * Day-of-month and day-of-week cannot both be given: one of them must be `?` (a value or `*` in one means `?`
 * in the other), and a `#` day-of-week is a single expression (`3#1,6#3` is refused).
 */

const RATE = /^rate\((1 (minute|hour|day)|([2-9]|[1-9]\d{1,8}) (minutes|hours|days))\)$/;
const CRON = /^cron\(([^()]*)\)$/;

const MONTHS = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];
const DAYS = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];

interface Field {
  name: string;
  min: number;
  max: number;
  names?: readonly string[];
  step: boolean;
}

const FIELDS: readonly Field[] = [
  { name: 'minutes', min: 0, max: 59, step: true },
  { name: 'hours', min: 0, max: 23, step: true },
  { name: 'day-of-month', min: 1, max: 31, step: true },
  { name: 'month', min: 1, max: 12, names: MONTHS, step: true },
  { name: 'day-of-week', min: 1, max: 7, names: DAYS, step: false },
  { name: 'year', min: 1970, max: 2199, step: true },
];

/** A single value of a field: a number in range, or one of its names. */
function value(f: Field, text: string): boolean {
  if (/^\d{1,4}$/.test(text)) {
    const n = Number(text);
    return n >= f.min && n <= f.max;
  }
  return f.names?.includes(text.toUpperCase()) ?? false;
}

/** One item of a comma list: `*`, a value, a range `a-b`, either with `/step` where the field allows it. */
function item(f: Field, text: string): boolean {
  const [base = '', step, extra] = text.split('/');
  if (extra !== undefined) return false;
  if (step !== undefined && (!f.step || !/^\d{1,4}$/.test(step) || Number(step) < 1)) return false;
  if (base === '*') return true;
  const range = base.split('-');
  if (range.length === 1) return value(f, base);
  if (range.length !== 2) return false;
  return value(f, range[0] ?? '') && value(f, range[1] ?? '');
}

/** Why a field is not valid, or null. `?`, `L`, `W` and `#` are checked where the reference allows them. */
function fieldProblem(f: Field, text: string): string | null {
  const bad = `${f.name} "${text}" is not valid (${f.min}-${f.max}${f.names ? ` or ${f.names[0]}-${f.names.at(-1)}` : ''})`;
  if (text === '?') return f.name === 'day-of-month' || f.name === 'day-of-week' ? null : bad;
  if (f.name === 'day-of-month' && /^(L|LW|([1-9]|[12]\d|3[01])W)$/.test(text)) return null;
  if (f.name === 'day-of-week') {
    if (/^([1-7]|SUN|MON|TUE|WED|THU|FRI|SAT)?L$/i.test(text)) return null;
    if (text.includes('#')) {
      return /^([1-7]|SUN|MON|TUE|WED|THU|FRI|SAT)#[1-5]$/i.test(text)
        ? null
        : `${f.name} "${text}": a # expression must stand alone (e.g. 3#2, the second Tuesday)`;
    }
  }
  return text.split(',').every((part) => item(f, part)) ? null : bad;
}

/** Why EventBridge Scheduler would refuse `expression`, or null when it is valid. */
export function scheduleProblem(expression: string): string | null {
  if (expression.startsWith('rate(')) {
    return RATE.test(expression)
      ? null
      : 'a rate is rate(1 minute|hour|day) or rate(N minutes|hours|days) with N a whole number from 2';
  }
  const m = CRON.exec(expression);
  if (!m)
    return 'must be rate(N minutes|hours|days) or cron(minutes hours day-of-month month day-of-week year)';
  const parts = (m[1] ?? '').split(' ');
  if (parts.length !== FIELDS.length || parts.some((p) => p === '')) {
    return 'a cron expression has six fields separated by single spaces: minutes hours day-of-month month day-of-week year';
  }
  for (const [i, f] of FIELDS.entries()) {
    const problem = fieldProblem(f, parts[i] ?? '');
    if (problem) return problem;
  }
  const dom = parts[2];
  const dow = parts[4];
  if ((dom === '?') === (dow === '?')) {
    return 'exactly one of day-of-month and day-of-week must be ? (a value or * in one means ? in the other)';
  }
  return null;
}
