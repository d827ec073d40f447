import { Logger } from '@aws-lambda-powertools/logger';
import { dynamoClient } from '../adapters/clients';
import { documentClient } from '../adapters/document-client';
import { requireEnv } from '../shared/env';
import { ApprovalPolicySchema, createApprovalHandler } from './approval-handler';

/** Lambda entry point of the approval function. A bad environment fails the cold start. */

const env = process.env;
const policy = ApprovalPolicySchema.parse(JSON.parse(requireEnv(env, 'APPROVAL_POLICY')));

export const handler = createApprovalHandler({
  policy,
  policyVersion: requireEnv(env, 'POLICY_VERSION'),
  governedAccountId: requireEnv(env, 'GOVERNED_ACCOUNT_ID'),
  approvalsTable: requireEnv(env, 'APPROVALS_TABLE_NAME'),
  keysTable: requireEnv(env, 'KEYS_TABLE_NAME'),
  decisionsTable: requireEnv(env, 'DECISIONS_TABLE_NAME'),
  doc: documentClient(dynamoClient()),
  logger: new Logger(),
});
