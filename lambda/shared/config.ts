import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { redactSecrets } from './redact';
import { scheduleProblem } from './schedule';
import * as z from './zod';

/**
 * The one policy configuration, shared by the CDK app (synth), the Lambda functions (env) and the CLI.
 * Every field has a default, so an empty file (or no file at all) is a valid, conservative policy:
 * audit mode, 90-day keys, 72 h grace, no deletion ever.
 */

/**
 * A string checked by a pattern: its length is checked first and a string too long is refused without running the
 * pattern (`abort`). A pattern run over a value of megabytes can exhaust the regular-expression engine's stack
 * (RangeError instead of a config error); no valid value of these settings is longer than `max`.
 */
function patterned(max: number, ...checks: z.core.$ZodCheck<string>[]): z.ZodMiniString {
  return z.string().check(z.maxLength(max, { abort: true }), ...checks);
}

/** A whole number from min to max (a JSON number that is not whole, or out of range, is refused). */
function whole(min: number, max: number): z.ZodMiniNumber {
  return z.number().check(z.int(), z.gte(min), z.lte(max));
}

const tagKey = patterned(
  128,
  z.minLength(1),
  z.regex(
    /^[\p{L}\p{Z}\p{N}_.:/=+\-@]+$/u,
    'must be a valid IAM tag key (letters, digits, spaces, _.:/=+-@)',
  ),
);

/** RFC 5321 caps an address at 254 characters; longer values never reach the email pattern. */
const email = z.pipe(patterned(254), z.email('must be an email address'));

/** CloudWatch Logs group names: 1..512 characters of `a-zA-Z0-9_-/.#` (CreateLogGroup API reference). */
const logGroupName = patterned(
  512,
  z.regex(/^[\w\-/.#]{1,512}$/, 'must be a CloudWatch Logs group name (1-512 of a-z A-Z 0-9 _ - / . #)'),
);

/**
 * A commercial-partition region name as Bedrock uses them (us-east-1, eu-central-2, ap-southeast-4...). GovCloud
 * (us-gov-*) and China (cn-*) regions are other partitions: their events cannot be put on a bus in us-east-1.
 */
const awsRegion = patterned(
  20,
  z.regex(/^[a-z]{2}(-gov)?-[a-z]+-\d$/, {
    message: 'must be an AWS region name such as us-east-1 or eu-central-1',
    abort: true,
  }),
  z.refine((region: string) => !/^(us-gov|cn)-/.test(region), {
    message:
      'is in another AWS partition (aws-us-gov or aws-cn): its events cannot be forwarded to us-east-1 of the aws partition',
  }),
);

/** An Organizations SCP target: the root (r-…), an OU (ou-…) or an account id. */
const scpTarget = patterned(
  80,
  z.regex(
    /^(r-[0-9a-z]{4,32}|ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}|\d{12})$/,
    'must be an organization root (r-…), OU (ou-…-…) or 12-digit account id',
  ),
);

/** A 12-digit AWS account id. */
const accountId = patterned(12, z.regex(/^\d{12}$/, 'must be a 12-digit AWS account id'));
/** An Organizations OU id (ou-…-…), as AWS Organizations writes them. */
const ouId = patterned(
  80,
  z.regex(/^ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}$/, 'must be an organizational unit id (ou-…-…)'),
);
/** Where the organization mode governs: the root (r-…) or an OU. */
const orgTarget = patterned(
  80,
  z.regex(
    /^(r-[0-9a-z]{4,32}|ou-[0-9a-z]{4,32}-[a-z0-9]{8,32})$/,
    'must be the organization root (r-…) or an organizational unit (ou-…-…)',
  ),
);
/** IAM role names: 1..64 of `\w+=,.@-` (CreateRole API reference). */
const roleName = patterned(
  64,
  z.regex(/^[\w+=,.@-]{1,64}$/, 'must be an IAM role name (1-64 of a-z A-Z 0-9 _+=,.@-)'),
);

/** Refuses a value listed twice in one list, naming both places. */
function unique<T>(what: string) {
  return z.superRefine((items: T[], ctx) => {
    const first = new Map<T, number>();
    for (const [i, item] of items.entries()) {
      const at = first.get(item);
      if (at === undefined) first.set(item, i);
      else ctx.addIssue({ code: 'custom', path: [i], message: `listed twice (also at ${what}.${at})` });
    }
  });
}

/**
 * Bounds of the organization settings. The hub's functions read them (with the overrides) from one SSM parameter,
 * which holds at most 8 KB (advanced tier): the largest organization and overrides the schema accepts fit it.
 * OU overrides are how a large organization scales; account overrides are for exceptions.
 */
export const ORG_TARGETS_MAX = 20;
export const ORG_EXCLUDED_MAX = 50;
export const OVERRIDES_MAX = 10;
export const OVERRIDE_OUS_MAX = 5;
export const OVERRIDE_ACCOUNTS_MAX = 10;

/**
 * Organization mode (hub and spokes): the hub stack governs every ACTIVE account under `targets` (nested OUs
 * included) but `excludeAccounts`, through the member role each spoke stack creates.
 */
