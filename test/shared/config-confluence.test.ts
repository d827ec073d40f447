import {
  CONFLUENCE_SPACES_MAX,
  ConfigError,
  ConfluenceScheduleInputSchema,
  parseConfig,
} from '../../lambda/shared/config';

/** leakDetection.confluence (issue 15 §3): off by default; its settings checked before cdk deploy, naming the key. */

function errorOf(input: unknown): string {
  try {
    parseConfig(input, 'keyguard.config.json');
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
  throw new Error('parseConfig accepted the config');
}

const SITE = 'https://acme.atlassian.net';

describe('leakDetection.confluence', () => {
  it('is off (absent) by default', () => {
    // Act / Assess
    expect(parseConfig({}).leakDetection.confluence).toBeUndefined();
    expect(
      parseConfig({ leakDetection: { jira: { siteUrl: SITE, projects: ['OPS'] } } }).leakDetection.confluence,
    ).toBeUndefined();
  });

  it('takes a site and space keys, every 15 minutes with a 24-hour first look back by default', () => {
    // Act
    const config = parseConfig({
      leakDetection: { confluence: { siteUrl: SITE, spaces: ['ENG', '~5b10ac8d'] } },
    });
    // Assess
    expect(config.leakDetection.confluence).toEqual({
      siteUrl: SITE,
      spaces: ['ENG', '~5b10ac8d'],
      schedule: 'rate(15 minutes)',
      initialLookbackHours: 24,
    });
  });

  it('takes a schedule and a look back', () => {
    // Act
    const config = parseConfig({
      leakDetection: {
        confluence: { siteUrl: SITE, spaces: ['ENG'], schedule: 'rate(1 hour)', initialLookbackHours: 72 },
      },
    });
    // Assess
    expect(config.leakDetection.confluence).toMatchObject({
      schedule: 'rate(1 hour)',
      initialLookbackHours: 72,
    });
  });

  it.each([
    [{ spaces: ['ENG'] }, 'leakDetection.confluence.siteUrl: got nothing'],
    [
      { siteUrl: 'http://acme.atlassian.net', spaces: ['ENG'] },
      'leakDetection.confluence.siteUrl: got "http://acme.atlassian.net"; must be an https:// site URL',
    ],
    [{ siteUrl: SITE }, 'leakDetection.confluence.spaces: got nothing'],
    [{ siteUrl: SITE, spaces: [] }, 'leakDetection.confluence.spaces: got []'],
    [
      { siteUrl: SITE, spaces: ['ENG,OPS'] },
      'leakDetection.confluence.spaces.0: got "ENG,OPS"; must be a Confluence space key',
    ],
    [{ siteUrl: SITE, spaces: ['ENG', 'ENG'] }, 'leakDetection.confluence.spaces.1: got "ENG"; listed twice'],
    [
      { siteUrl: SITE, spaces: Array.from({ length: CONFLUENCE_SPACES_MAX + 1 }, (_v, i) => `S${i}`) },
      'leakDetection.confluence.spaces: got [',
    ],
    [
      { siteUrl: SITE, spaces: ['ENG'], initialLookbackHours: 0 },
      'leakDetection.confluence.initialLookbackHours: got 0; allowed: >= 1',
    ],
    [
      { siteUrl: SITE, spaces: ['ENG'], apiToken: 'x' },
      'leakDetection.confluence: unknown key(s) "apiToken"; allowed: siteUrl, spaces, schedule, initialLookbackHours',
    ],
  ])('refuses %j naming the key and the value', (confluence, expected) => {
    // Act / Assess
    expect(errorOf({ leakDetection: { confluence } })).toContain(expected);
  });
});

describe('the Confluence schedule input', () => {
  const input = {
    source: 'confluence',
    siteUrl: SITE,
    spaces: ['ENG'],
    initialLookbackHours: 24,
    secretArn: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:ConfluenceSecret-AbCdEf',
  };

  it('is what the stack writes', () => {
    // Act / Assess
    expect(ConfluenceScheduleInputSchema.parse(input)).toEqual(input);
  });

  it.each([
    [{ ...input, siteUrl: 'http://127.0.0.1:1' }, 'siteUrl'],
    [{ ...input, spaces: [] }, 'spaces'],
    [{ ...input, secretArn: 'arn:aws:iam::123456789012:role/x' }, 'secretArn'],
    [{ ...input, extra: 1 }, ''],
  ])('refuses %j', (bad, path) => {
    // Act
    const parsed = ConfluenceScheduleInputSchema.safeParse(bad);
    // Assess
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues[0]?.path.join('.')).toBe(path);
  });
});
