import { createHash } from 'node:crypto';
import {
  boundItem,
  boundString,
  ITEM_BUDGET_BYTES,
  ItemTooLargeError,
  itemBytes,
  STRING_MAX_BYTES,
} from '../../lambda/shared/bounded';

describe('boundString', () => {
  it('leaves a value that fits as it is', () => {
    // Prepare
    const v = 'team-chat@example.com';
    // Act / Assess
    expect(boundString(v)).toBe(v);
    expect(boundString('é'.repeat(512))).toBe('é'.repeat(512));
  });

  it('cuts a 500,000-character value to the bound, saying how much was cut and the hash of the whole', () => {
    // Prepare
    const v = `owner-${'x'.repeat(499_994)}`;
    const hash = createHash('sha256').update(v).digest('hex').slice(0, 16);
    // Act
    const out = boundString(v);
    // Assess
    expect(Buffer.byteLength(out)).toBeLessThanOrEqual(STRING_MAX_BYTES);
    expect(out.startsWith('owner-xxx')).toBe(true);
    const m = /…\[truncated ([\d,]+) chars, sha256:([0-9a-f]{16})\]$/.exec(out);
    expect(m?.[2]).toBe(hash);
    const kept = out.length - (m?.[0].length ?? 0);
    expect(Number(m?.[1]?.replace(/,/g, ''))).toBe(500_000 - kept);
  });

  it('counts UTF-8 bytes (DynamoDB does) and never splits a character', () => {
    // Prepare: 3-byte and 4-byte characters
    const v = '漢😀'.repeat(10_000);
    // Act
    const out = boundString(v, 200);
    // Assess
    expect(Buffer.byteLength(out)).toBeLessThanOrEqual(200);
    expect(out).not.toContain('\uFFFD');
    expect(out.startsWith('漢😀')).toBe(true);
  });

  it('is idempotent and keeps distinct long values distinct', () => {
    // Prepare
    const a = `${'a'.repeat(5000)}1`;
    const b = `${'a'.repeat(5000)}2`;
    // Act
    const once = boundString(a);
    // Assess
    expect(boundString(once)).toBe(once);
    expect(boundString(b)).not.toBe(once);
  });
});

describe('boundItem', () => {
  it('bounds every nested string and map key, and leaves the named key attributes alone', () => {
    // Prepare
    const huge = 'y'.repeat(500_000);
    const item = {
      accountId: '111122223333',
      keyId: 'ACCAEXAMPLE',
      owner: { value: huge, source: 'tag' },
      violations: [{ code: 'MISSING_OWNER', detail: huge }],
      tags: { [huge]: 'v' },
      calls: 3,
      flag: true,
      none: null,
    };
    // Act
    const out = boundItem(item, 'decision d1', ['accountId', 'keyId']);
    // Assess
    expect(itemBytes(out)).toBeLessThan(ITEM_BUDGET_BYTES);
    expect(out.accountId).toBe('111122223333');
    expect(out.keyId).toBe('ACCAEXAMPLE');
    expect(out.owner.value).toMatch(/…\[truncated 499,\d{3} chars, sha256:[0-9a-f]{16}\]$/);
    expect(out.violations[0]?.detail).toBe(out.owner.value);
    expect(Object.keys(out.tags)[0]).toBe(out.owner.value);
    expect([out.calls, out.flag, out.none]).toEqual([3, true, null]);
  });

  it('cuts harder when many long values together are over the budget', () => {
    // Prepare: 1,000 values of 1,000 bytes (each under the string bound, 1 MB together)
    const item = { pk: 'k', list: Array.from({ length: 1000 }, (_, i) => `${i}-${'z'.repeat(996)}`) };
    // Act
    const out = boundItem(item, 'usage item');
    // Assess
    expect(itemBytes(out)).toBeLessThanOrEqual(ITEM_BUDGET_BYTES);
    expect(new Set(out.list).size).toBe(1000);
  });

  it('refuses, naming the item, what no bound can bring under the budget', () => {
    // Prepare: 100,000 short values
    const item = { list: Array.from({ length: 100_000 }, () => 'abcdefgh') };
    // Act
    const act = () => boundItem(item, 'decision d2');
    // Assess
    expect(act).toThrow(ItemTooLargeError);
    expect(act).toThrow(/^decision d2: item of [\d,]+ bytes is over the 307,200-byte budget/);
  });
});
