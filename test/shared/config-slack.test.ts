import { ConfigError, parseConfig, SLACK_CHANNELS_MAX } from '../../lambda/shared/config';

/** leakDetection.slack (issue 15 §3): off by default; its settings checked before cdk deploy, naming the key. */

function errorOf(input: unknown): string {
  try {
    parseConfig(input, 'keyguard.config.json');
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
  throw new Error('parseConfig accepted the config');
}

describe('leakDetection.slack', () => {
  it('is off (absent) by default', () => {
    // Act / Assess
    expect(parseConfig({}).leakDetection.slack).toBeUndefined();
    expect(parseConfig({ leakDetection: { logGroups: ['/app'] } }).leakDetection.slack).toBeUndefined();
  });

  it('{} turns it on with every channel the token reads, every 15 minutes, a 24-hour first look back', () => {
    // Act
    const config = parseConfig({ leakDetection: { slack: {} } });
    // Assess
    expect(config.leakDetection.slack).toEqual({
      schedule: 'rate(15 minutes)',
      channels: [],
      initialLookbackHours: 24,
    });
  });

  it('takes channels by name or id, a schedule, a look back and a private https API URL', () => {
    // Act
    const config = parseConfig({
      leakDetection: {
        slack: {
          schedule: 'cron(0/10 * * * ? *)',
          channels: ['#general', 'C0123ABCD', 'ops-alerts'],
          initialLookbackHours: 168,
          apiUrl: 'https://slack.internal.example.com/api',
        },
      },
    });
    // Assess
    expect(config.leakDetection.slack).toMatchObject({
      channels: ['#general', 'C0123ABCD', 'ops-alerts'],
      initialLookbackHours: 168,
      apiUrl: 'https://slack.internal.example.com/api',
    });
  });

  it.each([
    [
      { schedule: 'every 5 minutes' },
      'keyguard.config.json: leakDetection.slack.schedule: got "every 5 minutes"',
    ],
    [
      { apiUrl: 'http://slack.example.com/api' },
      'leakDetection.slack.apiUrl: got "http://slack.example.com/api"; must be an https:// URL',
    ],
    [
      { channels: ['general,ops'] },
      'leakDetection.slack.channels.0: got "general,ops"; must be a Slack channel name',
    ],
    [
      { channels: ['ops', 'ops'] },
      'leakDetection.slack.channels.1: got "ops"; listed twice (also at channels.0)',
    ],
    [
      { channels: Array.from({ length: SLACK_CHANNELS_MAX + 1 }, (_v, i) => `c${i}`) },
      `leakDetection.slack.channels: got [`,
    ],
    [{ initialLookbackHours: 0 }, 'leakDetection.slack.initialLookbackHours: got 0; allowed: >= 1'],
    [
      { token: 'xoxb-1' },
      'leakDetection.slack: unknown key(s) "token"; allowed: schedule, channels, initialLookbackHours, apiUrl',
    ],
  ])('refuses %j naming the key and the value', (slack, expected) => {
    // Act / Assess
    expect(errorOf({ leakDetection: { slack } })).toContain(expected);
  });
});
