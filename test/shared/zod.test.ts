import * as z from '../../lambda/shared/zod';

// This file loads zod/mini through lambda/shared/zod only (full zod, which registers English itself, is not loaded
// in this test file's module registry), as a Lambda bundle whose schemas are all zod/mini does.
describe('lambda/shared/zod', () => {
  it.each([
    ['a wrong type', z.string(), 1, 'Invalid input: expected string, received number'],
    [
      'a value not in an enum',
      z.enum(['audit', 'enforce']),
      'x',
      'Invalid option: expected one of "audit"|"enforce"',
    ],
    [
      'a too long string',
      z.string().check(z.maxLength(3)),
      'abcd',
      'Too big: expected string to have <=3 characters',
    ],
    ['an unknown key', z.strictObject({ a: z.string() }), { a: '', b: 1 }, 'Unrecognized key: "b"'],
    [
      'a pattern without message',
      z.string().check(z.regex(/^\d+$/)),
      'x',
      'Invalid string: must match pattern /^\\d+$/',
    ],
  ])('gives full zod English message for %s', (_label, schema, input, message) => {
    // Act
    const result = (schema as z.ZodMiniType).safeParse(input);
    // Assess: zod/mini alone would say "Invalid input"
    expect(result.error?.issues.map((i) => i.message)).toEqual([message]);
  });
});
