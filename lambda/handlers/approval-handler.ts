import type { Logger } from '@aws-lambda-powertools/logger';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Context, LambdaFunctionURLEvent, LambdaFunctionURLResult } from 'aws-lambda';
import { DynamoApprovalsStore } from '../adapters/approvals-store';
import { DynamoAuditLog } from '../adapters/audit-store';
import type { GovernedAccounts } from '../adapters/governed-accounts';
import {
  APPROVAL_ERROR_STATUS,
  ApprovalError,
  type ApprovalErrorBody,
  ApprovalRequestSchema,
  type ApprovalResponse,
} from '../domain/approval-protocol';
import { formatIssues } from '../shared/config';
import * as z from '../shared/zod';
import { type ApprovalPolicy, ApprovalService, type Caller } from './approval-service';

/**
 * The approval function (flow 5 of design.md) behind an IAM-authenticated (AWS_IAM) function URL: `keyguard
 * approve | review | approvals` POST a JSON request (approval-protocol.ts) signed with the caller's own
 * credentials. Lambda checks the signature and the caller's lambda:InvokeFunctionUrl permission before the function
 * runs, and gives the caller's identity in requestContext.authorizer.iam: that identity, never the request, is the
 * approver of record. The approvals table lets only this function's role write, so these rules cannot be skipped.
 */

/** Longest request body read: a request is a few ids and one reason (TEXT_MAX characters). */
export const REQUEST_MAX_BYTES = 64 * 1024;

export interface ApprovalRuntime {
  policy: ApprovalPolicy;
  policyVersion: string;
  governedAccountId: string;
  /**
   * Organization mode (ORG_SETTINGS_PARAMETER set): the governed accounts, whose keys may be approved as well as the
   * hub's. The same check credential-event decides with. @default none: keys of `governedAccountId` only
   */
  organization?: () => Promise<GovernedAccounts>;
  approvalsTable: string;
  keysTable: string;
  decisionsTable: string;
  doc: DynamoDBDocumentClient;
  logger: Logger;
  now?: () => Date;
  newId?: () => string;
}

/** `APPROVAL_POLICY`: what the approval function decides with, as the stack writes it. */
export const ApprovalPolicySchema = z.strictObject({
  mode: z.enum(['audit', 'enforce']),
  maxApprovalDays: z.number().check(z.int(), z.gte(1)),
  fallbackOwner: z.nullable(z.string().check(z.minLength(1))),
  approvers: z.array(z.string().check(z.minLength(1))),
});

/** The identity Lambda authenticated (requestContext.authorizer.iam), or null when the request carries none. */
const IamIdentitySchema = z.object({
  userArn: z.string().check(z.regex(/^arn:aws[a-z-]*:(iam|sts)::\d{12}:.+$/)),
  accountId: z.string().check(z.regex(/^\d{12}$/)),
});

function callerOf(event: LambdaFunctionURLEvent): Caller | null {
  const authorizer = (event.requestContext as { authorizer?: { iam?: unknown } }).authorizer;
  const parsed = IamIdentitySchema.safeParse(authorizer?.iam);
  return parsed.success ? { arn: parsed.data.userArn, accountId: parsed.data.accountId } : null;
}

function reply(status: number, body: ApprovalResponse | ApprovalErrorBody): LambdaFunctionURLResult {
  return {
    statusCode: status,
    headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
    body: JSON.stringify(body),
  };
}

function failure(err: ApprovalError): LambdaFunctionURLResult {
  return reply(APPROVAL_ERROR_STATUS[err.kind], { error: err.kind, message: err.message });
}

/** The request body as text: at most REQUEST_MAX_BYTES, base64 decoded when Lambda encoded it. */
function bodyText(event: LambdaFunctionURLEvent): string {
  const raw = event.body ?? '';
  const bytes = event.isBase64Encoded ? Buffer.from(raw, 'base64') : Buffer.from(raw, 'utf8');
  if (bytes.length > REQUEST_MAX_BYTES) {
    throw new ApprovalError(
      'invalid',
      `request: ${bytes.length.toLocaleString('en-US')} bytes; allowed: at most ${REQUEST_MAX_BYTES.toLocaleString('en-US')}`,
    );
  }
  return bytes.toString('utf8');
}

export function createApprovalHandler(rt: ApprovalRuntime) {
  const { organization } = rt;
  const service = new ApprovalService({
    policy: rt.policy,
    policyVersion: rt.policyVersion,
    governedAccountId: rt.governedAccountId,
    ...(organization
      ? {
          ungovernedReason: async (accountId: string) => {
            const g = await (await organization()).check(accountId);
            return g.governed ? null : g.reason;
          },
        }
      : {}),
    approvals: new DynamoApprovalsStore(rt.doc, rt.approvalsTable),
    audit: new DynamoAuditLog(rt.doc, { decisionsTable: rt.decisionsTable, keysTable: rt.keysTable }),
    ...(rt.now ? { now: rt.now } : {}),
    ...(rt.newId ? { newId: rt.newId } : {}),
  });
  const { logger } = rt;

  return async (event: LambdaFunctionURLEvent, context?: Context): Promise<LambdaFunctionURLResult> => {
    const caller = callerOf(event);
    try {
      if (!caller) {
        // Only a function URL without AWS_IAM auth (or another trigger) delivers a request with no identity.
        throw new ApprovalError(
          'refused',
          'refused: the request carries no IAM identity (the function URL must use AWS_IAM authentication)',
        );
      }
      if (event.requestContext.http?.method !== 'POST') {
        throw new ApprovalError(
          'invalid',
          `request: method ${event.requestContext.http?.method}; allowed: POST`,
        );
      }
      let input: unknown;
      try {
        input = JSON.parse(bodyText(event));
      } catch (err) {
        if (err instanceof ApprovalError) throw err;
        throw new ApprovalError('invalid', 'request: not valid JSON');
      }
      const parsed = ApprovalRequestSchema.safeParse(input);
      if (!parsed.success) {
        throw new ApprovalError('invalid', formatIssues('request', input, parsed.error.issues));
      }
      const response = await service.handle(caller, parsed.data);
      logger.info('approval request carried out', {
        action: parsed.data.action,
        caller: caller.arn,
        ...('decisionId' in response ? { decisionId: response.decisionId } : {}),
      });
      return reply(200, response);
    } catch (err) {
      if (err instanceof ApprovalError) {
        logger.warn('approval request not carried out', {
          caller: caller?.arn,
          kind: err.kind,
          why: err.message,
        });
        return failure(err);
      }
      logger.error('approval request failed', { caller: caller?.arn, error: err as Error });
      const requestId = context?.awsRequestId ?? 'unknown';
      return failure(
        new ApprovalError(
          'internal',
          `the approval function failed (request id ${requestId}): see its log group for that request`,
        ),
      );
    }
  };
}
