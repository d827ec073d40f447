import * as z from '../shared/zod';
import { isViolationCode, VIOLATION_CODES } from './types';

/**
 * What `keyguard approve | review | approvals list | approvals revoke` send to the stack's approval function (an
 * IAM-authenticated Lambda function URL) and what it answers. Shared by the CLI and the function, so the two can
 * never disagree on a field. The request never names the approver: the function takes the caller's identity from
 * the SigV4-signed request, as Lambda authenticated it (requestContext.authorizer.iam), never from the body.
 */

/** Longest reason or note accepted (a person's explanation, not a document). */
export const TEXT_MAX = 4096;
/** IAM key ids are 20 characters today; generous for other id shapes, short enough to echo in a message. */
const ID_MAX = 128;

const accountId = z.string().check(z.regex(/^\d{12}$/, 'must be a 12-digit account id'));
const id = z.string().check(z.trim(), z.minLength(1, 'required'), z.maxLength(ID_MAX));
const text = z
  .string()
  .check(z.trim(), z.minLength(1, 'must not be empty (say why, for the audit)'), z.maxLength(TEXT_MAX));

export const CoversSchema = z.union([
  z.literal('ALL'),
  z
    .array(
      z
        .string()
        .check(
          z.refine(isViolationCode, { message: `must be a violation code (${VIOLATION_CODES.join(', ')})` }),
        ),
    )
    .check(z.minLength(1), z.maxLength(VIOLATION_CODES.length)),
]);

export const ApprovalRequestSchema = z.discriminatedUnion('action', [
  z.strictObject({
    action: z.literal('approve'),
    /** The key's account; default the caller's. */
    accountId: z.optional(accountId),
    keyId: id,
    reason: text,
    /** A date (`YYYY-MM-DD`, through the end of that day, UTC) or an ISO-8601 timestamp with a zone. */
    until: z.string().check(z.trim(), z.minLength(1), z.maxLength(64)),
    covers: CoversSchema,
  }),
  z.strictObject({
    action: z.literal('revoke'),
    accountId: z.optional(accountId),
    approvalId: id,
    reason: text,
  }),
  z.strictObject({
    action: z.literal('review'),
    accountId: z.optional(accountId),
    keyId: id,
    note: text,
  }),
  z.strictObject({
    action: z.literal('list'),
    accountId: z.optional(accountId),
    keyId: z.optional(id),
  }),
]);

export type ApprovalRequest = z.infer<typeof ApprovalRequestSchema>;

/** What an approval covers, in words (the audit decision's reason and the CLI's output say it the same way). */
export function coversText(covers: readonly string[] | 'ALL'): string {
  return covers === 'ALL' ? 'every violation code except LEAKED' : covers.join(', ');
}

/** An approval as the function returns it. */
export const ApprovalViewSchema = z.strictObject({
  approvalId: z.string(),
  accountId: z.string(),
  keyId: z.string(),
  covers: z.union([z.literal('ALL'), z.array(z.string())]),
  reason: z.string(),
  approver: z.string(),
  approvedAt: z.string(),
  until: z.string(),
  revokedAt: z.nullable(z.string()),
  revokedBy: z.nullable(z.string()),
  revokeReason: z.nullable(z.string()),
});

export type ApprovalView = z.infer<typeof ApprovalViewSchema>;

/**
 * The deployed policy the function recorded its audit decision under (its POLICY_VERSION and mode), for the CLI to
 * print. Optional: a function deployed before they were answered leaves them out.
 */
const RecordedUnder = {
  policyVersion: z.optional(z.string().check(z.maxLength(64))),
  mode: z.optional(z.enum(['audit', 'enforce'])),
};

export const ApprovalResponseSchema = z.discriminatedUnion('action', [
  z.strictObject({
    action: z.literal('approve'),
    approval: ApprovalViewSchema,
    userName: z.string(),
    decisionId: z.string(),
    ...RecordedUnder,
  }),
  z.strictObject({
    action: z.literal('revoke'),
    approval: ApprovalViewSchema,
    decisionId: z.string(),
    ...RecordedUnder,
  }),
  z.strictObject({
    action: z.literal('review'),
    reviewId: z.string(),
    accountId: z.string(),
    keyId: z.string(),
    userName: z.string(),
    reviewer: z.string(),
    reviewedAt: z.string(),
    decisionId: z.string(),
    ...RecordedUnder,
  }),
  z.strictObject({
    action: z.literal('list'),
    accountId: z.string(),
    approvals: z.array(ApprovalViewSchema),
  }),
]);

export type ApprovalResponse = z.infer<typeof ApprovalResponseSchema>;

/**
 * Why a request was not carried out, with the HTTP status the function answers: `invalid` (400: the request is
 * malformed or a value is out of range), `refused` (403: the caller may not do this: not an approver, or the
 * key's owner or creator), `not-found` (404: unknown key or approval), `conflict` (409: already revoked), `internal`
 * (500: see the function's log, by request id).
 */
export const APPROVAL_ERROR_STATUS = {
  invalid: 400,
  refused: 403,
  'not-found': 404,
  conflict: 409,
  internal: 500,
} as const;

export type ApprovalErrorKind = keyof typeof APPROVAL_ERROR_STATUS;

export const ApprovalErrorSchema = z.strictObject({
  error: z.enum(Object.keys(APPROVAL_ERROR_STATUS) as [ApprovalErrorKind, ...ApprovalErrorKind[]]),
  message: z.string(),
});

export type ApprovalErrorBody = z.infer<typeof ApprovalErrorSchema>;

/** A request the function did not carry out. */
export class ApprovalError extends Error {
  constructor(
    readonly kind: ApprovalErrorKind,
    message: string,
  ) {
    super(message);
    this.name = 'ApprovalError';
  }
}