export const OrganizationSchema = z.strictObject({
  /** The organization's id (o-…): the hub bus and the member roles admit its principals only. */
  id: patterned(40, z.regex(/^o-[a-z0-9]{10,32}$/, 'must be an organization id (o-…)')),
  /** The management account: its own spoke is a plain stack (StackSets never deploy to it). */
  managementAccountId: accountId,
  /**
   * The hub's account (where the main stack is deployed): the management stacks and the spokes name its roles and
   * bus. The same as `-c hubAccount=<id>`, which it spares; when both are given they must agree.
   */
  hubAccountId: z.optional(accountId),
  /** The root or OUs whose accounts are governed (the StackSet's deployment targets). */
  targets: z
    .array(orgTarget)
    .check(z.minLength(1), z.maxLength(ORG_TARGETS_MAX), unique('organization.targets')),
  /** Accounts under `targets` that are not governed. */
  excludeAccounts: z._default(
    z.array(accountId).check(z.maxLength(ORG_EXCLUDED_MAX), unique('organization.excludeAccounts')),
    [],
  ),
  /** The role the spokes create and the hub's functions assume in each governed account. */
  memberRoleName: z._default(roleName, 'BedrockKeyGuardMember'),
  /** Accounts swept at once (the sweep queue's event source mapping: Lambda allows 2..1000). */
  sweepConcurrency: z._default(whole(2, 1000), 5),
});

export type OrganizationConfig = z.infer<typeof OrganizationSchema>;

/**
 * The read-only role every spoke creates for `keyguard inventory --org` (lib/constructs/org-spoke-parts.ts
 * OrgInventoryRole): trusted by principals of the management and hub accounts, it can only read what the inventory
 * reads. The CLI assumes it unless `--role-name` names another.
 */
export const ORG_INVENTORY_ROLE_NAME = 'BedrockKeyGuardInventory';

/**
 * A policy for some accounts of the organization: by account id, or by OU (an account's nearest OU with an
 * override wins; an account override wins over any OU). Only decision settings can be overridden.
 */
export const OverrideSchema = z
  .strictObject({
    ous: z.optional(z.array(ouId).check(z.minLength(1), z.maxLength(OVERRIDE_OUS_MAX), unique('ous'))),
    accounts: z.optional(
      z.array(accountId).check(z.minLength(1), z.maxLength(OVERRIDE_ACCOUNTS_MAX), unique('accounts')),
    ),
    mode: z.optional(z.enum(['audit', 'enforce'])),
    maxAgeDays: z.optional(whole(1, 36600)),
    gracePeriodHours: z.optional(whole(0, 8760)),
    allowLongTermKeys: z.optional(z.boolean()),
    maxIdleDays: z.optional(z.nullable(whole(1, 3650))),
  })
  .check(
    z.superRefine((o, ctx) => {
      if ((o.ous === undefined) === (o.accounts === undefined)) {
        ctx.addIssue({ code: 'custom', message: 'must name either "ous" or "accounts" (one of the two)' });
      }
      const { ous: _o, accounts: _a, ...settings } = o;
      if (Object.keys(settings).length === 0) {
        ctx.addIssue({
          code: 'custom',
          message:
            'overrides nothing: name at least one of mode, maxAgeDays, gracePeriodHours, allowLongTermKeys, maxIdleDays',
        });
      }
    }),
  );

export type Override = z.infer<typeof OverrideSchema>;

/** An EventBridge Scheduler expression: rate(N minutes|hours|days) or cron(6 fields), by Scheduler's rules. */
const scheduleExpression = patterned(
  256,
  z.superRefine((expression: string, ctx) => {
    const problem = scheduleProblem(expression);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  }),
);

/** `leakDetection.slack.channels`: each is one entry of the function's SLACK_CHANNELS (4 KB of environment in all). */
export const SLACK_CHANNELS_MAX = 30;

/**
 * A Slack channel name as Slack's API documents them (`general`, `#general`: lowercase letters, digits, `-` and `_`,
 * at most 80) or a channel id (`C0123ABCD`; give the id of a channel whose name has other letters).
 */
