import { Logger } from '@aws-lambda-powertools/logger';
import { dynamoClient, iamClient } from '../adapters/clients';
import { documentClient } from '../adapters/document-client';
import { governedAccountsFromEnv } from '../adapters/governed-accounts';
import { requireEnv } from '../shared/env';
import { ApprovalPolicySchema, createApprovalHandler } from './approval-handler';

/** Lambda entry point of the approval function. A bad environment fails the cold start. */

const env = process.env;
const policy = ApprovalPolicySchema.parse(JSON.parse(requireEnv(env, 'APPROVAL_POLICY')));
const governedAccountId = requireEnv(env, 'GOVERNED_ACCOUNT_ID');
// Organization mode when the hub stack sets ORG_SETTINGS_PARAMETER: keys of the governed member accounts may be
// approved too, checked as credential-event checks them (Organizations through ORG_READER_ROLE_ARN, absent: the hub
// is the delegated administrator). The approval function never calls IAM: the client is only the check's plumbing.
const organization = governedAccountsFromEnv(env, {
  functionName: 'approval',
  hubAccountId: governedAccountId,
  hubIam: iamClient(),
});

export const handler = createApprovalHandler({
  policy,
  policyVersion: requireEnv(env, 'POLICY_VERSION'),
  governedAccountId,
  ...(organization ? { organization } : {}),
  approvalsTable: requireEnv(env, 'APPROVALS_TABLE_NAME'),
  keysTable: requireEnv(env, 'KEYS_TABLE_NAME'),
  decisionsTable: requireEnv(env, 'DECISIONS_TABLE_NAME'),
  doc: documentClient(dynamoClient()),
  logger: new Logger(),
});
