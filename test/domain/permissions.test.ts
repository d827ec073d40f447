import { assessPermissions, parsePolicyDocument, type UserPolicies } from '../../lambda/domain/permissions';
import { parseCadenceDays, reviewDueAt } from '../../lambda/domain/review';

const AWS = (name: string) => `arn:aws:iam::aws:policy/${name}`;
const LOCAL = (name: string) => `arn:aws:iam::111122223333:policy/${name}`;

function policies(over: Partial<UserPolicies>): UserPolicies {
  return { attached: [], inline: [], ...over };
}

describe('assessPermissions', () => {
  it.each(['AdministratorAccess', 'PowerUserAccess', 'AmazonBedrockFullAccess'])(
    'flags the AWS managed %s as high',
    (name) => {
      const findings = assessPermissions(
        policies({ attached: [{ name, arn: AWS(name), document: null, via: 'user' }] }),
      );

      expect(findings).toEqual([
        { policy: name, via: 'user', severity: 'high', reason: `AWS managed policy ${name}` },
      ]);
    },
  );

  it('notes AmazonBedrockLimitedAccess (the console default) as low, including through a group', () => {
    const findings = assessPermissions(
      policies({
        attached: [
          {
            name: 'AmazonBedrockLimitedAccess',
            arn: AWS('AmazonBedrockLimitedAccess'),
            document: null,
            via: 'group:ml',
          },
        ],
      }),
    );

    expect(findings).toHaveLength(1);
    expect(findings[0]).toMatchObject({ severity: 'low', via: 'group:ml' });
  });

  it('does not trust a customer policy by its name: only an AWS managed ARN counts as AWS managed', () => {
    const impostor = {
      name: 'AdministratorAccess',
      arn: LOCAL('AdministratorAccess'),
      document: null,
      via: 'user',
    };

    expect(assessPermissions(policies({ attached: [impostor] }))).toEqual([]);
  });

  it.each([
    ['"*" as a string', { Effect: 'Allow', Action: '*', Resource: '*' }],
    ['"*:*"', { Effect: 'Allow', Action: ['s3:GetObject', '*:*'], Resource: '*' }],
    ['"bedrock:*"', { Effect: 'Allow', Action: ['bedrock:*'], Resource: '*' }],
    ['"BEDROCK:*" (actions are case-insensitive)', { Effect: 'Allow', Action: 'BEDROCK:*', Resource: '*' }],
    ['NotAction', { Effect: 'Allow', NotAction: 'iam:*', Resource: '*' }],
  ])('flags an inline statement allowing %s as high', (_label, statement) => {
    const findings = assessPermissions(
      policies({
        inline: [{ name: 'wide', document: { Version: '2012-10-17', Statement: [statement] }, via: 'user' }],
      }),
    );

    expect(findings).toHaveLength(1);
    expect(findings[0]).toMatchObject({ policy: 'wide', severity: 'high' });
  });

  it('ignores Deny statements and narrow actions', () => {
    const doc = {
      Statement: [
        { Effect: 'Deny', Action: '*', Resource: '*' },
        { Effect: 'Allow', Action: ['bedrock:InvokeModel', 'bedrock:CallWithBearerToken'], Resource: '*' },
      ],
    };

    expect(assessPermissions(policies({ inline: [{ name: 'narrow', document: doc, via: 'user' }] }))).toEqual(
      [],
    );
  });

  it('reads a customer managed policy document for broad statements (single Statement object too)', () => {
    const doc = { Statement: { Effect: 'Allow', Action: 'bedrock:*', Resource: '*' } };

    const findings = assessPermissions(
      policies({
        attached: [{ name: 'team-bedrock', arn: LOCAL('team-bedrock'), document: doc, via: 'group:ml' }],
      }),
    );

    expect(findings).toEqual([
      {
        policy: 'team-bedrock',
        via: 'group:ml',
        severity: 'high',
        reason: 'managed policy team-bedrock allows "bedrock:*"',
      },
    ]);
  });
});

describe('parsePolicyDocument', () => {
  it('decodes the URL-encoded documents IAM returns', () => {
    const raw = encodeURIComponent(
      '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}',
    );

    expect(parsePolicyDocument(raw)).toEqual({
      Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }],
    });
  });

  it('accepts plain JSON, an object, and returns null for nothing or garbage', () => {
    expect(parsePolicyDocument('{"Statement":[]}')).toEqual({ Statement: [] });
    expect(parsePolicyDocument({ Statement: [] })).toEqual({ Statement: [] });
    expect(parsePolicyDocument(undefined)).toBeNull();
    expect(parsePolicyDocument('not json')).toBeNull();
  });
});

describe('review cadence', () => {
  it.each([
    ['90d', 90],
    ['12w', 84],
    ['6m', 180],
    ['1y', 365],
    ['1Y', 365],
    [' 30 d ', 30],
    ['P90D', 90],
    ['p2w', 14],
  ])('reads %j as %d days', (value, days) => {
    expect(parseCadenceDays(value)).toBe(days);
  });

  it.each(['', 'quarterly', '90', '0d', '-5d', 'P1DT2H', '1.5y'])('does not guess %j', (value) => {
    expect(parseCadenceDays(value)).toBeNull();
  });

  it('is due a cadence after the last review, or after creation before any review', () => {
    expect(reviewDueAt(30, '2026-01-01T00:00:00.000Z', '2025-01-01T00:00:00.000Z')?.toISOString()).toBe(
      '2026-01-31T00:00:00.000Z',
    );
    expect(reviewDueAt(30, null, '2025-01-01T00:00:00.000Z')?.toISOString()).toBe('2025-01-31T00:00:00.000Z');
    expect(reviewDueAt(30, null, null)).toBeNull();
  });
});
