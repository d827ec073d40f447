import { ConfigError, JIRA_JQL_MAX, JIRA_PROJECTS_MAX, parseConfig } from '../../lambda/shared/config';

/** leakDetection.jira (issue 15 §3): off by default; its settings checked before cdk deploy, naming the key. */

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

describe('leakDetection.jira', () => {
  it('is off (absent) by default', () => {
    // Act / Assess
    expect(parseConfig({}).leakDetection.jira).toBeUndefined();
    expect(parseConfig({ leakDetection: { slack: {} } }).leakDetection.jira).toBeUndefined();
  });

  it('takes a site and project keys, every 15 minutes with a 24-hour first look back by default', () => {
    // Act
    const config = parseConfig({ leakDetection: { jira: { siteUrl: SITE, projects: ['OPS', 'PLAT_2'] } } });
    // Assess
    expect(config.leakDetection.jira).toEqual({
      siteUrl: SITE,
      projects: ['OPS', 'PLAT_2'],
      schedule: 'rate(15 minutes)',
      initialLookbackHours: 24,
    });
  });

  it('takes both: the query narrows each project', () => {
    // Act
    const config = parseConfig({
      leakDetection: { jira: { siteUrl: SITE, projects: ['OPS'], jql: 'labels = public' } },
    });
    // Assess
    expect(config.leakDetection.jira).toMatchObject({ projects: ['OPS'], jql: 'labels = public' });
  });

  it('takes a JQL query, a schedule and a look back instead', () => {
    // Act
    const config = parseConfig({
      leakDetection: {
        jira: {
          siteUrl: `${SITE}/`,
          jql: 'project in (OPS, SEC) AND labels = public',
          schedule: 'rate(1 hour)',
          initialLookbackHours: 72,
        },
      },
    });
    // Assess
    expect(config.leakDetection.jira).toMatchObject({
      jql: 'project in (OPS, SEC) AND labels = public',
      schedule: 'rate(1 hour)',
      initialLookbackHours: 72,
    });
  });

  it.each([
    [{ projects: ['OPS'] }, 'leakDetection.jira.siteUrl: got nothing'],
    [
      { siteUrl: 'http://acme.atlassian.net', projects: ['OPS'] },
      'leakDetection.jira.siteUrl: got "http://acme.atlassian.net"; must be an https:// site URL',
    ],
    [
      { siteUrl: `${SITE}/wiki?x=1`, projects: ['OPS'] },
      `leakDetection.jira.siteUrl: got "${SITE}/wiki?x=1"; must be an https:// site URL`,
    ],
    [{ siteUrl: SITE }, '; must name "projects", "jql" or both (what to scan)'],
    [{ siteUrl: SITE, jql: 'x'.repeat(JIRA_JQL_MAX + 1) }, `leakDetection.jira.jql: got "${'x'.repeat(40)}`],
    [
      { siteUrl: SITE, projects: ['ops'] },
      'leakDetection.jira.projects.0: got "ops"; must be a Jira project key',
    ],
    [
      { siteUrl: SITE, projects: ['OPS', 'OPS'] },
      'leakDetection.jira.projects.1: got "OPS"; listed twice (also at projects.0)',
    ],
    [{ siteUrl: SITE, projects: [] }, 'leakDetection.jira.projects: got []'],
    [
      { siteUrl: SITE, projects: Array.from({ length: JIRA_PROJECTS_MAX + 1 }, (_v, i) => `P${i}`) },
      'leakDetection.jira.projects: got [',
    ],
    [{ siteUrl: SITE, jql: '   ' }, 'leakDetection.jira.jql: got "   "; must not be blank'],
    [
      { siteUrl: SITE, jql: 'x', initialLookbackHours: 0 },
      'leakDetection.jira.initialLookbackHours: got 0; allowed: >= 1',
    ],
    [{ siteUrl: SITE, jql: 'x', schedule: 'hourly' }, 'leakDetection.jira.schedule: got "hourly"'],
    [
      { siteUrl: SITE, jql: 'x', apiToken: 'ATATT-1' },
      'leakDetection.jira: unknown key(s) "apiToken"; allowed: siteUrl, projects, jql, schedule, initialLookbackHours',
    ],
  ])('refuses %j naming the key and the value', (jira, expected) => {
    // Act / Assess
    expect(errorOf({ leakDetection: { jira } })).toContain(expected);
  });
});
