import { ConfigError, parseConfig } from '../../lambda/shared/config';

/** `notifications.chat` (issue 16 item 4): Slack and Microsoft Teams channels for critical notices. */

const SOURCE = 'keyguard.config.json';
const SLACK = { workspaceId: 'T0123ABCD', channelId: 'C0123ABCDEF' };
const TEAMS = {
  teamId: '5d3f9a6e-1c2b-4d7e-8f90-a1b2c3d4e5f6',
  channelId: '19%3Ab6ef35dc342d56ba5654e6fc6d25a071%40thread.tacv2',
  tenantId: '0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d',
};

function errorFor(chat: unknown): string {
  try {
    parseConfig({ notifications: { chat } }, SOURCE);
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
  throw new Error('expected a ConfigError, the config was accepted');
}

describe('notifications.chat', () => {
  it('is absent by default; Slack and Teams channels parse, the other list defaulting to empty', () => {
    expect(parseConfig({}, SOURCE).notifications.chat).toBeUndefined();
    expect(parseConfig({ notifications: { chat: { slack: [SLACK] } } }, SOURCE).notifications.chat).toEqual({
      slack: [SLACK],
      teams: [],
    });
    expect(parseConfig({ notifications: { chat: { teams: [TEAMS] } } }, SOURCE).notifications.chat).toEqual({
      slack: [],
      teams: [TEAMS],
    });
  });

  it('refuses a chat entry without any channel', () => {
    const message = errorFor({ slack: [], teams: [] });
    expect(message).toContain(SOURCE);
    expect(message).toContain('notifications.chat');
    expect(message).toContain('needs at least one channel in slack or teams (or leave chat out)');
  });

  it('names the field and the value of a bad Slack workspace id or channel id', () => {
    const workspace = errorFor({ slack: [{ ...SLACK, workspaceId: 'acme.slack.com' }] });
    expect(workspace).toContain('notifications.chat.slack.0.workspaceId');
    expect(workspace).toContain('"acme.slack.com"');
    expect(workspace).toContain('must be a Slack workspace id');
    const channel = errorFor({ slack: [{ ...SLACK, channelId: '#security' }] });
    expect(channel).toContain('notifications.chat.slack.0.channelId');
    expect(channel).toContain('"#security"');
    expect(channel).toContain('must be a Slack channel id');
  });

  it('names the field of a bad Teams id: a non-UUID team or tenant, a channel id not URL-encoded', () => {
    expect(errorFor({ teams: [{ ...TEAMS, teamId: 'security-team' }] })).toContain(
      'notifications.chat.teams.0.teamId',
    );
    expect(errorFor({ teams: [{ ...TEAMS, tenantId: 'contoso.onmicrosoft.com' }] })).toContain(
      'must be a UUID',
    );
    const decoded = errorFor({
      teams: [{ ...TEAMS, channelId: '19:b6ef35dc342d56ba5654e6fc6d25a071@thread.tacv2' }],
    });
    expect(decoded).toContain('notifications.chat.teams.0.channelId');
    expect(decoded).toContain('URL-encoded');
  });

  it('refuses unknown keys in a channel and more than 10 channels per application', () => {
    expect(errorFor({ slack: [{ ...SLACK, channelName: 'security' }] })).toContain('"channelName"');
    expect(errorFor({ slack: Array.from({ length: 11 }, () => SLACK) })).toContain(
      'notifications.chat.slack',
    );
  });
});
