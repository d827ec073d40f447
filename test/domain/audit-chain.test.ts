import {
  type ChainLink,
  canonicalJson,
  GENESIS_HASH,
  MAX_LEGACY_IDS,
  nextLink,
  type StoredDecisionItem,
  verifyKeyChain,
} from '../../lambda/domain/audit-chain';

const at = new Date('2026-12-07T12:00:00.000Z');
const item = (sk: string, over: Record<string, unknown> = {}): StoredDecisionItem => ({
  pk: '111122223333#ACCAKEY',
  sk,
  decisionId: sk,
  action: 'ALLOW',
  violations: [{ code: 'NEVER_EXPIRES', severity: 'high' }],
  owner: { value: null, source: 'fallback' },
  ...over,
});

/** A chain over `items`, in order. */
function chain(items: StoredDecisionItem[], legacy: string[] = []): ChainLink[] {
  const links: ChainLink[] = [];
  for (const i of items)
    links.push(nextLink(links[links.length - 1] ?? null, i.sk, i, at, [...legacy, i.sk]));
  return links;
}

describe('canonical serialization', () => {
  it('is the same whatever the key order, at every depth, and leaves undefined members out', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { z: 1, y: undefined, x: null }], c: 'é' } })).toBe(
      canonicalJson({ a: { c: 'é', d: [1, { x: null, z: 1 }] }, b: 1 }),
    );
    expect(canonicalJson({ b: 1, a: 2 })).toBe('{"a":2,"b":1}');
  });

  it('refuses what DynamoDB cannot store rather than hashing something ambiguous', () => {
    expect(() => canonicalJson({ n: Number.NaN })).toThrow('not a finite number');
  });
});

describe('verifyKeyChain', () => {
  it('a chain built link by link verifies, its head the last link', () => {
    const items = [item('d1'), item('d2'), item('d3')];
    const links = chain(items);

    const report = verifyKeyChain(links, items);

    expect(report.problems).toEqual([]);
    expect(links[0]?.prevHash).toBe(GENESIS_HASH);
    expect(report.head).toEqual({ seq: 3, hash: links[2]?.hash });
  });

  it('names what differs in an altered item: changed, removed and added attributes', () => {
    const items = [item('d1'), item('d2')];
    const links = chain(items);
    const altered = { ...item('d2', { action: 'DEACTIVATE', forged: true }) };
    delete (altered as Record<string, unknown>).owner;

    const report = verifyKeyChain(links, [items[0] as StoredDecisionItem, altered]);

    expect(report.problems).toEqual([
      {
        kind: 'altered',
        seq: 2,
        decisionId: 'd2',
        detail: expect.stringMatching(/changed: action; removed: owner; added: forged/),
      },
    ]);
  });

  it('a first link whose legacy set is too large for an item seals its digest, and still detects an addition', () => {
    const legacy = Array.from(
      { length: MAX_LEGACY_IDS + 1 },
      (_, i) => `legacy-${String(i).padStart(5, '0')}`,
    );
    const first = item('d1');
    const link = nextLink(null, 'd1', first, at, [...legacy, 'd1']);
    const legacyItems = legacy.map((id) => item(id));

    const intact = verifyKeyChain([link], [first, ...legacyItems]);
    const added = verifyKeyChain([link], [first, ...legacyItems, item('forged')]);

    expect(link.legacy).toBeUndefined();
    expect(link.legacyDigest?.count).toBe(MAX_LEGACY_IDS + 1);
    expect(intact.problems).toEqual([]);
    expect(intact.legacy).toHaveLength(MAX_LEGACY_IDS + 1);
    expect(added.problems).toEqual([expect.objectContaining({ kind: 'unchained' })]);
  });

  it('editing the sealed legacy list of the first link breaks its hash', () => {
    const items = [item('d1')];
    const [link] = chain(items, ['old-1']);
    const edited = { ...(link as ChainLink), legacy: ['old-1', 'forged'] };

    const report = verifyKeyChain([edited], [...items, item('old-1'), item('forged')]);

    expect(report.problems.map((p) => p.kind)).toEqual(['link-altered']);
  });
});