const slackChannel = patterned(
  81,
  z.regex(
    /^(#?[a-z0-9_-]{1,80}|[CG][A-Z0-9]{2,20})$/,
    'must be a Slack channel name (lowercase letters, digits, - and _, at most 80) or a channel id such as C0123ABCD',
  ),
);

/** The Slack Web API base URL of a private deployment: https only (the token is sent to it). */
const slackApiUrl = patterned(
  200,
  z.regex(/^https:\/\/[^\s/?#@]+(\/[^\s?#]*)?$/, 'must be an https:// URL such as https://slack.com/api'),
);

/**
 * Continuous Slack scanning (issue 15 §3): a scheduled function reads what is new since each channel's high-water
 * mark and reports every key found to the governance bus, as `keyguard scan --slack --quarantine` does.
 */
export const SlackScanSchema = z.strictObject({
  /** EventBridge Scheduler expression of the runs. */
  schedule: z._default(scheduleExpression, 'rate(15 minutes)'),
  /** Channel names or ids; empty: every channel the token can read. */
  channels: z._default(z.array(slackChannel).check(z.maxLength(SLACK_CHANNELS_MAX), unique('channels')), []),
  /** How far back the first run reads a channel (later runs read from its mark). */
  initialLookbackHours: z._default(whole(1, 8760), 24),
  /** The Slack Web API base URL. @default https://slack.com/api */
  apiUrl: z.optional(slackApiUrl),
});

/**
 * `leakDetection.jira`'s bounds: the site, the projects and the query are the function's JIRA_SITE_URL, JIRA_PROJECTS
 * and JIRA_JQL, which share its 4 KB of environment with the largest Slack settings (test/lib/deployability.test.ts).
 */
export const JIRA_PROJECTS_MAX = 20;
export const JIRA_SITE_URL_MAX = 100;

/** A Jira Cloud site URL: https only (the e-mail and API token are sent to it), no path beyond the site. */
const jiraSiteUrl = patterned(
  JIRA_SITE_URL_MAX,
  z.regex(
    /^https:\/\/[A-Za-z0-9.-]+(:\d{1,5})?\/?$/,
    'must be an https:// site URL such as https://acme.atlassian.net',
  ),
);

/** A Jira project key as Jira allows them: an uppercase letter, then uppercase letters, digits or `_` (2 to 10). */
const jiraProjectKey = patterned(
  10,
  z.regex(
    /^[A-Z][A-Z0-9_]{1,9}$/,
    'must be a Jira project key (an uppercase letter, then A-Z, 0-9 or _; 2 to 10)',
  ),
);

/** `leakDetection.jira.jql` (longer queries: `keyguard scan --jira` from a scheduled CI job). */
export const JIRA_JQL_MAX = 80;

/**
 * Continuous Jira scanning (issue 15 §3): a scheduled function reads the issues updated since each project's
 * high-water mark and reports every key found to the governance bus, as `keyguard scan --jira --quarantine` does.
 * `projects` (each its own mark), `jql` (one mark for the query), or both (the query narrows each project's search).
 */
export const JiraScanSchema = z
  .strictObject({
    /** The Jira Cloud site, e.g. https://acme.atlassian.net. */
    siteUrl: jiraSiteUrl,
    /** Project keys, each with its own high-water mark. */
    projects: z.optional(
      z.array(jiraProjectKey).check(z.minLength(1), z.maxLength(JIRA_PROJECTS_MAX), unique('projects')),
    ),
    /** A JQL query: alone, one high-water mark for the query; with `projects`, it narrows each project's search. */
    jql: z.optional(patterned(JIRA_JQL_MAX, z.minLength(1), z.regex(/\S/, 'must not be blank'))),
    /** EventBridge Scheduler expression of the runs. */
    schedule: z._default(scheduleExpression, 'rate(15 minutes)'),
    /** How far back the first run reads a project (later runs read from its mark). */
    initialLookbackHours: z._default(whole(1, 8760), 24),
  })
  .check(
    z.superRefine((o, ctx) => {
      if (o.projects === undefined && o.jql === undefined)
        ctx.addIssue({ code: 'custom', message: 'must name "projects", "jql" or both (what to scan)' });
    }),
  );

/**
 * `leakDetection.confluence`'s bounds. Its settings are not in the function's environment (4 KB, nearly filled by the
 * largest Slack and Jira settings) but in the input of its own schedule (under 4 KB at these bounds), which
 * the function checks against ConfluenceScheduleInputSchema at every run.
 */
export const CONFLUENCE_SPACES_MAX = 50;
/** Confluence space keys: letters and digits (a personal space: `~` and the account id), at most 64 characters here. */
const confluenceSpaceKey = patterned(
  64,
  z.regex(
    /^(~[A-Za-z0-9:_-]{1,63}|[A-Za-z0-9]{1,64})$/,
    'must be a Confluence space key (letters and digits; a personal space: ~ and the account id; at most 64)',
  ),
);
const confluenceSpaces = z
  .array(confluenceSpaceKey)
  .check(z.minLength(1), z.maxLength(CONFLUENCE_SPACES_MAX), unique('spaces'));

/**
 * Continuous Confluence scanning (issue 15 §3): a scheduled function reads the pages and blog posts of each space
 * modified since the space's high-water mark (and their comments) and reports every key found to the governance bus,
 * as `keyguard scan --confluence --quarantine` does.
 */
export const ConfluenceScanSchema = z.strictObject({
  /** The Confluence Cloud site, e.g. https://acme.atlassian.net (https only: the e-mail and API token go to it). */
  siteUrl: jiraSiteUrl,
  /** Space keys, each with its own high-water mark. */
  spaces: confluenceSpaces,
  /** EventBridge Scheduler expression of the runs. */
  schedule: z._default(scheduleExpression, 'rate(15 minutes)'),
  /** How far back the first run reads a space (later runs read from its mark). */
  initialLookbackHours: z._default(whole(1, 8760), 24),
});

/**
 * The Confluence schedule's input (`{"source": "confluence", …}`): the settings above as the stack wrote them, and
 * the ARN of the secret holding the credentials. The function refuses a run whose input does not match.
 */
export const ConfluenceScheduleInputSchema = z.strictObject({
  source: z.literal('confluence'),
  siteUrl: jiraSiteUrl,
  spaces: confluenceSpaces,
  initialLookbackHours: whole(1, 8760),
  secretArn: patterned(
    2048,
    z.regex(
      /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[^\s]+$/,
      'must be a Secrets Manager secret ARN',
    ),
  ),
});
export type ConfluenceScheduleInput = z.infer<typeof ConfluenceScheduleInputSchema>;

/**
 * Bounds of the config's lists, each set by what AWS accepts for the resources a list becomes (see docs/configuration.md
 * and test/lib/deployability.test.ts, which deploys the largest config the schema accepts).
 */
/**
 * An SNS filter policy allows at most 150 value combinations (one owner is one value); the filter policies of 50
 * subscriptions with 40 owners of 256 characters keep the stack's template well under CloudFormation's 1 MB.
 */
export const OWNERS_PER_SUBSCRIPTION_MAX = 40;
/** Each subscription is one CloudFormation resource of the main stack (500 per template). */
export const SUBSCRIPTIONS_MAX = 50;
/** The approvers are checked by the approval function, from its environment (4 KB in all for a function). */
export const APPROVERS_MAX = 10;
/** Longest approver ARN: `arn:aws:iam::<12 digits>:role/` + a path and a 64-character role name. */
export const APPROVER_ARN_MAX = 200;

/** Control characters (C0, DEL, C1): never in a name that notices and terminals show. */
const CONTROL = /\p{Cc}/u;

/**
 * Free text of 1..max characters that is Unicode text: a lone surrogate (JSON can carry `\ud800`) is no character of
 * any name, and JSON writes each one back as six bytes (a function's environment has 4 KB).
 */
const LONE_SURROGATE = /\p{Cs}/u;
function text(max: number): z.ZodMiniString {
  return z.string().check(
    z.minLength(1),
    z.maxLength(max),
    z.refine((v: string) => !LONE_SURROGATE.test(v), 'must be Unicode text (it holds a lone surrogate)'),
  );
}

/**
 * What an IAM policy document may hold: tab, line feed, carriage return and U+0020..U+00FF (IAM name requirements);
 * a guardrail's exempt tag is written into its policy documents.
 */
const IAM_POLICY_TEXT = /^[\t\n\r\u0020-\u00ff]*$/;
const IAM_POLICY_TEXT_MESSAGE =
  'must use only characters an IAM policy document accepts (U+0020..U+00FF): the guardrail policies quote it';

export const NotificationSubscriptionSchema = z.strictObject({
  /** Email endpoint subscribed to the owner-notice topic. */
  email,
  /**
   * Only notices whose `owner` message attribute is one of these values reach this subscription
   * (an SNS filter policy). Omit to receive every notice.
   */
  owners: z.optional(z.array(text(256)).check(z.minLength(1), z.maxLength(OWNERS_PER_SUBSCRIPTION_MAX))),
});

/** `notifications.chat`: channels per chat application (each is an Amazon Q Developer channel configuration). */
export const CHAT_CHANNELS_MAX = 10;

/** A Slack channel for critical notices (Amazon Q Developer in chat applications; ids as its console shows them). */
export const SlackChatSchema = z.strictObject({
  /** The workspace (team) id shown in the console after the one-time authorisation, e.g. T0123ABCD. */
  workspaceId: patterned(
    255,
    z.regex(
      /^[0-9A-Z]{1,255}$/,
      'must be a Slack workspace id (uppercase letters and digits, e.g. T0123ABCD)',
    ),
  ),
  /** The channel id (the end of the channel's link), e.g. C0123ABCDEF. */
  channelId: patterned(
    255,
    z.regex(/^[A-Za-z0-9]{1,255}$/, 'must be a Slack channel id (letters and digits, e.g. C0123ABCDEF)'),
  ),
});

const uuid = patterned(
  36,
  z.regex(
    /^[0-9A-Fa-f]{8}(-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}$/,
    'must be a UUID (8-4-4-4-12 hexadecimal digits)',
  ),
);

/** A Microsoft Teams channel for critical notices (Amazon Q Developer in chat applications). */
export const TeamsChatSchema = z.strictObject({
  /** The team id (a UUID, the groupId of the channel's link). */
  teamId: uuid,
  /** The channel id, URL-encoded as in the channel's link: 19%3A…%40thread.tacv2. */
  channelId: patterned(
    256,
    z.regex(
      /^[\w\-=+/.,]*%3[aA][\w\-=+/.,]*%40[\w\-=+/.,]*$/,
      'must be a Teams channel id, URL-encoded as in the channel link (19%3A…%40thread.tacv2)',
    ),
  ),
  /** The Microsoft Entra tenant id (a UUID). */
  tenantId: uuid,
});

/** Critical notices in chat (issue 16 item 4): at least one channel. */
export const ChatSchema = z
  .strictObject({
    slack: z._default(z.array(SlackChatSchema).check(z.maxLength(CHAT_CHANNELS_MAX)), []),
    teams: z._default(z.array(TeamsChatSchema).check(z.maxLength(CHAT_CHANNELS_MAX)), []),
  })
  .check(
    z.refine(
      (c) => c.slack.length + c.teams.length > 0,
      'needs at least one channel in slack or teams (or leave chat out)',
    ),
  );

export const ConfigSchema = z.strictObject({
  /** `audit`: decide, record and notify, never change IAM. `enforce`: also deactivate. */
  mode: z._default(z.enum(['audit', 'enforce']), 'audit'),
  /** Longest lifetime a key may be created with (IAM allows 1..36600 days). */
  maxAgeDays: z._default(whole(1, 36600), 90),
  /** Time an owner gets to fix a non-critical violation before it escalates. */
  gracePeriodHours: z._default(whole(0, 8760), 72),
  /** IAM user tag keys that carry a key's metadata. */
  tags: z._default(
    z.strictObject({
      owner: z._default(tagKey, 'owner'),
      purpose: z._default(tagKey, 'purpose'),
      reviewCadence: z._default(tagKey, 'review-cadence'),
    }),
    { owner: 'owner', purpose: 'purpose', reviewCadence: 'review-cadence' },
  ),
  /** Days before expiry at which the owner is reminded (each reminder is sent once). */
  expiryWarningDays: z._default(z.array(whole(1, 365)).check(z.maxLength(10)), [14, 3]),
  /** The last notice before a grace deadline is sent this many hours before it. */
  finalWarningHours: z._default(whole(1, 720), 24),
  /** Longest an approval may run. */
  maxApprovalDays: z._default(whole(1, 3650), 365),
  /**
   * IAM principals (role or user ARNs) allowed to write approvals and reviews, besides the approver role the
   * stack creates. Nobody may approve or review a key they own or created.
   */
  approvers: z._default(
    z
      .array(
        patterned(
          APPROVER_ARN_MAX,
          z.regex(
            /^arn:aws[a-z-]*:iam::\d{12}:(role|user)\/[\w+=,.@/-]+$/,
            'must be an IAM role or user ARN',
          ),
        ),
      )
      .check(z.maxLength(APPROVERS_MAX)),
    [],
  ),
  sweep: z._default(
    z.strictObject({
      /** EventBridge Scheduler expression of the inventory sweep. */
      schedule: z._default(scheduleExpression, 'rate(1 hour)'),
    }),
    { schedule: 'rate(1 hour)' },
  ),
  /** Tamper evidence of the decision record (hash chains, signed digests, Object Lock archive). */
  audit: z._default(
    z.strictObject({
      /**
       * Days each archived decision and digest is locked in the archive bucket (S3 Object Lock, compliance mode:
       * nobody, the account root included, can delete or overwrite it before then). Raising it later applies to
       * new objects only; it can never be shortened for objects already written.
       */
      retentionDays: z._default(whole(1, 36500), 365),
      /** EventBridge Scheduler expression of the signed digest of chain heads. */
      digestSchedule: z._default(scheduleExpression, 'rate(1 hour)'),
    }),
    { retentionDays: 365, digestSchedule: 'rate(1 hour)' },
  ),
  /** Who is told when a key has neither an owner tag nor a known creator. */
  fallbackOwner: z._default(
    z.nullable(
      text(256).check(
        z.refine(
          (v: string) => !CONTROL.test(v),
          'must not contain control characters (it is shown in notices)',
        ),
      ),
    ),
    null,
  ),
  /** Whether long-term keys may exist at all (false: every long-term key is a violation). */
  allowLongTermKeys: z._default(z.boolean(), true),
  /**
   * An Active long-term key not used for this many days is UNUSED (measured from its last use, or from its
   * creation or the start of usage tracking, whichever is later). Null: never. Needs `usage.regions`.
   */
  maxIdleDays: z._default(z.nullable(whole(1, 3650)), 90),
  /** Key usage tracking (flow 3): Bedrock CloudTrail events with callWithBearerToken, per region. */
  usage: z._default(
    z.strictObject({
      /**
       * Regions where Bedrock is used: each gets a usage stack forwarding bearer-token calls to the governance
       * bus in us-east-1. None: no usage tracking (and no UNUSED).
       */
      regions: z._default(z.array(awsRegion).check(z.maxLength(40)), []),
    }),
    { regions: [] },
  ),
  /** Preventive policies (`keyguard policy`, and optionally deployed). */
  guardrails: z._default(
    z.strictObject({
      /** Principals carrying this tag (key and value) are exempt from every guardrail deny. */
      exemptTag: z._default(
        z.strictObject({
          key: z._default(
            tagKey.check(z.regex(IAM_POLICY_TEXT, IAM_POLICY_TEXT_MESSAGE)),
            'keyguard:guardrail-exempt',
          ),
          value: z._default(text(256).check(z.regex(IAM_POLICY_TEXT, IAM_POLICY_TEXT_MESSAGE)), 'true'),
        }),
        { key: 'keyguard:guardrail-exempt', value: 'true' },
      ),
      /**
       * `none`: only printed by `keyguard policy`. `scp`: the BedrockKeyGuardGuardrails stack creates an
       * Organizations SCP (deploy it with management-account credentials) attached to `scpTargetIds`.
       * `managed-policy`: it creates an IAM managed policy (identity kind) in this account, to attach.
       */
      deploy: z._default(z.enum(['none', 'scp', 'managed-policy']), 'none'),
      /** Roots, OUs or accounts the SCP is attached to (deploy = scp). */
      scpTargetIds: z._default(z.array(scpTarget).check(z.maxLength(100)), []),
    }),
    {
      exemptTag: { key: 'keyguard:guardrail-exempt', value: 'true' },
      deploy: 'none',
      scpTargetIds: [],
    },
  ),
  /** Organization mode (hub and spokes); null: this account only, as the stack is deployed. */
  organization: z._default(z.nullable(OrganizationSchema), null),
  /** Per-OU and per-account policies of the organization (needs `organization`). */
  overrides: z._default(z.array(OverrideSchema).check(z.maxLength(OVERRIDES_MAX)), []),
  notifications: z._default(
    z.strictObject({
      subscriptions: z._default(
        z.array(NotificationSubscriptionSchema).check(z.maxLength(SUBSCRIPTIONS_MAX)),
        [],
      ),
      /**
       * Critical notices also in Slack and Microsoft Teams channels, through Amazon Q Developer in chat applications
       * (formerly AWS Chatbot); absent (the default): none.
       */
      chat: z.optional(ChatSchema),
    }),
    { subscriptions: [] },
  ),
  /** Log quarantine: CloudWatch Logs groups whose lines are scanned for Bedrock API keys (none by default). */
  leakDetection: z._default(
    z.strictObject({
      /** Log group names (not ARNs), each given a subscription filter feeding the leak function. */
      logGroups: z._default(
        z.array(logGroupName).check(
          z.maxLength(50),
          // One subscription filter per listed group, named for the stack: a group listed twice gets two filters
          // of one name, which CloudWatch Logs refuses at deploy time.
          unique('logGroups'),
        ),
        [],
      ),
      /**
       * A found long-term key is deactivated (enforce mode) only when Bedrock confirms it is a working key. When
       * the check cannot tell (network error, timeout, throttling), the owner gets a critical notice and the key
       * stays active, unless this is true. A key Bedrock rejects (forged, inactive) is never deactivated.
       */
      deactivateUnverified: z._default(z.boolean(), false),
      /** Scheduled Slack scanning; absent (the default): off. */
      slack: z.optional(SlackScanSchema),
      /** Scheduled Jira scanning; absent (the default): off. */
      jira: z.optional(JiraScanSchema),
      /** Scheduled Confluence scanning; absent (the default): off. */
      confluence: z.optional(ConfluenceScanSchema),
    }),
    { logGroups: [], deactivateUnverified: false },
  ),
  /**
   * Where findings go besides the audit (issue 16). `securityHub`: each key with violations becomes one AWS Security
   * Hub finding (ASFF, BatchImportFindings into this account's custom-integration product), updated by every later
   * decision and archived when the key is fixed, deactivated or deleted. Off by default.
   */
  findings: z._default(z.strictObject({ securityHub: z._default(z.boolean(), false) }), {
    securityHub: false,
  }),
  /**
   * Decision events on the governance bus (docs/ocsf.md). `ocsf`: also put each decision as an OCSF 1.5.0 Detection
   * Finding (detail-type `Bedrock API Key Decision (OCSF)`), beside its keyguard event, which always goes (the Security
   * Hub findings and chat notices read it). Absent (the default): off.
   */
  decisionEvents: z.optional(z.strictObject({ ocsf: z._default(z.boolean(), false) })),
});

export type Config = z.infer<typeof ConfigSchema>;

/**
 * What the deployed functions decide with: the config without what only the stack and the CLI use (approvers,
 * subscriptions, the scanned log groups, guardrails, schedules, the archive). Its JSON is a function's
 * `KEYGUARD_CONFIG`: Lambda allows 4 KB of environment in all, and the whole config of a large deployment (50 log
 * groups, 50 subscriptions) is several times that. A full Config is a Policy, so the CLI passes its config as is.
 */
export const PolicySchema = z.extend(
  z.pick(ConfigSchema, {
    mode: true,
    maxAgeDays: true,
    gracePeriodHours: true,
    tags: true,
    expiryWarningDays: true,
    finalWarningHours: true,
    maxApprovalDays: true,
    fallbackOwner: true,
    allowLongTermKeys: true,
    maxIdleDays: true,
    usage: true,
  }),
  {
    leakDetection: z._default(z.strictObject({ deactivateUnverified: z._default(z.boolean(), false) }), {
      deactivateUnverified: false,
    }),
  },
);

export type Policy = z.infer<typeof PolicySchema>;

/**
 * Organization mode's settings as the hub's functions read them: from one SSM parameter (name in the
 * ORG_SETTINGS_PARAMETER environment variable), not the environment, which they would not fit.
 */
export const OrgSettingsSchema = z.strictObject({
  organization: OrganizationSchema,
  overrides: z.array(OverrideSchema).check(z.maxLength(OVERRIDES_MAX)),
});

export type OrgSettings = z.infer<typeof OrgSettingsSchema>;

/** The organization settings of a config, or null when it governs one account. */
export function orgSettings(config: Config): OrgSettings | null {
  return config.organization ? { organization: config.organization, overrides: config.overrides } : null;
}

/** The part of a config the functions receive (see PolicySchema); a region listed twice is passed once. */
export function functionPolicy(config: Config): Policy {
  return PolicySchema.parse({
    mode: config.mode,
    maxAgeDays: config.maxAgeDays,
    gracePeriodHours: config.gracePeriodHours,
    tags: config.tags,
    expiryWarningDays: config.expiryWarningDays,
    finalWarningHours: config.finalWarningHours,
    maxApprovalDays: config.maxApprovalDays,
    fallbackOwner: config.fallbackOwner,
    allowLongTermKeys: config.allowLongTermKeys,
    maxIdleDays: config.maxIdleDays,
    usage: { regions: [...new Set(config.usage.regions)] },
    leakDetection: { deactivateUnverified: config.leakDetection.deactivateUnverified },
  });
}
export type ConfigInput = z.input<typeof ConfigSchema>;

/** The default config file, looked up in the current directory. */
export const DEFAULT_CONFIG_FILE = 'keyguard.config.json';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

function describeAllowed(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'invalid_value':
      return `allowed: ${issue.values.map((v) => JSON.stringify(v)).join(' | ')}`;
    case 'invalid_type':
      return `allowed: a ${issue.expected}`;
    case 'too_small':
      return issue.origin === 'number' || issue.origin === 'int'
        ? `allowed: >= ${String(issue.minimum)}`
        : `allowed: at least ${String(issue.minimum)} ${issue.origin === 'array' ? 'item(s)' : 'character(s)'}`;
    case 'too_big':
      return issue.origin === 'number' || issue.origin === 'int'
        ? `allowed: <= ${String(issue.maximum)}`
        : `allowed: at most ${String(issue.maximum)} ${issue.origin === 'array' ? 'item(s)' : 'character(s)'}`;
    default:
      return issue.message;
  }
}

/** The schema inside defaults, optionals and nullables. */
function unwrapped(schema: z.core.$ZodType | undefined): z.core.$ZodTypeDef | undefined {
  let def = schema?._zod.def;
  while (def?.type === 'default' || def?.type === 'optional' || def?.type === 'nullable') {
    def = (def as z.core.$ZodDefaultDef | z.core.$ZodOptionalDef | z.core.$ZodNullableDef).innerType._zod.def;
  }
  return def;
}

/** Lists the keys the schema accepts at `path`, for "unknown key" messages. */
function knownKeys(path: PropertyKey[]): string {
  let schema: z.core.$ZodType | undefined = ConfigSchema;
  for (const p of path) {
    const def = unwrapped(schema);
    if (def?.type === 'object') schema = (def as z.core.$ZodObjectDef).shape[p as string];
    else if (def?.type === 'array') schema = (def as z.core.$ZodArrayDef).element;
    else return 'see docs/configuration.md';
  }
  const def = unwrapped(schema);
  return def?.type === 'object'
    ? Object.keys((def as z.core.$ZodObjectDef).shape).join(', ')
    : 'see docs/configuration.md';
}

function valueAt(input: unknown, path: PropertyKey[]): unknown {
  let cur: unknown = input;
  for (const p of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[p];
  }
  return cur;
}

/** Longest part of a value (or key name) a message repeats: a config file can hold anything, of any size. */
const SHOWN_MAX = 200;
/** Problems and unknown keys listed before "… and N more". */
const ISSUES_MAX = 20;
const KEYS_MAX = 10;

/** Text a message repeats from the file: key-shaped parts redacted (before cutting), cut to SHOWN_MAX. */
function cut(text: string): string {
  const safe = redactSecrets(text);
  return safe.length <= SHOWN_MAX
    ? safe
    : `${safe.slice(0, SHOWN_MAX)}… (${safe.length.toLocaleString('en-US')} chars)`;
}

/** A value as a message shows it. JSON.parse reads a number too large for a double (1e400) as ±Infinity. */
function shownValue(got: unknown): string {
  if (got === undefined) return 'nothing';
  if (typeof got === 'number' && !Number.isFinite(got)) {
    return `a number out of range (it reads as ${String(got)})`;
  }
  return cut(JSON.stringify(got) ?? String(got));
}

/** Formats zod issues as `source: key: got VALUE; allowed: …` lines a person can act on. */
export function formatIssues(source: string, input: unknown, issues: readonly z.core.$ZodIssue[]): string {
  const lines = issues.slice(0, ISSUES_MAX).map((issue) => {
    const path = issue.path.map((p) => cut(String(p)));
    if (issue.code === 'unrecognized_keys') {
      const where = path.length ? `${path.join('.')}: ` : '';
      const known = knownKeys(issue.path);
      const keys = issue.keys.slice(0, KEYS_MAX).map((k) => cut(JSON.stringify(k)));
      const more = issue.keys.length > KEYS_MAX ? ` and ${issue.keys.length - KEYS_MAX} more` : '';
      return `${source}: ${where}unknown key(s) ${keys.join(', ')}${more}; allowed: ${known}`;
    }
    const key = path.length ? path.join('.') : '(root)';
    const shown = shownValue(valueAt(input, issue.path));
    const extra =
      issue.code === 'invalid_format' || issue.code === 'custom' ? issue.message : describeAllowed(issue);
    return `${source}: ${key}: got ${shown}; ${extra}`;
  });
  if (issues.length > ISSUES_MAX)
    lines.push(`${source}: … and ${issues.length - ISSUES_MAX} more problem(s)`);
  return lines.join('\n');
}

/**
 * A function's policy from its environment (`KEYGUARD_CONFIG`, written by the stack from functionPolicy): a value
 * that is not valid JSON or not a policy fails the cold start naming the variable and the key.
 */
export function parsePolicy(json: string, source = CONFIG_ENV): Policy {
  let input: unknown;
  try {
    input = JSON.parse(json);
  } catch (err) {
    throw new ConfigError(
      `${source}: not valid JSON (${cut(err instanceof Error ? err.message : String(err))})`,
    );
  }
  const result = PolicySchema.safeParse(input);
  if (!result.success) {
    throw new ConfigError(`invalid configuration\n${formatIssues(source, input, result.error.issues)}`);
  }
  return result.data;
}

/** Validates an already-parsed object; throws ConfigError naming the source, key, value and what is allowed. */
export function parseConfig(input: unknown, source = 'config'): Config {
  // No config at all means the defaults; a config that says `null` is a mistake (a template never filled in, a
  // variable that expanded to nothing), never a silent "defaults".
  if (input === null) {
    throw new ConfigError(
      `invalid configuration\n${source}: (root): got null; allowed: an object ({} for the built-in defaults)`,
    );
  }
  const result = ConfigSchema.safeParse(input ?? {});
  if (!result.success) {
    throw new ConfigError(`invalid configuration\n${formatIssues(source, input, result.error.issues)}`);
  }
  const problems = crossFieldIssues(result.data);
  if (problems.length > 0) {
    throw new ConfigError(`invalid configuration\n${formatIssues(source, input, problems)}`);
  }
  return result.data;
}

/**
 * Rules across settings (each issue names the key it is about): overrides need organization mode, and an account
 * or OU named by two overrides would leave "which policy applies" to the order of the file.
 */
function crossFieldIssues(config: Config): z.core.$ZodIssue[] {
  const issues: z.core.$ZodIssue[] = [];
  const issue = (path: PropertyKey[], message: string) =>
    issues.push({ code: 'custom', path, message, input: undefined } as z.core.$ZodIssue);
  if (config.overrides.length > 0 && config.organization === null) {
    issue(['overrides'], 'needs "organization": overrides apply to accounts and OUs of an organization');
  }
  for (const kind of ['accounts', 'ous'] as const) {
    const first = new Map<string, number>();
    for (const [i, o] of config.overrides.entries()) {
      for (const [j, id] of (o[kind] ?? []).entries()) {
        const at = first.get(id);
        if (at === undefined) first.set(id, i);
        else if (at !== i)
          issue(
            ['overrides', i, kind, j],
            `also in overrides.${at}.${kind}: one policy per ${kind === 'ous' ? 'OU' : 'account'}`,
          );
      }
    }
  }
  return issues;
}

/**
 * Loads a config file. With no explicit path, `keyguard.config.json` in `cwd` is used if present,
 * else the embedded defaults. An explicit path that does not exist is an error (never silently ignored).
 */
export function loadConfig(path?: string, cwd = process.cwd()): { config: Config; source: string } {
  const explicit = path !== undefined;
  // A relative path is relative to `cwd` (the CLI's and the CDK app's working directory). Messages name an
  // explicit path as the user gave it, and the default file by its full path.
  const abs = resolve(cwd, explicit ? path : DEFAULT_CONFIG_FILE);
  const file = explicit ? path : abs;
  if (!existsSync(abs)) {
    if (explicit) throw new ConfigError(`${file}: config file not found`);
    return { config: parseConfig({}, 'defaults'), source: 'defaults' };
  }
  if (!statSync(abs).isFile()) throw new ConfigError(`${file}: not a file`);
  let raw: unknown;
  try {
    // A UTF-8 byte order mark (some Windows editors write one) is not JSON, and invisible in the parser's message.
    raw = JSON.parse(readFileSync(abs, 'utf8').replace(/^\uFEFF/, ''));
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new ConfigError(`${file}: not valid JSON (${cut(why)})`);
  }
  return { config: parseConfig(raw, file), source: file };
}

/** The value with every object's keys sorted (recursively): its JSON is the same whatever the key order. */
export function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.keys(value as object)
        .sort()
        .map((k) => [k, canonical((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}

/**
 * A short, stable identifier of the effective policy: every decision records it, so an auditor
 * can tell which policy produced a decision. Subscriptions and the scanned log groups do not change decisions
 * and are excluded.
 */
export function policyVersion(config: Config): string {
  // Which log groups are scanned does not change how a found key is decided either; nor do the regions usage
  // comes from, or the preventive policies (they act in IAM, before any key exists), or how the record is archived.
  // Nor does where it is deployed (organization), and each override has its own version (overrideVersion). Nor where
  // findings are sent (findings), nor the format of the decision events (decisionEvents).
  const {
    notifications: _ignored,
    leakDetection: _scanned,
    usage: _regions,
    guardrails: _preventive,
    audit: _archive,
    organization: _where,
    overrides: _overrides,
    findings: _shown,
    decisionEvents: _events,
    ...policy
  } = config;
  // Whether an unverified leak deactivates does change decisions. It is hashed only when set, so the versions of
  // policies that leave it at its default (false) stay what they were before the setting existed.
  const hashed = config.leakDetection.deactivateUnverified
    ? { ...policy, leakDeactivateUnverified: true }
    : policy;
  const digest = createHash('sha256')
    .update(JSON.stringify(canonical(hashed)))
    .digest('hex');
  return `p-${digest.slice(0, 12)}`;
}

/** Env var through which the deployed functions receive the validated config (as JSON). */
export const CONFIG_ENV = 'KEYGUARD_CONFIG';
